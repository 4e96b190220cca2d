// Deterministic reports (issue #17): the same inputs, seed, thread count and device give the same
// bytes, apart from the documented "run" block (time, host) of a sweep's unit and key files.
// ATen before Catch2: c10 pulls in glog, whose CHECK must not replace Catch2's in a unity batch.
#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "circuitscope/report.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using circuitscope::read_text_file;

namespace determinism_test {

std::string toy_pairs() {
  std::string s;
  for (int i = 0; i < 6; ++i) {
    const int a = 21 + i, b = 41 + 2 * i;
    s += "{\"clean_ids\": [5, " + std::to_string(a) + ", 30, " + std::to_string(b) + ", 9], \"corrupted_ids\": [5, " +
         std::to_string(a + 1) + ", 30, " + std::to_string(b + 3) + ", 9], \"answer_id\": " + std::to_string(b) +
         ", \"wrong_id\": " + std::to_string(b + 3) + "}\n";
  }
  return s;
}

// Every regular file under `dir` by relative path: its bytes, or for the unit and key files (JSON
// with a "run" block) the JSON without it.
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const std::string rel = fs::relative(e.path(), dir).string();
    std::string bytes = read_text_file(e.path().string());
    if (e.path().extension() == ".json") {
      nlohmann::json j = nlohmann::json::parse(bytes);
      if (j.is_object() && j.contains("run")) {
        j.erase("run");
        bytes = "[run removed] " + j.dump();
      }
    }
    out[rel] = bytes;
  }
  return out;
}

int run(const std::string& args) {
  std::string out;
  const int rc = cs_test::run_command(cs_test::binary_path() + " --threads 2 " + args + " 2>&1", out);
  INFO(args << "\n" << out);
  REQUIRE(rc == 0);
  return rc;
}

}  // namespace determinism_test

TEST_CASE("attribute, compare and evaluate write the same bytes when run again", "[determinism][cli]") {
  cs_test::TempDir tmp("determinism");
  const std::string root = tmp.path;
  cs_test::write_random_toy(root + "/base", 11);
  cs_test::write_random_toy(root + "/post", 12);
  const std::string pairs = cs_test::write_file(root, "pairs.jsonl", determinism_test::toy_pairs());
  const std::string common = " --data " + pairs + " --ig-steps 3 --top-n 40 --sizes 10,30 --batch-size 4";
  std::map<std::string, std::string> first;
  for (int round = 0; round < 2; ++round) {
    determinism_test::run("attribute " + root + "/base" + common + " --out " + root + "/base.json");
    determinism_test::run("attribute " + root + "/post" + common + " --out " + root + "/post.json --html " + root +
                          "/post.html");
    determinism_test::run("compare " + root + "/base.json " + root + "/post.json --out " + root + "/cmp.json");
    determinism_test::run("evaluate " + root + "/post " + root + "/post.json --data " + pairs + " --top-n 25 --out " +
                          root + "/eval.json");
    std::map<std::string, std::string> now;
    for (const char* f : {"base.json", "post.json", "post.html", "cmp.json", "eval.json"})
      now[f] = read_text_file(root + "/" + f);
    if (round == 0) {
      first = now;
      for (const auto& [f, bytes] : now) REQUIRE(bytes.size() > 100);
    } else {
      for (const auto& [f, bytes] : now) {
        INFO(f);
        CHECK(bytes == first[f]);
      }
    }
  }
  // The two models' reports differ (the comparison above is not between empty files).
  CHECK(first["base.json"] != first["post.json"]);
}

TEST_CASE("a sweep run again writes the same bytes, apart from its run blocks", "[determinism][sweep][cli]") {
  cs_test::TempDir tmp("determinism-sweep");
  const std::string root = tmp.path;
  cs_test::write_random_toy(root + "/base", 21);
  cs_test::write_random_toy(root + "/run/checkpoint-10", 22);
  cs_test::write_random_toy(root + "/run/checkpoint-20", 23);
  cs_test::write_file(root, "pairs.jsonl", determinism_test::toy_pairs());
  cs_test::write_file(root, "sweep.json",
                      "{\"base\": \"base\", \"checkpoints\": \"run/checkpoint-*\", \"data\": {\"pairs\": \"pairs.jsonl\"},"
                      " \"chunk_size\": 4, \"attribute\": {\"top-n\": 30, \"ig-steps\": 2, \"batch-size\": 2}}\n");
  const std::string out = root + "/out";
  std::map<std::string, std::string> first;
  for (int round = 0; round < 2; ++round) {
    fs::remove_all(out);
    determinism_test::run("sweep plan " + root + "/sweep.json --out " + out);
    determinism_test::run("sweep run " + out + "/sweep.json --out " + out + " --shard 1/2");
    determinism_test::run("sweep run " + out + "/sweep.json --out " + out + " --shard 2/2");
    determinism_test::run("sweep merge " + out);
    const auto now = determinism_test::snapshot(out);
    if (round == 0) {
      first = now;
      REQUIRE(first.count("summary.json") == 1);
      REQUIRE(first.count("reports/checkpoint-20.json") == 1);
      int with_run = 0;
      for (const auto& [f, bytes] : first) with_run += bytes.rfind("[run removed]", 0) == 0;
      CHECK(with_run >= 6);  // 6 units (3 checkpoints x 2 chunks) carry run blocks
    } else {
      REQUIRE(now.size() == first.size());
      for (const auto& [f, bytes] : now) {
        INFO(f);
        REQUIRE(first.count(f) == 1);
        CHECK(bytes == first[f]);
      }
    }
  }
}
