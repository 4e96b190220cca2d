// The grader against the hand-written case table (tests/data/grade/cases.jsonl, written from
// docs/grading.md), plus the pieces on their own.
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "circuitscope/grade.hpp"
#include "test_util.hpp"

using namespace circuitscope;

TEST_CASE("grade: every case of the hand-written table", "[grade]") {
  const auto cases = cs_test::read_jsonl(cs_test::data_dir() + "/grade/cases.jsonl");
  REQUIRE(cases.size() >= 100);
  std::map<std::string, int> per_kind;
  int correct = 0, null_extractions = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    const GradeItem item = grade_item_from_json(c, "case " + std::to_string(i + 1));
    const GradeResult r = grade_answer(item);
    INFO("case " << i + 1 << " (" << c.value("note", "") << "): response " << c["response"].dump() << ", answer "
                 << c["answer"].dump());
    const auto& want = c.at("extracted");
    if (want.is_null()) {
      CHECK_FALSE(r.extracted.has_value());
    } else {
      REQUIRE(r.extracted.has_value());
      CHECK(*r.extracted == want.get<std::string>());
    }
    CHECK(r.correct == c.at("correct").get<bool>());
    ++per_kind[answer_kind_name(item.resolved_kind())];
    correct += c.at("correct").get<bool>();
    null_extractions += want.is_null();
  }
  // The table covers all three kinds, both verdicts and missing answers.
  CHECK(per_kind["math"] >= 60);
  CHECK(per_kind["choice"] >= 20);
  CHECK(per_kind["text"] >= 15);
  CHECK(correct > 20);
  CHECK(static_cast<int>(cases.size()) - correct > 20);
  CHECK(null_extractions >= 8);
}

TEST_CASE("grade: numeric equivalence and normalisation", "[grade]") {
  CHECK(math_answers_equal("0.5", "\\frac{1}{2}"));
  CHECK(math_answers_equal("1/2", "\\dfrac12"));
  CHECK(math_answers_equal("1,000", "1000"));
  CHECK(math_answers_equal("3.0", "3"));
  CHECK(math_answers_equal("-\\frac{1}{2}", "\\frac{-1}{2}"));
  CHECK_FALSE(math_answers_equal("0.33", "\\frac{1}{3}"));
  CHECK_FALSE(math_answers_equal("50\\%", "0.5"));
  CHECK(math_answers_equal("50\\%", "50"));
  CHECK(normalize_math_answer("x = \\sqrt2") == "\\sqrt{2}");
  CHECK(normalize_math_answer("10\\text{ cm}") == "10");
  CHECK(normalize_math_answer("\\text{Tuesday}") == "Tuesday");
  CHECK(math_answer_value("\\frac{3}{4}").value() == Approx(0.75));
  CHECK_FALSE(math_answer_value("\\sqrt{2}").has_value());
  CHECK(normalize_text_answer("The  Beatles!") == "beatles");
}

TEST_CASE("grade: the answer section and bad input lines", "[grade]") {
  CHECK(answer_section("a</think>b<|im_end|>junk", false).value() == "b");
  CHECK_FALSE(answer_section("still thinking 42", true).has_value());
  CHECK_FALSE(answer_section("<think> 42", false).has_value());
  CHECK(answer_section("42", false).value() == "42");
  using nlohmann::json;
  CHECK(cs_test::error_code_of([] { grade_item_from_json(json{{"answer", "1"}}, "x"); }) == 7);
  CHECK(cs_test::error_code_of([] { grade_item_from_json(json{{"response", "1"}, {"answer", json::array()}}, "x"); }) == 7);
  CHECK(cs_test::error_code_of([] { grade_item_from_json(json{{"response", "1"}, {"answer", "1"}, {"type", "essay"}}, "x"); }) == 7);
  // A multiple-choice reference that is neither a letter in range nor a choice.
  GradeItem bad;
  bad.response = "\\boxed{A}";
  bad.answer = "F";
  bad.choices = {"a", "b"};
  CHECK(cs_test::error_code_of([&] { grade_answer(bad); }) == 7);
  json many = {{"response", "A"}, {"answer", "A"}, {"choices", json::array()}};
  for (int i = 0; i < 27; ++i) many["choices"].push_back("c" + std::to_string(i));
  CHECK(cs_test::error_code_of([&] { grade_item_from_json(many, "x"); }) == 7);
}

TEST_CASE("grade command: one JSON line per input line, ids kept, bad lines exit 7 naming the line", "[grade][cli]") {
  cs_test::TempDir tmp("grade-cli");
  const std::string in = cs_test::write_file(tmp.path, "in.jsonl",
                                             "{\"id\": 7, \"response\": \"so \\\\boxed{\\\\frac12}\", \"answer\": \"0.5\", \"think_open\": false}\n"
                                             "\n"
                                             "{\"response\": \"<think>x</think>The answer is (C)\", \"answer\": \"B\", "
                                             "\"choices\": [\"a\", \"b\", \"c\"]}\n"
                                             "{\"response\": \"still thinking, 4\", \"answer\": \"4\"}\n");
  std::string out;
  REQUIRE(cs_test::run_command(cs_test::binary_path() + " -q grade --input-jsonl " + in + " --think-open", out) == 0);
  CHECK(out ==
        "{\"id\":7,\"extracted\":\"\\\\frac12\",\"correct\":true}\n"
        "{\"extracted\":\"C\",\"correct\":false}\n"
        "{\"extracted\":null,\"correct\":false}\n");
  const std::string bad = cs_test::write_file(tmp.path, "bad.jsonl", "{\"response\": \"1\", \"answer\": \"1\"}\n{\"answer\": 3}\n");
  CHECK(cs_test::run_command(cs_test::binary_path() + " grade --input-jsonl " + bad, out) == 7);
  CHECK(out.find("bad.jsonl:2: missing \"response\"") != std::string::npos);
}
