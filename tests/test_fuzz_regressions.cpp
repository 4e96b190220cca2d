// The fuzz targets' committed inputs, replayed on every test run (issue #17): every file under
// tests/data/fuzz/<target>/seeds and tests/data/fuzz/<target>/regressions goes through the target's
// function (fuzz/targets.cpp). A target rejects bad input with circuitscope::Error, which it catches
// itself; any other exception fails the test naming the file, and a crash stops the test case.
// Also: the parsing entry points added for the fuzzers (SafetensorsFile::from_bytes, parse_pair_line)
// and the dataset's line-length limit.
// test_util.hpp first: it includes ATen (whose glog defines CHECK) before Catch2, so Catch's CHECK wins.
#include "test_util.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "circuitscope/dataset.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/safetensors.hpp"
#include "targets.hpp"

using namespace circuitscope;

// A named namespace: the tests are compiled in unity batches, where anonymous ones would collide.
namespace fuzz_replay {

std::string fuzz_data_dir() { return cs_test::data_dir() + "/fuzz"; }

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The regular files of a folder, by name; none when it does not exist. Dot files (.gitkeep) are not inputs.
std::vector<std::string> input_files(const std::string& dir) {
  std::vector<std::string> out;
  if (!std::filesystem::is_directory(dir)) return out;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.is_regular_file() && e.path().filename().string()[0] != '.') out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Runs one file through a target. Whatever the target lets escape propagates to the caller.
void replay_file(const FuzzTarget& target, const std::string& path) {
  const std::string bytes = read_bytes(path);
  target.run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

// Library warnings about the (mostly bad) inputs would fill the test log.
struct QuietLogs {
  spdlog::level::level_enum saved = spdlog::get_level();
  QuietLogs() { spdlog::set_level(spdlog::level::off); }
  ~QuietLogs() { spdlog::set_level(saved); }
};

void replay_target(const std::string& name) {
  const FuzzTarget* target = find_fuzz_target(name);
  REQUIRE(target != nullptr);
  const std::vector<std::string> seeds = input_files(fuzz_data_dir() + "/" + name + "/seeds");
  const std::vector<std::string> regressions = input_files(fuzz_data_dir() + "/" + name + "/regressions");
  CHECK(!seeds.empty());  // every target has a committed seed corpus
  QuietLogs quiet;
  for (const auto* files : {&seeds, &regressions})
    for (const std::string& path : *files) {
      INFO("fuzz target " << name << ", input " << path);
      CHECK_NOTHROW(replay_file(*target, path));
    }
}

int throws_logic_error(const uint8_t*, size_t) { throw std::logic_error("not an Error"); }
int throws_error(const uint8_t*, size_t) { throw Error(ErrorCode::kFormat, "an Error"); }
int returns_zero(const uint8_t*, size_t) { return 0; }

}  // namespace fuzz_replay

TEST_CASE("fuzz: every folder under tests/data/fuzz names a target", "[fuzz]") {
  int folders = 0;
  for (const auto& e : std::filesystem::directory_iterator(fuzz_replay::fuzz_data_dir())) {
    if (!e.is_directory()) continue;
    ++folders;
    INFO("folder " << e.path().string());
    CHECK(find_fuzz_target(e.path().filename().string()) != nullptr);
  }
  CHECK(folders == static_cast<int>(fuzz_targets().size()));
}

TEST_CASE("fuzz: the replay lets every escaping exception through", "[fuzz]") {
  // The replay must fail when a target lets anything out: the targets catch Error themselves, so
  // whatever reaches the replay is a finding.
  static_assert(!std::is_base_of_v<Error, FuzzInvariantError>, "an invariant break must not look like a rejection");
  cs_test::TempDir tmp{"fuzz-replay"};
  const std::string path = tmp.path + "/input";
  {
    std::ofstream out(path, std::ios::binary);
    out << "{\"any\": \"bytes\"}";
  }
  CHECK_THROWS_AS(fuzz_replay::replay_file({"fake", fuzz_replay::throws_logic_error}, path), std::logic_error);
  CHECK_THROWS_AS(fuzz_replay::replay_file({"fake", fuzz_replay::throws_error}, path), Error);
  CHECK_NOTHROW(fuzz_replay::replay_file({"fake", fuzz_replay::returns_zero}, path));
  // And the real targets take any bytes without letting an Error out (they reject it themselves).
  fuzz_replay::QuietLogs quiet;
  for (const FuzzTarget& t : fuzz_targets()) {
    INFO("fuzz target " << t.name);
    CHECK_NOTHROW(fuzz_replay::replay_file(t, path));
  }
}

TEST_CASE("fuzz regressions: safetensors", "[fuzz]") { fuzz_replay::replay_target("safetensors"); }
TEST_CASE("fuzz regressions: config", "[fuzz]") { fuzz_replay::replay_target("config"); }
TEST_CASE("fuzz regressions: tokenizer", "[fuzz]") { fuzz_replay::replay_target("tokenizer"); }
TEST_CASE("fuzz regressions: chat_template", "[fuzz]") { fuzz_replay::replay_target("chat_template"); }
TEST_CASE("fuzz regressions: dataset_line", "[fuzz]") { fuzz_replay::replay_target("dataset_line"); }
TEST_CASE("fuzz regressions: report", "[fuzz]") { fuzz_replay::replay_target("report"); }
TEST_CASE("fuzz regressions: sweep_spec", "[fuzz]") { fuzz_replay::replay_target("sweep_spec"); }

TEST_CASE("SafetensorsFile::from_bytes reads what open reads", "[fuzz][safetensors]") {
  const std::string path = cs_test::data_dir() + "/hf-tiny/qwen2-tiny/model.safetensors";
  const TensorStore on_disk = TensorStore::open_file(path);
  const TensorStore in_memory = TensorStore::from_file(SafetensorsFile::from_bytes(fuzz_replay::read_bytes(path), path));
  REQUIRE(in_memory.names() == on_disk.names());
  CHECK(in_memory.source() == path);
  CHECK(in_memory.fingerprint() == on_disk.fingerprint());
  for (const std::string& name : on_disk.names()) {
    INFO(name);
    CHECK(in_memory.load(name).equal(on_disk.load(name)));
  }
  // The header's nesting is limited before it is parsed.
  std::string header = std::string(600, '[') + std::string(600, ']');
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  CHECK(cs_test::error_code_of([&] { SafetensorsFile::from_bytes(bytes + header, "deep.safetensors"); }) ==
        static_cast<int>(ErrorCode::kFormat));
  CHECK(cs_test::error_code_of([&] { SafetensorsFile::from_bytes("1234567", "short.safetensors"); }) ==
        static_cast<int>(ErrorCode::kFormat));
}

TEST_CASE("parse_pair_line: one line - Error(kInput) with the reason - lines over 16 MiB refused", "[fuzz][dataset]") {
  PairReadOptions o;
  o.vocab_size = 100;
  const PairExample ex = parse_pair_line(R"({"clean_ids": [1, 2], "corrupted_ids": [1, 3], "answer_id": 4, "wrong_id": 5})", o);
  CHECK(ex.clean_ids == std::vector<int64_t>{1, 2});
  CHECK(ex.answer_id == 4);
  auto reason = [&](const std::string& line) -> std::string {
    try {
      parse_pair_line(line, o);
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kInput);
      return e.what();
    }
    return "";
  };
  CHECK(reason(R"({"clean_ids": [1, 200], "corrupted_ids": [1, 3], "answer_id": 4, "wrong_id": 5})") ==
        "'clean_ids'[1] = 200 is out of range: vocab_size is 100");
  CHECK(reason("{\"clean_ids\": [1") .rfind("malformed JSON", 0) == 0);
  CHECK(reason(std::string(1000, '[')).find("JSON nested deeper than 512 levels") != std::string::npos);

  // Exactly 16 MiB is a line like any other; one byte more is refused before parsing.
  const std::string pair = R"({"clean_ids": [1], "corrupted_ids": [2], "answer_id": 4, "wrong_id": 5})";
  const size_t limit = 16u << 20;
  const std::string at_limit = pair + std::string(limit - pair.size(), ' ');
  CHECK(parse_pair_line(at_limit, o).corrupted_ids == std::vector<int64_t>{2});
  CHECK(reason(at_limit + " ") == "line is 16777217 bytes; the limit is 16 MiB");
  cs_test::TempDir tmp{"fuzz-long-line"};
  const std::string path = tmp.path + "/pairs.jsonl";
  {
    std::ofstream out(path, std::ios::binary);
    out << pair << "\n" << at_limit << " \n";
  }
  try {
    read_pairs_jsonl(path, o);
    FAIL("read_pairs_jsonl accepted a line over 16 MiB");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kInput);
    CHECK(std::string(e.what()) == path + ":2: line is 16777217 bytes; the limit is 16 MiB");
  }
  o.skip_bad = true;
  const PairDataset ds = read_pairs_jsonl(path, o);
  CHECK(ds.examples.size() == 1);
  CHECK(ds.skipped == 1);
}
