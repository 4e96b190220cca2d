// Bounded resources on hostile input (issue #17): each case must end with a clear Error, quickly and
// without memory in proportion to a size the input claims. None of these is timed: a regression
// shows up as a hang (ctest's timeout), a crash or a wrong error.
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ATen/ATen.h>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "circuitscope/chat_template.hpp"
#include "circuitscope/config.hpp"
#include "circuitscope/dataset.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/graph.hpp"
#include "circuitscope/json_limits.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/pipeline.hpp"
#include "circuitscope/report.hpp"
#include "circuitscope/runtime.hpp"
#include "circuitscope/safetensors.hpp"
#include "circuitscope/tokenizer.hpp"
#include "circuitscope/tokenizer_json.hpp"
#include "test_util.hpp"

using namespace circuitscope;
namespace fs = std::filesystem;

namespace limits_test {

// Expects `f` to throw circuitscope::Error with `code` and a message containing every needle.
template <typename F>
void expect_error(F&& f, ErrorCode code, const std::vector<std::string>& needles) {
  try {
    f();
  } catch (const Error& e) {
    INFO("message: " << e.what());
    CHECK(e.code() == code);
    for (const auto& n : needles) CHECK(std::string(e.what()).find(n) != std::string::npos);
    return;
  }
  FAIL("no circuitscope::Error thrown");
}

std::string nested_json(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

std::string repeat(const std::string& s, int n) {
  std::string out;
  out.reserve(s.size() * n);
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

void write_st_raw(const fs::path& p, uint64_t declared_len, const std::string& header, size_t data_bytes) {
  std::ofstream out(p, std::ios::binary);
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((declared_len >> (8 * i)) & 0xff));
  out << header << std::string(data_bytes, '\0');
}

nlohmann::json tiny_tokenizer_json() {
  std::ifstream in(cs_test::data_dir() + "/tokenizers/bytelevel_tiny/tokenizer.json");
  return nlohmann::json::parse(in);
}

}  // namespace limits_test

using limits_test::expect_error;

TEST_CASE("JSON nested 100,000 deep is refused before parsing, at every reader", "[limits][errors]") {
  const std::string deep = limits_test::nested_json(100000);
  expect_error([&] { check_json_depth(deep, "x.json"); }, ErrorCode::kFormat, {"x.json", "nested deeper than 512"});
  // The limit is exact, and brackets inside strings or comments do not count.
  CHECK_NOTHROW(check_json_depth(limits_test::nested_json(kMaxJsonDepth), "x"));
  CHECK_THROWS_AS(check_json_depth(limits_test::nested_json(kMaxJsonDepth + 1), "x"), Error);
  CHECK_NOTHROW(check_json_depth("[\"" + std::string(100000, '[') + "\\\"" + "\"]", "x"));
  CHECK_NOTHROW(check_json_depth("[1, /* " + std::string(1000, '{') + " */ 2]", "x", true));
  CHECK_THROWS_AS(check_json_depth("[1, /* " + std::string(1000, '{') + " */ 2]", "x", false), Error);

  cs_test::TempDir tmp("limits-json");
  const std::string report = cs_test::write_file(tmp.path, "report.json", "{\"a\": " + deep + "}");
  expect_error([&] { circuitscope::read_json_file(report); }, ErrorCode::kFormat, {"report.json", "nested deeper"});
  expect_error([&] { tokenizer_from_json("{\"model\": " + deep + "}", "deep/tokenizer.json"); }, ErrorCode::kFormat,
               {"deep/tokenizer.json", "nested deeper"});
  const fs::path model = fs::path(tmp.path) / "model";
  fs::create_directories(model);
  cs_test::write_file(model.string(), "config.json", "{\"architectures\": " + deep + "}");
  expect_error([&] { load_config(model.string()); }, ErrorCode::kFormat, {"config.json", "nested deeper"});
  const std::string pairs = cs_test::write_file(tmp.path, "pairs.jsonl", "{\"clean_ids\": " + deep + "}\n");
  PairReadOptions ro;
  ro.vocab_size = 100;
  expect_error([&] { read_pairs_jsonl(pairs, ro); }, ErrorCode::kInput, {"pairs.jsonl:1", "nested deeper"});

  // The command line: one error line, exit code 4 (malformed file).
  std::string out;
  const int rc = cs_test::run_command(cs_test::binary_path() + " compare " + report + " " + report + " 2>&1", out);
  INFO(out);
  CHECK(rc == 4);
  CHECK(out.find("nested deeper than 512") != std::string::npos);
}

TEST_CASE("Jinja templates nested 100,000 deep fail at parse time", "[limits][chat]") {
  const nlohmann::ordered_json ctx = nlohmann::ordered_json::object();
  const int n = 100000;
  expect_error([&] { render_template("{{ " + std::string(n, '(') + "1" + std::string(n, ')') + " }}", ctx, "parens"); },
               ErrorCode::kFormat, {"parens", "nested deeper than 200"});
  expect_error([&] { render_template(limits_test::repeat("{% if true %}", n) + limits_test::repeat("{% endif %}", n), ctx, "ifs"); },
               ErrorCode::kFormat, {"ifs", "nested deeper than 200"});
  expect_error([&] { render_template("{{ [" + limits_test::repeat("[", n) + limits_test::repeat("]", n) + "] }}", ctx, "lists"); },
               ErrorCode::kFormat, {"nested deeper than 200"});
  // Chains build deep trees without recursion in the parser; their size is bounded instead.
  expect_error([&] { render_template("{{ 1" + limits_test::repeat(" + 1", n) + " }}", ctx, "chain"); },
               ErrorCode::kFormat, {"chain", "expression too large"});
  expect_error([&] { render_template("{{ " + limits_test::repeat("not ", n) + "true }}", ctx, "nots"); },
               ErrorCode::kFormat, {"expression too large"});
  expect_error([&] { render_template("{{ x" + limits_test::repeat("|string", n) + " }}", ctx, "filters"); },
               ErrorCode::kFormat, {"expression too large"});
  // Real sizes stay well inside the limits.
  CHECK(render_template("{{ 1" + limits_test::repeat(" + 1", 999) + " }}", ctx) == "1000");
  CHECK(render_template(limits_test::repeat("{% if true %}", 150) + "x" + limits_test::repeat("{% endif %}", 150), ctx) ==
        "x");
}

TEST_CASE("Jinja templates that loop, recurse or grow without end hit a budget", "[limits][chat]") {
  const nlohmann::ordered_json ctx = nlohmann::ordered_json::object();
  expect_error([&] {
    render_template("{% set r = range(100000) %}{% for i in r %}{% for j in r %}{% endfor %}{% endfor %}", ctx, "loops");
  }, ErrorCode::kInput, {"loops", "more than 1000000 steps"});
  expect_error([&] { render_template("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", ctx, "rec"); }, ErrorCode::kInput,
               {"rec", "nested deeper"});
  // Exponential recursion under the depth limit: the step budget ends it.
  expect_error([&] {
    render_template("{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}", ctx,
                    "exp");
  }, ErrorCode::kInput, {"exp", "steps"});
  expect_error([&] { render_template("{{ 'x' * 10 ** 12 }}", ctx, "rep"); }, ErrorCode::kInput, {"rep", "repetition"});
  expect_error([&] { render_template("{{ [1, 2] * 10 ** 12 }}", ctx, "reps"); }, ErrorCode::kInput, {"repetition"});
  expect_error([&] {
    render_template("{% set ns = namespace(s='x') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
                    "{{ ns.s | length }}",
                    ctx, "doubling");
  }, ErrorCode::kInput, {"doubling", "MiB"});
  expect_error([&] { render_template("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}", ctx, "cycle"); },
               ErrorCode::kInput, {"cycle", "contain itself"});
  expect_error([&] {
    render_template("{% set ns = namespace(x=none) %}{% for i in range(1000) %}{% set ns.x = [ns.x] %}{% endfor %}", ctx,
                    "nest");
  }, ErrorCode::kInput, {"nest", "nested deeper than 256"});
  // Widths that decide an allocation are checked before it; a fill must be one character.
  expect_error([&] { render_template("{{ 'a'.center(3000000000) }}", ctx, "center"); }, ErrorCode::kInput, {"center", "MiB"});
  expect_error([&] { render_template("{{ 'a'.center(9, 'xy') }}", ctx, "fill"); }, ErrorCode::kInput, {"one character"});
  expect_error([&] { render_template("{{ 'x' | indent(3000000000) }}", ctx, "indent"); }, ErrorCode::kInput, {"indent"});
  expect_error([&] { render_template("{{ '%99999999999999999999s' % 'a' }}", ctx, "pct"); }, ErrorCode::kInput,
               {"pct", "too large"});
  // Lists that share items print in time exponential in their depth: a visit budget ends it.
  expect_error([&] {
    render_template("{% set ns = namespace(a=[1]) %}{% for i in range(40) %}{% set ns.a = [ns.a, ns.a] %}{% endfor %}{{ ns.a }}",
                    ctx, "dag");
  }, ErrorCode::kInput, {"dag", "visited more than"});
  // Within budget: a macro that recurses 200 deep, a namespace nested 200 deep, a string built up
  // piece by piece (960 kB, quadratic copying), and a cycler whose method outlives it.
  CHECK(render_template("{% set ns = namespace(c='') %}{% for i in range(1200) %}{% set ns.c = ns.c ~ ('y' * 800) %}"
                        "{% endfor %}{{ ns.c | length }}",
                        ctx) == "960000");
  CHECK(render_template("{% set f = cycler(1, 2).next %}{{ f() }}{{ f() }}{{ f() }}", ctx) == "121");
  CHECK(render_template("{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{% else %}done{% endif %}{% endmacro %}{{ f(200) }}",
                        ctx) == "done");
  CHECK(render_template("{% set ns = namespace(x=0) %}{% for i in range(200) %}{% set ns.x = [ns.x] %}{% endfor %}ok", ctx) ==
        "ok");
}

TEST_CASE("tokenizer.json: a million merges, and a regex that backtracks catastrophically", "[limits][tokenizer]") {
  // A million merges that name tokens the vocabulary lacks: refused at the first one.
  nlohmann::json bad = limits_test::tiny_tokenizer_json();
  auto& merges = bad["model"]["merges"];
  merges = nlohmann::json::array();
  for (int i = 0; i < 1000000; ++i) merges.push_back("zz" + std::to_string(i) + " q");
  expect_error([&] { tokenizer_from_json(bad.dump(), "merges/tokenizer.json"); }, ErrorCode::kFormat,
               {"merges/tokenizer.json", "merges"});

  // A million valid merges (every 2- to 4-letter string over a-z, then 5-letter ones): a real,
  // if large, tokenizer. It loads (linear in its size) and uses them.
  nlohmann::json big = limits_test::tiny_tokenizer_json();
  big["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "Removed"}, {"invert", false}};
  big["decoder"] = nullptr;
  big["post_processor"] = nullptr;
  big["added_tokens"] = nlohmann::json::array();
  nlohmann::json vocab = nlohmann::json::object();
  nlohmann::json big_merges = nlohmann::json::array();
  std::vector<std::string> level;
  for (char c = 'a'; c <= 'z'; ++c) level.emplace_back(1, c);
  int64_t id = 0;
  for (const auto& s : level) vocab[s] = id++;
  while (big_merges.size() < 1000000) {
    std::vector<std::string> next_level;
    for (const auto& s : level)
      for (char c = 'a'; c <= 'z' && big_merges.size() < 1000000; ++c) {
        const std::string t = s + c;
        vocab[t] = id++;
        big_merges.push_back(s + " " + std::string(1, c));
        next_level.push_back(t);
      }
    level = std::move(next_level);
  }
  big["model"]["vocab"] = std::move(vocab);
  big["model"]["merges"] = std::move(big_merges);
  big["model"]["unk_token"] = nullptr;
  big["model"]["byte_fallback"] = false;
  const auto tok = tokenizer_from_json(big.dump(), "big/tokenizer.json");
  REQUIRE(tok->vocab_size() >= 1000026);
  CHECK(tok->token_to_id("aaaab").has_value());  // made by the 475,229th merge
  const auto ids = tok->encode("abz zz", false).ids;  // a b -> ab, ab z -> abz
  REQUIRE(ids.size() == 2);
  CHECK(tok->id_to_token(ids[0]) == "abz");
  CHECK(tok->id_to_token(ids[1]) == "zz");

  // (a+)+$ against 40 a's and a '!': exponential backtracking, stopped by PCRE2's match limit.
  nlohmann::json evil = limits_test::tiny_tokenizer_json();
  evil["pre_tokenizer"] = {{"type", "Split"},
                           {"pattern", {{"Regex", "(a+)+$"}}},
                           {"behavior", "Isolated"},
                           {"invert", false}};
  const auto slow = tokenizer_from_json(evil.dump(), "evil/tokenizer.json");
  expect_error([&] { slow->encode(std::string(40, 'a') + "!", false); }, ErrorCode::kInput, {"(a+)+$", "limit"});
}

TEST_CASE("dataset lines: 100 MB, and token ids past the vocabulary", "[limits][dataset]") {
  cs_test::TempDir tmp("limits-data");
  PairReadOptions ro;
  ro.vocab_size = 1000;
  {
    std::ofstream f(fs::path(tmp.path) / "huge.jsonl", std::ios::binary);
    f << "{\"clean_ids\": [1, 2], \"corrupted_ids\": [1, 3], \"answer_id\": 2, \"wrong_id\": 3}\n";
    f << "{\"clean\": \"" << std::string(100u << 20, 'a') << "\"}\n";
  }
  expect_error([&] { read_pairs_jsonl(tmp.path + "/huge.jsonl", ro); }, ErrorCode::kInput, {"huge.jsonl:2", "16 MiB"});
  const std::string past = cs_test::write_file(
      tmp.path, "past.jsonl", "{\"clean_ids\": [1, 1000], \"corrupted_ids\": [1, 3], \"answer_id\": 2, \"wrong_id\": 3}\n");
  expect_error([&] { read_pairs_jsonl(past, ro); }, ErrorCode::kInput, {"past.jsonl:1", "1000", "out of range"});
  const std::string negative = cs_test::write_file(
      tmp.path, "neg.jsonl", "{\"clean_ids\": [1, 2], \"corrupted_ids\": [1, 3], \"answer_id\": -5, \"wrong_id\": 3}\n");
  expect_error([&] { read_pairs_jsonl(negative, ro); }, ErrorCode::kInput, {"neg.jsonl:1", "-5"});
}

TEST_CASE("safetensors headers that claim more than the file holds", "[limits][safetensors]") {
  cs_test::TempDir tmp("limits-st");
  const fs::path p = fs::path(tmp.path) / "x.safetensors";
  const std::string ok_header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  // A header length of 2^63: refused before any allocation.
  limits_test::write_st_raw(p, uint64_t{1} << 63, ok_header, 8);
  expect_error([&] { SafetensorsFile::open(p.string()); }, ErrorCode::kFormat, {"9223372036854775808", "100 MiB"});
  // 100 MiB + 1 claimed by a (sparse) file that really is that long.
  limits_test::write_st_raw(p, (uint64_t{100} << 20) + 1, ok_header, 0);
  fs::resize_file(p, (uint64_t{100} << 20) + 64);
  expect_error([&] { SafetensorsFile::open(p.string()); }, ErrorCode::kFormat, {"104857601", "100 MiB"});
  // A tensor far larger than the file: 2^31 x 2^31 floats in 8 bytes.
  const std::string huge = R"({"a":{"dtype":"F32","shape":[2147483648,2147483648],"data_offsets":[0,8]}})";
  limits_test::write_st_raw(p, huge.size(), huge, 8);
  expect_error([&] { SafetensorsFile::open(p.string()); }, ErrorCode::kFormat, {"tensor 'a'", "too many", "span 8"});
  // Offsets at 2^64 - 1 and past the end of the data.
  const std::string far = R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[18446744073709551614,18446744073709551615]}})";
  limits_test::write_st_raw(p, far.size(), far, 8);
  expect_error([&] { SafetensorsFile::open(p.string()); }, ErrorCode::kFormat, {"tensor 'a'", "beyond the data buffer"});
  const std::string overlap =
      R"({"a":{"dtype":"U8","shape":[6],"data_offsets":[0,6]},"b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})";
  limits_test::write_st_raw(p, overlap.size(), overlap, 8);
  expect_error([&] { SafetensorsFile::open(p.string()); }, ErrorCode::kFormat, {"overlapping"});
}

TEST_CASE("config.json claiming absurd sizes is refused before anything is allocated per layer", "[limits][config]") {
  // Found by CI's 30 s fuzz run: num_hidden_layers = 51,644,637,085,514 made the parser allocate a
  // per-layer vector (an 800 GB request).
  std::ifstream in(cs_test::data_dir() + "/hf-tiny/qwen2-tiny/config.json");
  const nlohmann::json base = nlohmann::json::parse(in);
  REQUIRE_NOTHROW(parse_config(base, "config.json"));
  const std::vector<std::pair<std::string, int64_t>> cases = {
      {"num_hidden_layers", 51644637085514}, {"num_hidden_layers", 4097},
      {"vocab_size", int64_t{1} << 40},      {"hidden_size", int64_t{1} << 40},
      {"intermediate_size", int64_t{1} << 40}, {"num_attention_heads", int64_t{1} << 40},
      {"head_dim", int64_t{1} << 40}};
  for (const auto& [key, value] : cases) {
    INFO(key << " = " << value);
    nlohmann::json j = base;
    j[key] = value;
    if (key == "num_attention_heads") j["num_key_value_heads"] = value;
    if (key == "num_hidden_layers") {  // the per-layer rule that allocated
      j["use_sliding_window"] = true;
      j["sliding_window"] = 16;
    }
    expect_error([&] { parse_config(j, "config.json"); }, ErrorCode::kConfig, {"config.json", std::to_string(value)});
  }
  nlohmann::json at_limit = base;
  at_limit["num_hidden_layers"] = 4096;
  CHECK(parse_config(at_limit, "config.json").n_layers == 4096);
}

TEST_CASE("NaN or Inf in weights or activations: a warning naming the tensor, an error with --strict",
          "[limits][model]") {
  cs_test::TempDir tmp("limits-nan");
  const std::string src = cs_test::data_dir() + "/hf-tiny/qwen2-tiny";
  fs::copy_file(src + "/config.json", tmp.path + "/config.json");
  const TensorStore store = TensorStore::open_dir(src);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  const std::string poisoned = "model.layers.1.self_attn.v_proj.weight";
  for (const auto& name : store.names()) {
    at::Tensor t = store.load(name).clone();
    if (name == poisoned) {
      t.view(-1)[3] = std::numeric_limits<float>::quiet_NaN();
      t.view(-1)[5] = std::numeric_limits<float>::infinity();
    }
    tensors.emplace_back(name, t);
  }
  write_safetensors(tmp.path + "/model.safetensors", tensors);

  struct StrictReset {
    ~StrictReset() { set_strict_numerics(false); }
  } reset;
  set_strict_numerics(true);
  expect_error([&] { HookedTransformer::from_pretrained(tmp.path); }, ErrorCode::kInput,
               {"tensor '" + poisoned + "'", "2 NaN or Inf", "--strict"});
  // Without --strict the model loads (with a warning); attribution then finds the activations
  // non-finite and names where they start.
  set_strict_numerics(false);
  auto model = HookedTransformer::from_pretrained(tmp.path);
  PairReadOptions ro;
  ro.vocab_size = model->config().vocab_size;
  const PairDataset ds = read_pairs_jsonl(
      cs_test::write_file(tmp.path, "p.jsonl",
                          "{\"clean_ids\": [5, 17, 300, 42], \"corrupted_ids\": [5, 17, 301, 42], \"answer_id\": 300, "
                          "\"wrong_id\": 301}\n"),
      ro);
  AttributeSpec spec;
  spec.method = AttributionMethod::kEap;
  set_strict_numerics(true);
  const GraphSpec gspec{model->config().n_layers, model->config().n_heads, model->config().n_kv_heads, spec.kv_edges};
  const Graph graph(gspec);
  expect_error([&] { score_edges(*model, graph, ds.examples, spec); },
               ErrorCode::kInput, {"NaN or Inf", "blocks.1.", "clean run of line 1", "--strict"});
  set_strict_numerics(false);
  CHECK_NOTHROW(score_edges(*model, graph, ds.examples, spec));
}

TEST_CASE("a writer killed mid-write leaves the old file or the new one, never part of one", "[limits][report]") {
  cs_test::TempDir tmp("limits-kill");
  const std::string path = tmp.path + "/report.json";
  // Version k: "k\n", 8 MiB of filler, "k\n" (whole iff the first and last lines agree and the size fits).
  const size_t filler = size_t{8} << 20;
  auto version = [&](int k) { return std::to_string(k) + "\n" + std::string(filler, 'x') + "\n" + std::to_string(k) + "\n"; };
  write_file_atomically(path, version(0));
  std::mt19937 rng(7);
  int killed_mid_write = 0;
  for (int round = 0; round < 2; ++round) {
    const bool streaming = round == 1;
    for (int trial = 0; trial < 12; ++trial) {
      const pid_t pid = ::fork();
      REQUIRE(pid >= 0);
      if (pid == 0) {
        // The child rewrites the file as fast as it can until it is killed.
        for (int k = 1;; ++k) {
          if (streaming) {
            AtomicFileWriter w(path);
            const std::string v = version(k);
            for (size_t off = 0; off < v.size(); off += 4096) w.stream().write(v.data() + off, std::min<size_t>(4096, v.size() - off));
            w.commit();
          } else {
            write_file_atomically(path, version(k));
          }
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 60));
      ::kill(pid, SIGKILL);
      int status = 0;
      ::waitpid(pid, &status, 0);
      CHECK(WIFSIGNALED(status));
      std::ifstream in(path, std::ios::binary);
      const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      const size_t first_nl = text.find('\n');
      REQUIRE(first_nl != std::string::npos);
      const std::string k = text.substr(0, first_nl);
      CHECK(text == version(std::stoi(k)));
      // Temporary files left behind show that the kill landed inside a write.
      for (const auto& e : fs::directory_iterator(tmp.path))
        if (e.path().filename().string().find("report.json.tmp.") == 0) {
          ++killed_mid_write;
          fs::remove(e.path());
        }
    }
  }
  INFO("kills that landed inside a write: " << killed_mid_write << " of 24");
  CHECK(killed_mid_write >= 3);
}
