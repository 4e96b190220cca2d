// --config: configs/thinking-sparks.json gives the same report as the equivalent command line and
// the preset; the command line overrides the file; unknown keys and bad values name the key.
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.hpp"

namespace {
}  // namespace

TEST_CASE("attribute --config: thinking-sparks config = command line = preset - overrides - errors", "[config][cli]") {
  cs_test::TempDir tmp("config");
  const std::string data = tmp.path + "/p.jsonl";
  std::ofstream(data) << "{\"clean_ids\": [5, 17, 300, 42, 7, 99, 256, 3], \"corrupted_ids\": [5, 17, 301, 42, 7, 12, "
                         "256, 3], \"answer_id\": 300, \"wrong_id\": 301}\n"
                         "{\"clean_ids\": [9, 9, 31, 200], \"corrupted_ids\": [9, 8, 31, 200], \"answer_id\": 31, "
                         "\"wrong_id\": 30}\n";
  const std::string model = cs_test::data_dir() + "/hf-tiny/qwen2-tiny";
  const std::string config = cs_test::data_dir() + "/../../configs/thinking-sparks.json";
  const std::string base = cs_test::binary_path() + " attribute " + model + " --data " + data + " --out ";
  std::string log;
  REQUIRE(cs_test::run_command(base + tmp.path + "/a.json --config " + config, log) == 0);
  REQUIRE(cs_test::run_command(base + tmp.path + "/b.json --method eap-ig-inputs --ig-steps 5 --top-n 5000 --simplify 0.1",
                               log) == 0);
  REQUIRE(cs_test::run_command(base + tmp.path + "/c.json --method eap-ig-inputs --selection thinking-sparks", log) == 0);
  const nlohmann::json a = cs_test::read_json_file(tmp.path + "/a.json"), b = cs_test::read_json_file(tmp.path + "/b.json"), c = cs_test::read_json_file(tmp.path + "/c.json");
  REQUIRE(a == b);  // reports hold no output path or time: the whole JSON must agree
  REQUIRE(a == c);
  REQUIRE(a["method"]["name"] == "eap-ig-inputs");
  REQUIRE(a["method"]["ig_steps"] == 5);
  REQUIRE(a["circuit"]["selection"] == "simplify");
  REQUIRE(a["circuit"]["top_n"] == 5000);
  REQUIRE(a["circuit"]["simplify"] == 0.1);
  // Every kept edge passes tau; tau removes something here (479 edges < 5000, so only tau acts).
  int64_t passing = 0;
  for (const auto& [n, e] : a["edges"].items()) {
    if (e["in_graph"].get<bool>()) REQUIRE(std::abs(e["score"].get<double>()) >= 0.1);
    passing += std::abs(e["score"].get<double>()) >= 0.1;
  }
  REQUIRE(a["circuit"]["selected"] == passing);
  REQUIRE(passing < 479);

  // A config with comments, the model and paths in it, a flag and a list; the command line wins.
  std::ofstream(tmp.path + "/my.json") << "// mine\n{\n  \"model_dir\": \"" << model << "\", \"data\": \"" << data
                                        << "\",\n  /* block comment */ \"out\": \"" << tmp.path
                                        << "/d.json\", \"method\": \"eap-ig-inputs\", \"ig_steps\": 5,\n"
                                           "  \"loss\": true, \"sizes\": [10, 40], \"top-n\": 30\n}\n";
  REQUIRE(cs_test::run_command(cs_test::binary_path() + " attribute --config " + tmp.path + "/my.json --ig-steps 2", log) ==
          0);
  const nlohmann::json d = cs_test::read_json_file(tmp.path + "/d.json");
  REQUIRE(d["method"]["ig_steps"] == 2);
  REQUIRE(d["method"]["loss"] == true);
  REQUIRE(d["circuit"]["top_n"] == 30);
  REQUIRE(d["faithfulness"]["sizes"].size() == 2);
  REQUIRE(d["baselines"]["clean"].get<double>() == Approx(-a["baselines"]["clean"].get<double>()).margin(1e-6));

  struct Bad {
    const char* text;
    int rc;
    const char* message;
  };
  const Bad bad[] = {
      {"{\"tpo_n\": 3}", 2, "unknown key 'tpo_n'"},
      {"{\"config\": \"x.json\"}", 2, "unknown key 'config'"},
      {"{\"loss\": \"yes\"}", 4, "key 'loss' is a flag"},
      {"{\"ig_steps\": \"many\"}", 2, "key 'ig_steps'"},
      {"{\"dtype\": \"f16\"}", 2, "key 'dtype'"},
      {"{\"top_n\": 3,", 4, "malformed JSON"},
      {"[1, 2]", 4, "must be a JSON object"},
  };
  for (const Bad& x : bad) {
    INFO(x.text);
    std::ofstream(tmp.path + "/bad.json") << x.text;
    const int rc = cs_test::run_command(base + tmp.path + "/e.json --config " + tmp.path + "/bad.json", log);
    INFO(log);
    REQUIRE(rc == x.rc);
    REQUIRE(log.find(x.message) != std::string::npos);
    REQUIRE(log.find("bad.json") != std::string::npos);
  }
  REQUIRE(cs_test::run_command(base + tmp.path + "/e.json --config " + tmp.path + "/missing.json", log) == 3);
  REQUIRE(cs_test::run_command(cs_test::binary_path() + " attribute --data " + data + " --out " + tmp.path + "/e.json", log) ==
          2);
  REQUIRE(log.find("MODEL_DIR is required") != std::string::npos);
}
