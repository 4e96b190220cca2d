// pairs: prompt files, numeric corruption, and model-opening pairs on two tiny random Qwen2 models
// that share a hand-made byte-level tokenizer and a Qwen3-style chat template.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>

#include "circuitscope/error.hpp"
#include "circuitscope/pairs.hpp"
#include "circuitscope/safetensors.hpp"
#include "circuitscope/sampling.hpp"
#include "circuitscope/tokenizer_json.hpp"
#include "test_util.hpp"

using namespace circuitscope;
namespace fs = std::filesystem;

namespace {

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// GPT-2's byte alphabet: printable Latin-1 bytes stand for themselves, the rest map to U+0100 on.
std::vector<std::string> byte_chars() {
  std::vector<std::string> t(256);
  uint32_t extra = 0;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool direct = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    t[b] = utf8(direct ? b : 256 + extra++);
  }
  return t;
}

const char* kTemplate =
    "{%- if messages[0].role == 'system' %}{{ '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}{%- if message.role != 'system' %}"
    "{{ '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{ '<think>\\n\\n</think>\\n\\n' }}"
    "{%- else %}{{ '<think>\\n' }}{%- endif %}{%- endif %}";

// Byte-level BPE without merges: ids 0..255 are bytes, then the chat tokens. `swap` exchanges the
// tokens of ids 65 and 66 (a different vocabulary with the same size).
nlohmann::ordered_json tokenizer_json(bool swap = false) {
  const auto bc = byte_chars();
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (int b = 0; b < 256; ++b) vocab[bc[b]] = swap && (b == 65 || b == 66) ? 131 - b : b;
  nlohmann::ordered_json added = nlohmann::ordered_json::array();
  const std::vector<std::pair<std::string, bool>> specials = {
      {"<|endoftext|>", true}, {"<|im_start|>", true}, {"<|im_end|>", true}, {"<think>", false}, {"</think>", false}};
  for (size_t i = 0; i < specials.size(); ++i) {
    vocab[specials[i].first] = 256 + static_cast<int>(i);
    added.push_back({{"id", 256 + i}, {"content", specials[i].first}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", specials[i].second}});
  }
  nlohmann::ordered_json bl = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
                               {"use_regex", true}};
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", added},
          {"normalizer", nullptr},
          {"pre_tokenizer", bl},
          {"post_processor", nullptr},
          {"decoder", bl},
          {"model",
           {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
            {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"vocab", vocab},
            {"merges", nlohmann::ordered_json::array()}}}};
}

const int64_t kImEnd = 258;

// A 2-layer random Qwen2 (GQA, q/k/v biases) with the tokenizer above. Weights are large enough
// that greedy choices are far from ties. eos_like >= 0 unties the output layer and gives <|im_end|>
// 1.05 x the output row of that token, so the model ends its turn where it would have chosen it.
void write_model(const std::string& dir, uint64_t seed, bool swap_vocab = false, int64_t eos_like = -1) {
  fs::create_directories(dir);
  const int64_t V = 264, D = 32, H = 4, K = 2, Dh = 8, M = 64, L = 2;
  nlohmann::json cfg = {{"architectures", {"Qwen2ForCausalLM"}}, {"vocab_size", V}, {"hidden_size", D},
                        {"num_hidden_layers", L}, {"num_attention_heads", H}, {"num_key_value_heads", K},
                        {"intermediate_size", M}, {"tie_word_embeddings", eos_like < 0}, {"max_position_embeddings", 256},
                        {"rope_theta", 10000.0}, {"eos_token_id", kImEnd}, {"bos_token_id", 256}};
  std::ofstream(fs::path(dir) / "config.json") << cfg.dump(2);
  std::ofstream(fs::path(dir) / "tokenizer.json") << tokenizer_json(swap_vocab).dump(1);
  nlohmann::json tc = {{"chat_template", kTemplate}, {"eos_token", "<|im_end|>"}, {"pad_token", "<|endoftext|>"},
                       {"bos_token", nullptr}};
  std::ofstream(fs::path(dir) / "tokenizer_config.json") << tc.dump(2);
  at::Generator gen = make_cpu_generator(seed);
  auto rnd = [&](std::vector<int64_t> shape, double sd) { return at::normal(0.0, sd, shape, gen); };
  std::vector<std::pair<std::string, at::Tensor>> w = {{"model.embed_tokens.weight", rnd({V, D}, 1.0)},
                                                       {"model.norm.weight", at::ones({D})}};
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    w.push_back({p + "input_layernorm.weight", at::ones({D})});
    w.push_back({p + "post_attention_layernorm.weight", at::ones({D})});
    w.push_back({p + "self_attn.q_proj.weight", rnd({H * Dh, D}, 0.3)});
    w.push_back({p + "self_attn.q_proj.bias", rnd({H * Dh}, 0.3)});
    w.push_back({p + "self_attn.k_proj.weight", rnd({K * Dh, D}, 0.3)});
    w.push_back({p + "self_attn.k_proj.bias", rnd({K * Dh}, 0.3)});
    w.push_back({p + "self_attn.v_proj.weight", rnd({K * Dh, D}, 0.3)});
    w.push_back({p + "self_attn.v_proj.bias", rnd({K * Dh}, 0.3)});
    w.push_back({p + "self_attn.o_proj.weight", rnd({D, H * Dh}, 0.3)});
    w.push_back({p + "mlp.gate_proj.weight", rnd({M, D}, 0.3)});
    w.push_back({p + "mlp.up_proj.weight", rnd({M, D}, 0.3)});
    w.push_back({p + "mlp.down_proj.weight", rnd({D, M}, 0.3)});
  }
  if (eos_like >= 0) {
    at::Tensor head = w[0].second.clone();
    head[kImEnd].copy_(head[eos_like] * 1.05);
    w.push_back({"lm_head.weight", head});
  }
  write_safetensors((fs::path(dir) / "model.safetensors").string(), w);
}

struct Lab {
  std::string root, a, b, other_vocab;
  Lab() {
    root = cs_test::make_temp_dir("pairs");
    a = root + "/post";
    b = root + "/base";
    other_vocab = root + "/other";
    write_model(a, 1, false, 39);
    write_model(b, 2);
    write_model(other_vocab, 2, /*swap_vocab=*/true);
  }
  ~Lab() { cs_test::remove_tree(root); }
};

const Lab& lab() {
  static Lab l;
  return l;
}

std::string write_text(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

std::string cli() { return cs_test::binary_path(); }

const std::vector<std::string> kProblems = {"17+25*3", "4*5-6", "9-2+13"};

}  // namespace

TEST_CASE("prompt files: text lines and JSONL", "[pairs]") {
  const std::string dir = cs_test::make_temp_dir("prompts");
  const auto text = read_prompt_file(write_text(dir + "/p.txt", "17+25*3\r\n\n  4*5-6  \n"));
  REQUIRE(text.size() == 2);
  CHECK(text[0].prompt == "17+25*3");
  CHECK(text[0].problem == "17+25*3");
  CHECK(text[0].line == 1);
  CHECK(text[1].prompt == "  4*5-6  ");  // kept as written
  CHECK(text[1].line == 3);

  const auto js = read_prompt_file(write_text(
      dir + "/p.jsonl", "{\"prompt\": \"What is 2+3?\", \"problem\": \"2+3\", \"id\": 7}\n\n{\"prompt\": \"1*1\"}\n"));
  REQUIRE(js.size() == 2);
  CHECK(js[0].prompt == "What is 2+3?");
  CHECK(js[0].problem == "2+3");
  CHECK(js[0].id == "7");
  CHECK(js[1].problem == "1*1");
  CHECK(js[1].id.empty());

  try {
    read_prompt_file(write_text(dir + "/bad.jsonl", "{\"prompt\": \"a\"}\n{\"text\": \"b\"}\n"));
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kInput);
    CHECK(std::string(e.what()).find("bad.jsonl:2:") != std::string::npos);
    CHECK(std::string(e.what()).find("\"prompt\"") != std::string::npos);
  }
  CHECK_THROWS_AS(read_prompt_file(write_text(dir + "/empty.txt", "\n  \n")), Error);
  CHECK_THROWS_AS(read_prompt_file(dir + "/missing.txt"), Error);
  cs_test::remove_tree(dir);
}

TEST_CASE("numeric pairs: one operand changed - answers' first units differ", "[pairs]") {
  NumericPairOptions opts;
  SECTION("forced choice: 0*5 with operands up to 1 can only become 1*5") {
    opts.max_operand = 1;
    for (uint64_t seed = 0; seed < 5; ++seed) {
      std::mt19937_64 rng(seed);
      const auto p = make_numeric_pair("0*5", opts, rng, nullptr);
      REQUIRE(p);
      CHECK(p->clean == "0*5");
      CHECK(p->corrupted == "1*5");
      CHECK(p->answer == "0");
      CHECK(p->wrong == "5");
      CHECK(p->operand_index == 0);
    }
  }
  SECTION("no change possible: 0*0 with operands up to 1") {
    opts.max_operand = 1;
    std::mt19937_64 rng(0);
    CHECK_FALSE(make_numeric_pair("0*0", opts, rng, nullptr));
  }
  SECTION("3-5 = -2: the wrong answer must not start with '-'") {
    opts.max_operand = 5;
    // By hand: changing the first operand gives 0-5..5-5, only 5-5=0 does not start with '-';
    // changing the second gives 3-0=3, 3-1=2, 3-2=1, 3-3=0 (3-4=-1 starts with '-').
    const std::map<std::string, std::string> allowed = {
        {"5-5", "0"}, {"3-0", "3"}, {"3-1", "2"}, {"3-2", "1"}, {"3-3", "0"}};
    std::set<std::string> seen;
    for (uint64_t seed = 0; seed < 30; ++seed) {
      std::mt19937_64 rng(seed);
      const auto p = make_numeric_pair("3-5", opts, rng, nullptr);
      REQUIRE(p);
      CHECK(p->answer == "-2");
      INFO(p->corrupted);
      REQUIRE(allowed.count(p->corrupted) == 1);
      CHECK(p->wrong == allowed.at(p->corrupted));
      seen.insert(p->corrupted);
    }
    CHECK(seen.size() > 1);  // the seed chooses
  }
  SECTION("embedded in a prompt, same digit counts, first tokens under a real tokenizer") {
    auto tok = load_tokenizer(lab().a);
    for (uint64_t seed = 0; seed < 20; ++seed) {
      std::mt19937_64 rng(seed);
      const auto p = make_numeric_pair("What is 17+25*3? Answer:", opts, rng, tok.get());
      REQUIRE(p);
      CHECK(p->clean == "What is 17+25*3? Answer:");
      CHECK(p->clean_problem == "17+25*3");
      CHECK(p->answer == "92");
      long long a = -1, b = -1, c = -1;
      REQUIRE(std::sscanf(p->corrupted_problem.c_str(), "%lld+%lld*%lld", &a, &b, &c) == 3);
      CHECK(p->corrupted == "What is " + p->corrupted_problem + "? Answer:");
      CHECK(p->corrupted_problem.size() == p->clean_problem.size());
      CHECK(((a != 17) + (b != 25) + (c != 3)) == 1);
      CHECK(a <= 25);  // default bound: the problem's largest operand
      CHECK(b <= 25);
      CHECK(p->wrong == std::to_string(a + b * c));
      CHECK(tok->encode(p->wrong, false).ids.front() != tok->encode("92", false).ids.front());
    }
  }
  SECTION("no expression") {
    std::mt19937_64 rng(0);
    CHECK_THROWS_AS(make_numeric_pair("hello 12", opts, rng, nullptr), Error);
  }
}

TEST_CASE("numeric pairs CLI: answer and continuation forms", "[pairs]") {
  const std::string dir = cs_test::make_temp_dir("numcli");
  const std::string prompts = write_text(dir + "/p.txt", "0*5\n0*0\n");
  std::string out;
  REQUIRE(cs_test::run_command(cli() + " pairs --numeric --max-operand 1 --tokenizer " + lab().a + " --prompts " +
                                   prompts + " --out " + dir + "/n.jsonl",
                               out) == 0);
  INFO(out);
  auto rows = cs_test::read_jsonl(dir + "/n.jsonl");
  REQUIRE(rows.size() == 1);  // 0*0 cannot change its answer
  CHECK(rows[0]["clean"] == "0*5");
  CHECK(rows[0]["corrupted"] == "1*5");
  CHECK(rows[0]["answer"] == "0");
  CHECK(rows[0]["wrong"] == "5");
  CHECK(out.find("1 problem(s) skipped") != std::string::npos);

  REQUIRE(cs_test::run_command(cli() + " pairs --numeric --form continuation --max-operand 1 --prompts " + prompts +
                                   " --out " + dir + "/c.jsonl",
                               out) == 0);
  rows = cs_test::read_jsonl(dir + "/c.jsonl");
  REQUIRE(rows.size() == 1);
  CHECK(rows[0]["clean_continuation"] == "0");
  CHECK(rows[0]["corrupted_continuation"] == "5");
  CHECK_FALSE(rows[0].contains("answer"));
  // Options of model-opening pairs are refused with --numeric.
  CHECK(cs_test::run_command(cli() + " pairs --numeric --reverse --prompts " + prompts + " --out " + dir + "/x.jsonl",
                             out) == static_cast<int>(ErrorCode::kUsage));
  CHECK(cs_test::run_command(cli() + " pairs --numeric --think off --prompts " + prompts + " --out " + dir + "/x.jsonl",
                             out) == static_cast<int>(ErrorCode::kUsage));
  cs_test::remove_tree(dir);
}

TEST_CASE("pairs: openings equal generate's greedy output - --reverse swaps them", "[pairs]") {
  const Lab& l = lab();
  const std::string dir = cs_test::make_temp_dir("pairscli");
  std::string jsonl;
  for (size_t i = 0; i < kProblems.size(); ++i)
    jsonl += nlohmann::json{{"prompt", kProblems[i]}, {"problem", "p" + std::to_string(i)}, {"id", i}}.dump() + "\n";
  const std::string prompts = write_text(dir + "/p.jsonl", jsonl);

  // The reference: `circuitscope generate` on the same chat prompts, one batch, as pairs does.
  int eos_rows = 0;
  auto reference = [&](const std::string& model) {
    std::string cmd = cli() + " generate " + model + " --think on --max-new-tokens 12 --json";
    for (const auto& p : kProblems) cmd += " --chat '" + p + "'";
    std::string out;
    REQUIRE(cs_test::run_command("(" + cmd + " > " + dir + "/gen.jsonl)", out) == 0);
    std::vector<std::string> texts;
    for (const auto& row : cs_test::read_jsonl(dir + "/gen.jsonl")) {
      std::string t = row["text"];
      const std::string eot = "<|im_end|>";
      if (row["finish_reason"] == "eos") {
        ++eos_rows;
        REQUIRE(t.size() >= eot.size());
        REQUIRE(t.substr(t.size() - eot.size()) == eot);
        t.resize(t.size() - eot.size());
      }
      texts.push_back(t);
    }
    REQUIRE(texts.size() == kProblems.size());
    return texts;
  };
  const auto ref_a = reference(l.a);
  const auto ref_b = reference(l.b);
  REQUIRE(eos_rows >= 1);  // model A ends some turns: the end-of-turn token is left out
  size_t differ = 0;
  for (size_t i = 0; i < kProblems.size(); ++i) differ += ref_a[i] != ref_b[i];
  REQUIRE(differ == kProblems.size());  // two different random models

  std::string out;
  const std::string base_cmd = cli() + " pairs " + l.a + " " + l.b + " --prompts " + prompts + " --max-new-tokens 12";
  REQUIRE(cs_test::run_command(base_cmd + " --out " + dir + "/fwd.jsonl", out) == 0);
  INFO(out);
  CHECK(out.find("ETA") != std::string::npos);
  // The random models emit lone bytes that decode to U+FFFD, which re-tokenizes differently.
  CHECK(out.find("do not re-tokenize to the generated tokens") != std::string::npos);
  const auto fwd = cs_test::read_jsonl(dir + "/fwd.jsonl");
  REQUIRE(fwd.size() == kProblems.size());
  for (size_t i = 0; i < fwd.size(); ++i) {
    CHECK(fwd[i]["clean"] == kProblems[i]);
    CHECK(fwd[i]["corrupted"] == kProblems[i]);
    CHECK(fwd[i]["clean_continuation"] == ref_a[i]);
    CHECK(fwd[i]["corrupted_continuation"] == ref_b[i]);
    CHECK(fwd[i]["problem"] == "p" + std::to_string(i));
    CHECK(fwd[i]["id"] == i);
    CHECK_FALSE(fwd[i].contains("answer"));
  }

  REQUIRE(cs_test::run_command(base_cmd + " --reverse --out " + dir + "/rev.jsonl", out) == 0);
  const auto rev = cs_test::read_jsonl(dir + "/rev.jsonl");
  REQUIRE(rev.size() == kProblems.size());
  for (size_t i = 0; i < rev.size(); ++i) {
    CHECK(rev[i]["clean_continuation"] == ref_b[i]);
    CHECK(rev[i]["corrupted_continuation"] == ref_a[i]);
  }

  // --think off renders a different prompt, so the openings follow generate --think off.
  std::string cmd = cli() + " generate " + l.a + " --think off --max-new-tokens 12 --json --chat '" + kProblems[0] + "'";
  REQUIRE(cs_test::run_command("(" + cmd + " > " + dir + "/off.jsonl)", out) == 0);
  const auto off_ref = cs_test::read_jsonl(dir + "/off.jsonl");
  REQUIRE(off_ref.size() == 1);
  CHECK(off_ref[0]["prompt"].get<std::string>().find("</think>") != std::string::npos);
  const std::string one = write_text(dir + "/one.txt", kProblems[0] + "\n");
  REQUIRE(cs_test::run_command(cli() + " pairs " + l.a + " " + l.b + " --prompts " + one +
                                   " --think off --max-new-tokens 12 --out " + dir + "/off_pairs.jsonl",
                               out) == 0);
  const auto off = cs_test::read_jsonl(dir + "/off_pairs.jsonl");
  REQUIRE(off.size() == 1);
  std::string t = off_ref[0]["text"];
  if (off_ref[0]["finish_reason"] == "eos") t.resize(t.size() - std::string("<|im_end|>").size());
  CHECK(off[0]["clean_continuation"] == t);
  CHECK(off[0]["problem"] == kProblems[0]);  // text lines: the problem is the line
  cs_test::remove_tree(dir);
}

TEST_CASE("pairs: sampled openings follow generate's sampling with the same seed", "[pairs]") {
  const Lab& l = lab();
  const std::string dir = cs_test::make_temp_dir("pairssample");
  std::string lines;
  for (const auto& p : kProblems) lines += p + "\n";
  const std::string prompts = write_text(dir + "/p.txt", lines);
  const std::string sampling = " --max-new-tokens 10 --temperature 1.5 --top-p 0.95 --seed 7";
  auto reference = [&](const std::string& model) {
    std::string cmd = cli() + " generate " + model + " --think on --json" + sampling;
    for (const auto& p : kProblems) cmd += " --chat '" + p + "'";
    std::string out;
    REQUIRE(cs_test::run_command("(" + cmd + " > " + dir + "/gen.jsonl)", out) == 0);
    std::vector<std::string> texts;
    for (const auto& row : cs_test::read_jsonl(dir + "/gen.jsonl")) {
      std::string t = row["text"];
      if (row["finish_reason"] == "eos") t.resize(t.size() - std::string("<|im_end|>").size());
      texts.push_back(t);
    }
    return texts;
  };
  const auto ref_a = reference(l.a);
  const auto ref_b = reference(l.b);
  std::string out;
  REQUIRE(cs_test::run_command(cli() + " pairs " + l.a + " " + l.b + " --prompts " + prompts + sampling + " --out " +
                                   dir + "/s.jsonl",
                               out) == 0);
  INFO(out);
  CHECK(out.find("sampled") != std::string::npos);
  const auto rows = cs_test::read_jsonl(dir + "/s.jsonl");
  REQUIRE(rows.size() == kProblems.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    CHECK(rows[i]["clean_continuation"] == ref_a[i]);
    CHECK(rows[i]["corrupted_continuation"] == ref_b[i]);
  }
  // Sampling changed something: the greedy openings of A differ from the sampled ones.
  REQUIRE(cs_test::run_command(cli() + " pairs " + l.a + " " + l.b + " --prompts " + prompts +
                                   " --max-new-tokens 10 --out " + dir + "/g.jsonl",
                               out) == 0);
  const auto greedy = cs_test::read_jsonl(dir + "/g.jsonl");
  REQUIRE(greedy.size() == kProblems.size());
  size_t differ = 0;
  for (size_t i = 0; i < rows.size(); ++i) differ += greedy[i]["clean_continuation"] != rows[i]["clean_continuation"];
  CHECK(differ > 0);
  cs_test::remove_tree(dir);
}

TEST_CASE("pairs: identical openings are skipped and counted unless --keep-identical", "[pairs]") {
  const Lab& l = lab();
  const std::string dir = cs_test::make_temp_dir("pairsid");
  const std::string prompts = write_text(dir + "/p.txt", "17+25*3\n4*5-6\n");
  std::string out;
  // The same model twice: every pair of openings is identical.
  REQUIRE(cs_test::run_command(cli() + " pairs " + l.a + " " + l.a + " --prompts " + prompts +
                                   " --max-new-tokens 6 --out " + dir + "/same.jsonl",
                               out) == 0);
  INFO(out);
  CHECK(cs_test::read_jsonl(dir + "/same.jsonl").empty());
  CHECK(out.find("2 of 2 prompt(s) gave identical openings") != std::string::npos);
  REQUIRE(cs_test::run_command(cli() + " pairs " + l.a + " " + l.a + " --prompts " + prompts +
                                   " --max-new-tokens 6 --keep-identical --out " + dir + "/kept.jsonl",
                               out) == 0);
  const auto kept = cs_test::read_jsonl(dir + "/kept.jsonl");
  REQUIRE(kept.size() == 2);
  CHECK(kept[0]["clean_continuation"] == kept[0]["corrupted_continuation"]);
  cs_test::remove_tree(dir);
}

TEST_CASE("pairs: models with different tokenizers are refused", "[pairs]") {
  const Lab& l = lab();
  auto a = load_tokenizer(l.a);
  auto other = load_tokenizer(l.other_vocab);
  try {
    check_same_tokenizer(*a, "A", *other, "B");
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kInput);
    CHECK(std::string(e.what()).find("token id 65") != std::string::npos);
  }
  CHECK_NOTHROW(check_same_tokenizer(*a, "A", *load_tokenizer(l.b), "B"));

  const std::string dir = cs_test::make_temp_dir("pairstok");
  const std::string prompts = write_text(dir + "/p.txt", "1+2\n");
  std::string out;
  CHECK(cs_test::run_command(cli() + " pairs " + l.a + " " + l.other_vocab + " --prompts " + prompts + " --out " +
                                 dir + "/x.jsonl",
                             out) == static_cast<int>(ErrorCode::kInput));
  CHECK(out.find("must share a tokenizer") != std::string::npos);
  CHECK(out.find(l.other_vocab) != std::string::npos);
  CHECK(cs_test::run_command(cli() + " pairs " + l.a + " --prompts " + prompts + " --out " + dir + "/x.jsonl", out) ==
        static_cast<int>(ErrorCode::kUsage));
  cs_test::remove_tree(dir);
}
