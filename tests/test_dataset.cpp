// Pair datasets: SHA-256 of the file, the text form (answer/wrong first tokens, continuations,
// chat template rendering), and the dataset options of the attribute command.
#include <fstream>
#include <nlohmann/json.hpp>

#include "circuitscope/dataset.hpp"
#include "circuitscope/eap.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/graph.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/sha256.hpp"
#include "circuitscope/tokenizer_json.hpp"
#include "test_util.hpp"

using namespace circuitscope;

namespace {
std::string tiny_tokenizer_dir() { return cs_test::data_dir() + "/tokenizers/bytelevel_tiny"; }

std::vector<int64_t> cat(std::vector<int64_t> a, const std::vector<int64_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}
}  // namespace

TEST_CASE("sha256: FIPS 180-4 test vectors", "[dataset]") {
  REQUIRE(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  REQUIRE(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  // 56 bytes: the length no longer fits the first padding block.
  REQUIRE(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  REQUIRE(sha256_hex(std::string(1000000, 'a')) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("pair datasets carry the SHA-256 of the file's bytes", "[dataset]") {
  cs_test::TempDir tmp("dataset");
  // CRLF and a blank line: the hash is of the bytes, not of the parsed pairs.
  const std::string path = cs_test::write_file(tmp.path, "p.jsonl",
                                      "{\"clean_ids\": [1, 2, 3], \"corrupted_ids\": [1, 4], \"answer_id\": 5, "
                                      "\"wrong_id\": 6}\r\n\r\n{\"clean_ids\": [7], \"corrupted_ids\": [8, 9], "
                                      "\"answer_id\": 5, \"wrong_id\": 6}\n");
  PairReadOptions ro;
  ro.vocab_size = 512;
  const PairDataset ds = read_pairs_jsonl(path, ro);
  REQUIRE(ds.examples.size() == 2);
  REQUIRE(ds.examples[0].corrupted_ids == std::vector<int64_t>{1, 4});  // unequal lengths are accepted
  std::string out;
  REQUIRE(cs_test::run_command("sha256sum " + path, out) == 0);
  REQUIRE(ds.sha256 == out.substr(0, 64));
}

TEST_CASE("text-form pairs: prompts - answer/wrong first tokens - continuations - chat rendering", "[dataset]") {
  cs_test::TempDir tmp("dataset");
  const auto tok = load_tokenizer(tiny_tokenizer_dir());
  auto enc = [&](const std::string& s, bool special) { return tok->encode(s, special).ids; };
  // This byte-level tokenizer adds a prefix space: "the" is "Ġthe" (258), "hello" starts with "Ġ" (32).
  REQUIRE(enc("the", false) == std::vector<int64_t>{258});
  REQUIRE(enc("hello", false).size() > 1);
  REQUIRE(enc("hello", false)[0] == 32);
  PairReadOptions ro;
  ro.vocab_size = 512;
  ro.tokenizer = tok.get();
  const std::string path = cs_test::write_file(
      tmp.path, "t.jsonl",
      "{\"id\": 7, \"clean\": \"hello the cat\", \"corrupted\": \"hello a dog\", \"answer\": \"the\", \"wrong\": \"hello\"}\n"
      "{\"clean\": \"the cat\", \"corrupted\": \"the dog\", \"clean_continuation\": \"hello the\", "
      "\"corrupted_continuation\": \"the end\", \"problem\": \"ignored\"}\n");
  ro.require_answer = false;
  const PairDataset ds = read_pairs_jsonl(path, ro);
  REQUIRE(ds.examples.size() == 2);
  const PairExample& a = ds.examples[0];
  REQUIRE(a.clean_ids == enc("hello the cat", true));
  REQUIRE(a.corrupted_ids == enc("hello a dog", true));
  REQUIRE(a.answer_id == 258);
  REQUIRE(a.wrong_id == 32);  // the first token only
  REQUIRE(a.n_supervised == 0);
  const PairExample& c = ds.examples[1];
  REQUIRE(c.clean_ids == cat(enc("the cat", true), enc("hello the", false)));
  REQUIRE(c.corrupted_ids == cat(enc("the dog", true), enc("the end", false)));
  REQUIRE(c.n_supervised == static_cast<int64_t>(enc("hello the", false).size()));
  REQUIRE(c.answer_id == -1);

  // A renderer (the chat template in the CLI): the rendered text is encoded without special tokens.
  ro.render_prompt = [](const std::string& user) { return "<user>" + user + "</user><a>"; };
  const PairDataset dr = read_pairs_jsonl(path, ro);
  REQUIRE(dr.examples[1].clean_ids == cat(enc("<user>the cat</user><a>", false), enc("hello the", false)));
  REQUIRE(dr.examples[1].corrupted_ids == cat(enc("<user>the dog</user><a>", false), enc("the end", false)));

  // Bad text lines, each with its reason.
  struct Bad {
    const char* line;
    const char* reason;
  };
  const Bad bad[] = {
      // " 92" and " 95" both start with the prefix-space token.
      {"{\"clean\": \"a\", \"corrupted\": \"b\", \"answer\": \"92\", \"wrong\": \"95\"}", "start with the same token"},
      {"{\"clean\": \"a\", \"corrupted\": \"b\", \"answer\": \"92\"}", "missing key 'wrong'"},
      {"{\"clean\": \"a\", \"answer\": \"x\", \"wrong\": \"y\"}", "missing key 'corrupted'"},
      {"{\"clean\": 3, \"corrupted\": \"b\", \"answer\": \"x\", \"wrong\": \"y\"}", "'clean' is not a string"},
      {"{\"clean\": \"a\", \"corrupted\": \"b\", \"clean_continuation\": \"x\"}", "missing key 'corrupted_continuation'"},
      {"{\"clean\": \"a\", \"corrupted\": \"b\", \"answer\": \"\", \"wrong\": \"y\"}", "'answer' encodes to no tokens"},
      {"{\"clean\": \"a\", \"corrupted\": \"b\", \"clean_ids\": [1], \"answer\": \"x\", \"wrong\": \"y\"}", "mixes the text form"},
      {"{\"clean\": \"a\", \"corrupted\": \"b\"}", "missing keys 'answer' and 'wrong'"},
  };
  ro.render_prompt = nullptr;
  ro.require_answer = true;
  ro.require_continuation = false;
  for (const Bad& b : bad) {
    INFO(b.line);
    const std::string p = cs_test::write_file(tmp.path, "bad.jsonl", std::string("\n") + b.line + "\n");
    try {
      read_pairs_jsonl(p, ro);
      FAIL("no error");
    } catch (const Error& e) {
      INFO(e.what());
      REQUIRE(e.code() == ErrorCode::kInput);
      REQUIRE(std::string(e.what()).find(p + ":2: ") != std::string::npos);
      REQUIRE(std::string(e.what()).find(b.reason) != std::string::npos);
    }
  }
  // Sequence metrics need continuations; token ids past the model's vocabulary are refused.
  ro.require_answer = false;
  ro.require_continuation = true;
  REQUIRE_THROWS_WITH(read_pairs_jsonl(cs_test::write_file(tmp.path, "a.jsonl",
                                                  "{\"clean\": \"a\", \"corrupted\": \"b\", \"answer\": \"the\", \"wrong\": \"hello\"}\n"),
                                       ro),
                      Catch::Contains("missing keys 'clean_continuation' and 'corrupted_continuation'"));
  ro.require_continuation = false;
  ro.vocab_size = 100;
  REQUIRE_THROWS_WITH(read_pairs_jsonl(cs_test::write_file(tmp.path, "v.jsonl", "{\"clean\": \"hello\", \"corrupted\": \"the\"}\n"), ro),
                      Catch::Contains("of 'clean' = 257 is out of range: vocab_size is 100"));
  // Without a tokenizer a text line is a bad line that says what to do.
  ro.vocab_size = 512;
  ro.tokenizer = nullptr;
  REQUIRE_THROWS_WITH(read_pairs_jsonl(cs_test::write_file(tmp.path, "n.jsonl", "{\"clean\": \"a\", \"corrupted\": \"b\"}\n"), ro),
                      Catch::Contains("--tokenizer"));
  // Token form: continuation ids are appended the same way.
  ro.require_continuation = true;
  const PairDataset tf = read_pairs_jsonl(
      cs_test::write_file(tmp.path, "tc.jsonl",
                 "{\"clean_ids\": [1, 2], \"corrupted_ids\": [3], \"clean_continuation_ids\": [4, 5], "
                 "\"corrupted_continuation_ids\": [6]}\n"),
      ro);
  REQUIRE(tf.examples[0].clean_ids == std::vector<int64_t>{1, 2, 4, 5});
  REQUIRE(tf.examples[0].corrupted_ids == std::vector<int64_t>{3, 6});
  REQUIRE(tf.examples[0].n_supervised == 2);
}

TEST_CASE("attribute --chat --think --system: text pairs through the chat template - seq-logprob", "[dataset][cli]") {
  cs_test::TempDir tmp("dataset");
  // A tokenizer folder: the tiny byte-level tokenizer and a chat template that honours enable_thinking.
  const std::string tdir = tmp.path + "/tok";
  std::string log;
  REQUIRE(cs_test::run_command("mkdir -p " + tdir + " && cp " + tiny_tokenizer_dir() + "/tokenizer.json " + tdir, log) == 0);
  nlohmann::json cfg;
  cfg["chat_template"] =
      "{% for m in messages %}<{{ m.role }}>{{ m.content }}</s>{% endfor %}{% if add_generation_prompt %}<a>"
      "{% if enable_thinking is defined and not enable_thinking %}<think></think>{% endif %}{% endif %}";
  cs_test::write_file(tdir, "tokenizer_config.json", cfg.dump());
  const std::string data = cs_test::write_file(tmp.path, "chat.jsonl",
                                      "{\"clean\": \"the cat\", \"corrupted\": \"the dog\", \"clean_continuation\": \"hello "
                                      "the\", \"corrupted_continuation\": \"the end\"}\n"
                                      "{\"clean\": \"hello\", \"corrupted\": \"cell\", \"clean_continuation\": \"the\", "
                                      "\"corrupted_continuation\": \"hello\"}\n");
  const std::string model = cs_test::data_dir() + "/hf-tiny/qwen2-tiny";
  const std::string bin = cs_test::binary_path();
  const std::string out = tmp.path + "/r.json";
  int rc = cs_test::run_command(bin + " attribute " + model + " --data " + data + " --tokenizer " + tdir +
                                    " --chat --think off --system 'be brief' --metric seq-logprob --method eap --out " + out,
                                log);
  INFO(log);
  REQUIRE(rc == 0);
  nlohmann::json j;
  std::ifstream(out) >> j;
  REQUIRE(j["dataset"]["examples"] == 2);

  // The same pairs built by hand: the rendered prompts written out, encoded without special tokens.
  const auto tok = load_tokenizer(tdir);
  auto enc = [&](const std::string& s) { return tok->encode(s, false).ids; };
  const std::string pre = "<system>be brief</s><user>";
  const std::string post = "</s><a><think></think>";
  std::vector<PairExample> ex(2);
  ex[0].clean_ids = cat(enc(pre + "the cat" + post), enc("hello the"));
  ex[0].corrupted_ids = cat(enc(pre + "the dog" + post), enc("the end"));
  ex[0].n_supervised = static_cast<int64_t>(enc("hello the").size());
  ex[1].clean_ids = cat(enc(pre + "hello" + post), enc("the"));
  ex[1].corrupted_ids = cat(enc(pre + "cell" + post), enc("hello"));
  ex[1].n_supervised = 1;
  REQUIRE(ex[1].clean_ids.size() != ex[1].corrupted_ids.size());  // "cell" is more tokens than "hello"
  auto m = HookedTransformer::from_pretrained(model);
  Graph g({4, 4, 2, KvEdges::kPerQueryHead});
  EapOptions o;
  o.metric = MetricKind::kSeqLogprob;
  const EapResult r = eap_scores(*m, g, ex, o, 8);
  REQUIRE(j["baselines"]["clean"].get<double>() == Approx(r.metric_clean).epsilon(1e-6));
  REQUIRE(j["baselines"]["corrupted"].get<double>() == Approx(r.metric_corrupted).epsilon(1e-6));
  auto [u, d] = g.edge_nodes(*g.find_edge("input->m0"));
  REQUIRE(j["edges"]["input->m0"]["score"].get<double>() == Approx(r.scores[u][d].item<double>()).margin(1e-7).epsilon(1e-5));

  // --think on renders no empty think block: a different prompt, so different baselines.
  rc = cs_test::run_command(bin + " attribute " + model + " --data " + data + " --tokenizer " + tdir +
                                " --chat --think on --system 'be brief' --metric seq-logprob --method eap --out " + out,
                            log);
  REQUIRE(rc == 0);
  std::ifstream(out) >> j;
  REQUIRE(j["baselines"]["clean"].get<double>() != Approx(r.metric_clean).epsilon(1e-6));
  // --think without --chat is a usage error; a text dataset with a model folder that has no tokenizer says so.
  rc = cs_test::run_command(bin + " attribute " + model + " --data " + data + " --think on --out " + out, log);
  REQUIRE(rc == 2);
  rc = cs_test::run_command(bin + " attribute " + model + " --data " + data + " --metric seq-logprob --out " + out, log);
  REQUIRE(rc != 0);
}
