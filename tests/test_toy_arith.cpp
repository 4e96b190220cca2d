// The toy arithmetic task: values, traces and answer extraction worked out by hand.
#include "circuitscope/error.hpp"
#include "circuitscope/toy.hpp"
#include "test_util.hpp"

using namespace circuitscope::toy;

TEST_CASE("arithmetic answers and traces follow precedence", "[toy]") {
  ArithProblem p = parse_problem("17+25*3");
  REQUIRE(p.text() == "17+25*3");
  REQUIRE(p.answer() == 92);
  REQUIRE(p.trace() == "25*3=75\n17+75=92");
  ArithProblem q = parse_problem("4*5-6*2+1");
  REQUIRE(q.answer() == 9);
  REQUIRE(q.trace() == "4*5=20\n6*2=12\n20-12=8\n8+1=9");
  ArithProblem r = parse_problem("3-10");
  REQUIRE(r.answer() == -7);
  REQUIRE(r.trace() == "3-10=-7");
  ArithProblem one = parse_problem("8");
  REQUIRE(one.answer() == 8);
  REQUIRE(one.trace().empty());
  REQUIRE_THROWS_AS(parse_problem("3+"), circuitscope::Error);
  REQUIRE_THROWS_AS(parse_problem("3/4"), circuitscope::Error);
  REQUIRE_THROWS_AS(parse_problem(""), circuitscope::Error);
}

TEST_CASE("sampled problems respect the spec and are reproducible", "[toy]") {
  ArithSpec spec;
  spec.min_operands = 2;
  spec.max_operands = 4;
  spec.max_operand = 9;
  std::mt19937_64 a(7), b(7);
  for (int i = 0; i < 200; ++i) {
    ArithProblem p = sample_problem(spec, a);
    REQUIRE(p.text() == sample_problem(spec, b).text());
    REQUIRE(p.operands.size() >= 2);
    REQUIRE(p.operands.size() <= 4);
    REQUIRE(p.ops.size() == p.operands.size() - 1);
    for (auto v : p.operands) REQUIRE((v >= 0 && v <= 9));
    // Round trip through the text form; the trace's last line ends with the answer.
    REQUIRE(parse_problem(p.text()).answer() == p.answer());
    REQUIRE(extract_answer(p.trace()) == p.answer());
  }
}

TEST_CASE("answers are read from completions", "[toy]") {
  REQUIRE(extract_answer("92") == 92);
  REQUIRE(extract_answer("25*3=75\n17+75=92") == 92);
  REQUIRE(extract_answer("the answer is -7.") == -7);
  REQUIRE(extract_answer("= 41") == 41);
  REQUIRE_FALSE(extract_answer("no digits here").has_value());
  REQUIRE_FALSE(extract_answer("").has_value());
}
