// The `tokenize` and `bench tokenize` commands, run as the built binary.
#include <catch2/catch.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace {

const std::string kCliQwenDir = std::string(CS_TEST_DATA_DIR) + "/tokenizers/qwen3";

struct Run {
  int status;
  std::string out;
};

// Runs the CLI with `args` (already shell-quoted), stdout captured, stderr discarded.
Run run_cli(const std::string& args) {
  std::string cmd = std::string("'") + CS_BINARY_PATH + "' " + args + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string l;
  while (std::getline(in, l)) out.push_back(l);
  return out;
}

}  // namespace

TEST_CASE("tokenize --json prints ids - tokens and offsets", "[tokenizer]") {
  Run r = run_cli("tokenize '" + kCliQwenDir + "' 'Hello world' --json");
  REQUIRE(r.status == 0);
  auto j = nlohmann::json::parse(r.out);
  CHECK(j["ids"] == nlohmann::json({9707, 1879}));
  CHECK(j["tokens"] == nlohmann::json({"Hello", "Ġworld"}));
  CHECK(j["offsets"] == nlohmann::json({{0, 5}, {5, 11}}));
}

TEST_CASE("tokenize table and --decode", "[tokenizer]") {
  Run t = run_cli("tokenize '" + kCliQwenDir + "' 'Hello world'");
  REQUIRE(t.status == 0);
  CHECK(t.out.find("9707") != std::string::npos);
  CHECK(t.out.find("[5,11)") != std::string::npos);
  Run d = run_cli("tokenize '" + kCliQwenDir + "' --decode 9707,1879,151645");
  REQUIRE(d.status == 0);
  CHECK(d.out == "Hello world<|im_end|>\n");
  Run s = run_cli("tokenize '" + kCliQwenDir + "' --decode '9707 1879 151645' --skip-special-tokens");
  CHECK(s.out == "Hello world\n");
}

TEST_CASE("tokenize --input-jsonl writes one {text - ids} line per input line", "[tokenizer]") {
  namespace fs = std::filesystem;
  fs::path in = fs::temp_directory_path() / ("cs_tok_cli_" + std::to_string(::getpid()) + ".jsonl");
  std::vector<std::pair<std::string, std::vector<int64_t>>> ref;
  {
    std::ifstream r(kCliQwenDir + "/reference.jsonl");
    std::ofstream o(in);
    std::string line;
    for (int k = 0; k < 40 && std::getline(r, line); ++k) {
      auto j = nlohmann::json::parse(line);
      ref.emplace_back(j["text"].get<std::string>(), j["ids"].get<std::vector<int64_t>>());
      o << nlohmann::json({{"text", ref.back().first}}).dump() << "\n";
      if (k == 3) o << "\n";  // blank lines are skipped
    }
  }
  Run r = run_cli("tokenize '" + kCliQwenDir + "' --input-jsonl '" + in.string() + "'");
  REQUIRE(r.status == 0);
  auto out = lines(r.out);
  REQUIRE(out.size() == ref.size());
  for (size_t i = 0; i < ref.size(); ++i) {
    auto j = nlohmann::json::parse(out[i]);
    CHECK(j["text"] == ref[i].first);
    CHECK(j["ids"].get<std::vector<int64_t>>() == ref[i].second);
  }
  // A bad line is an input error (exit code 7) naming the line.
  { std::ofstream(in, std::ios::app) << "{\"txt\": 1}\n"; }
  CHECK(run_cli("tokenize '" + kCliQwenDir + "' --input-jsonl '" + in.string() + "'").status == 7);
  fs::remove(in);
}

TEST_CASE("tokenize error exit codes", "[tokenizer]") {
  CHECK(run_cli("tokenize /nonexistent/dir 'x'").status == 3);                       // kIo
  CHECK(run_cli("tokenize '" + kCliQwenDir + "' \"$(printf 'a\\377')\"").status == 7);     // invalid UTF-8: kInput
  CHECK(run_cli("tokenize '" + kCliQwenDir + "'").status == 2);                          // nothing to do: kUsage
  CHECK(run_cli("tokenize '" + kCliQwenDir + "' x --decode 1").status == 2);             // two modes: kUsage
}

TEST_CASE("bench tokenize prints throughput", "[tokenizer]") {
  Run r = run_cli("bench tokenize '" + kCliQwenDir + "' --mb 0.05");
  REQUIRE(r.status == 0);
  CHECK(r.out.find("MB/s") != std::string::npos);
  CHECK(r.out.find("tokens/s") != std::string::npos);
}
