// compare on hand-made attribute reports (2 layers x 3 heads); every expected value worked out by hand.
#include <fstream>
#include <nlohmann/json.hpp>

#include "circuitscope/compare.hpp"
#include "circuitscope/error.hpp"
#include "test_util.hpp"

using namespace circuitscope;

namespace {

// importance[l][h]; in_circuit = importance > 0, as attribute writes it.
nlohmann::json report(const std::string& fp, const std::vector<std::vector<double>>& imp, bool with_model = true) {
  nlohmann::json heads = nlohmann::json::array();
  for (size_t l = 0; l < imp.size(); ++l)
    for (size_t h = 0; h < imp[l].size(); ++h)
      heads.push_back({{"layer", l}, {"head", h}, {"importance", imp[l][h]}, {"in_circuit", imp[l][h] > 0}});
  nlohmann::json j = {{"schema_version", 1}, {"tool", "circuitscope test"}, {"heads", heads}};
  if (with_model)
    j["model"] = {{"path", "/models/" + fp}, {"architecture", "Qwen2ForCausalLM"}, {"n_layers", imp.size()},
                  {"n_heads", imp[0].size()}, {"n_kv_heads", 1}, {"d_model", 8}, {"fingerprint", fp}};
  return j;
}

// base circuit: L0.H0, L0.H2, L1.H0; post circuit: L0.H0, L0.H1, L1.H2.
const std::vector<std::vector<double>> kBase = {{0.5, 0.0, 0.25}, {0.25, 0.0, 0.0}};
const std::vector<std::vector<double>> kPost = {{0.2, 0.4, 0.0}, {0.0, 0.0, 0.4}};

std::string write(const std::string& path, const nlohmann::json& j) {
  std::ofstream(path) << j.dump(1);
  return path;
}

}  // namespace

TEST_CASE("compare: emergent - retained - lost and E on hand-made reports", "[compare]") {
  const auto c = compare_circuits(report_heads_from_json(report("base", kBase), "base.json"),
                                  report_heads_from_json(report("post", kPost), "post.json"));
  REQUIRE(c.n_layers == 2);
  REQUIRE(c.n_heads == 3);
  REQUIRE(c.heads.size() == 6);
  auto names = [&](const std::vector<size_t>& v) {
    std::vector<std::string> s;
    for (size_t k : v) s.push_back(std::to_string(c.heads[k].layer) + "." + std::to_string(c.heads[k].head));
    return s;
  };
  // Emergent both at 0.4 (layer order kept); lost both at 0.25.
  CHECK(names(c.emergent) == std::vector<std::string>{"0.1", "1.2"});
  CHECK(names(c.retained) == std::vector<std::string>{"0.0"});
  CHECK(names(c.lost) == std::vector<std::string>{"0.2", "1.0"});
  // E = (post - base) / (post + base + 1e-6), by hand:
  //   L0.H0: -0.3/0.700001 = -0.4285708163...   L0.H1: 0.4/0.400001 = 0.9999975000...
  //   L0.H2: -0.25/0.250001 = -0.9999960000...  L1.H0: same   L1.H1: 0/1e-6 = 0   L1.H2: 0.9999975
  const std::vector<double> e = {-0.4285708163, 0.9999975000, -0.9999960000, -0.9999960000, 0.0, 0.9999975000};
  for (size_t k = 0; k < 6; ++k) CHECK(c.heads[k].effect == Approx(e[k]).margin(1e-9));
  CHECK(c.heads[1].change == HeadChange::kEmergent);
  CHECK(c.heads[4].change == HeadChange::kNeither);

  const nlohmann::ordered_json j = comparison_to_json(c);
  CHECK(j["schema_version"] == 1);
  CHECK(j["base"]["path"] == "base.json");
  CHECK(j["base"]["fingerprint"] == "base");
  CHECK(j["post"]["model_path"] == "/models/post");
  CHECK(j["base"]["circuit_heads"] == 3);
  CHECK(j["counts"]["emergent"] == 2);
  CHECK(j["counts"]["retained"] == 1);
  CHECK(j["counts"]["lost"] == 2);
  CHECK(j["emergent"][1]["layer"] == 1);
  CHECK(j["emergent"][1]["head"] == 2);
  CHECK(j["emergent"][1]["importance_post"].get<double>() == Approx(0.4));
  CHECK(j["heads"][2]["change"] == "lost");
  CHECK(j["heads"][2]["effect"].get<double>() == Approx(-0.999996).margin(1e-9));
  CHECK(j["heads"].size() == 6);
}

TEST_CASE("compare: shape from the heads array - missing heads count as zero", "[compare]") {
  // No model block: the shape comes from the heads listed; L1.H1 absent.
  nlohmann::json b = report("b", kBase, /*with_model=*/false);
  b["heads"].erase(4);
  const ReportHeads r = report_heads_from_json(b, "b.json");
  CHECK(r.n_layers == 2);
  CHECK(r.n_heads == 3);
  CHECK(r.importance[4] == 0.0);
  CHECK_FALSE(r.in_circuit[4]);
  CHECK(r.in_circuit[3]);
}

TEST_CASE("compare: errors name the files", "[compare]") {
  SECTION("different shapes") {
    const auto base = report_heads_from_json(report("b", kBase), "base.json");
    const auto post = report_heads_from_json(report("p", {{0.1, 0.2, 0.3}, {0, 0, 0}, {0.4, 0, 0}}), "post.json");
    try {
      compare_circuits(base, post);
      FAIL("expected an error");
    } catch (const Error& e) {
      const std::string m = e.what();
      CHECK(e.code() == ErrorCode::kInput);
      CHECK(m.find("base.json") != std::string::npos);
      CHECK(m.find("post.json") != std::string::npos);
      CHECK(m.find("2 layers x 3 heads") != std::string::npos);
      CHECK(m.find("3 x 3") != std::string::npos);
    }
  }
  SECTION("no heads array") {
    nlohmann::json j = report("b", kBase);
    j.erase("heads");
    try {
      report_heads_from_json(j, "nohead.json");
      FAIL("expected an error");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kFormat);
      CHECK(std::string(e.what()).find("nohead.json") != std::string::npos);
      CHECK(std::string(e.what()).find("circuit selection") != std::string::npos);
    }
  }
  SECTION("malformed entries") {
    nlohmann::json j = report("b", kBase);
    j["heads"][0].erase("importance");
    CHECK_THROWS_AS(report_heads_from_json(j, "x.json"), Error);
    j = report("b", kBase);
    j["heads"][1]["head"] = 0;  // L0.H0 twice
    CHECK_THROWS_WITH(report_heads_from_json(j, "x.json"), Catch::Contains("listed twice"));
    j = report("b", kBase);
    j["heads"][5]["layer"] = 2;  // outside model.n_layers
    CHECK_THROWS_WITH(report_heads_from_json(j, "x.json"), Catch::Contains("outside"));
  }
}

TEST_CASE("compare CLI: grids on stdout - JSON file - exit codes", "[compare]") {
  const std::string dir = cs_test::make_temp_dir("compare");
  const std::string base = write(dir + "/base.json", report("b", kBase));
  const std::string post = write(dir + "/post.json", report("p", kPost));
  std::string out;
  REQUIRE(cs_test::run_command(cs_test::binary_path() + " compare " + base + " " + post + " --out " + dir + "/c.json",
                               out) == 0);
  INFO(out);
  CHECK(out.find("emergent 2, retained 1, lost 2 of 6 heads") != std::string::npos);
  // Marker grid rows: layer 0 = retained, emergent, lost; layer 1 = lost, neither, emergent.
  CHECK(out.find("    0 | = + -\n") != std::string::npos);
  CHECK(out.find("    1 | - . +\n") != std::string::npos);
  // E grid rows ('.' where both importances are 0).
  CHECK(out.find("    0 | -0.43 +1.00 -1.00\n") != std::string::npos);
  CHECK(out.find("    1 | -1.00     . +1.00\n") != std::string::npos);
  CHECK(out.find("L1.H2") != std::string::npos);
  std::ifstream in(dir + "/c.json");
  const nlohmann::json j = nlohmann::json::parse(in);
  CHECK(j["counts"]["emergent"] == 2);
  CHECK(j["post"]["path"] == post);
  // --list: just the heads, for scripts (same order as the lists above).
  REQUIRE(cs_test::run_command(cs_test::binary_path() + " compare " + base + " " + post + " --list emergent", out) == 0);
  CHECK(out == "0.1 1.2\n");
  REQUIRE(cs_test::run_command(cs_test::binary_path() + " compare " + base + " " + post + " --list lost", out) == 0);
  CHECK(out == "0.2 1.0\n");
  CHECK(cs_test::run_command(cs_test::binary_path() + " compare " + base + " " + post + " --list gained", out) ==
        static_cast<int>(ErrorCode::kUsage));

  nlohmann::json nh = report("b", kBase);
  nh.erase("heads");
  const std::string nohead = write(dir + "/nohead.json", nh);
  CHECK(cs_test::run_command(cs_test::binary_path() + " compare " + nohead + " " + post, out) ==
        static_cast<int>(ErrorCode::kFormat));
  CHECK(out.find("--top-n or --threshold") != std::string::npos);
  const std::string big = write(dir + "/big.json", report("p", {{0, 0, 0, 0}, {0, 0, 0, 1}}));
  CHECK(cs_test::run_command(cs_test::binary_path() + " compare " + base + " " + big, out) ==
        static_cast<int>(ErrorCode::kInput));
  CHECK(out.find("big.json") != std::string::npos);
  CHECK(cs_test::run_command(cs_test::binary_path() + " compare " + dir + "/missing.json " + post, out) ==
        static_cast<int>(ErrorCode::kIo));
  cs_test::remove_tree(dir);
}
