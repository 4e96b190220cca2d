// circuitscope bench tokenize DIR [--mb 10] [--doc-kb 4] [--seed 1]
// Encodes deterministically generated mixed text (prose, math, code, CJK, numbers/emoji) on one thread
// and prints load time, MB/s and tokens/s, and the decode rate.
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "bench.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/tokenizer_json.hpp"

namespace circuitscope::app {
namespace {

struct BenchTokenizeOptions {
  std::string dir;
  double mb = 10.0;
  double doc_kb = 4.0;
  uint64_t seed = 1;
};

const std::vector<std::string> kProse = {
    "The committee met on Tuesday to review the budget, and most members agreed that the proposal was sound.",
    "She walked along the river until the light faded, counting the boats that drifted past the old mill.",
    "Researchers reported that the new method reduced errors by a wide margin compared with earlier approaches.",
    "If you can't find the receipt, we'll still accept the return as long as the item hasn't been used.",
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.",
    "In the late afternoon the market square filled with vendors selling bread, cheese, and bright flowers.",
    "Whatever the outcome, the team's effort over the past season deserves recognition from everyone involved.",
    "He argued that the theory, while elegant, failed to explain several observations made during the trial.",
    "Residents were asked to conserve water during the dry months; most of them complied without complaint.",
    "A careful reader will notice that the second chapter contradicts the first in a number of small details.",
    "The {w} of {w} was {w}, and {w} {w} the {w} before {w} {w}.",
    "{W} {w} {w} {w}, {w} {w} {w} {w} {w}; {w} {w} {w}.",
    "According to {W} {W}, the {w} {w} is {a} percent {w} than last year.",
};

const std::vector<std::string> kMath = {
    "Let $f(x) = x^2 + {a}x + {b}$. Then $f'(x) = 2x + {a}$ and the minimum is at $x = -{a}/2$.",
    "\\begin{align} \\int_0^{a} t^2\\,dt &= \\frac{{a}^3}{3} \\\\ \\sum_{k=1}^{{b}} k &= \\frac{{b}({b}+1)}{2} \\end{align}",
    "We have $\\sqrt{{a}^2 + {b}^2} \\le {a} + {b}$, so the answer is \\boxed{{c}}.",
    "Since ${a} \\times {b} = {c}$, dividing both sides by ${b}$ gives ${a}$; hence $x \\in [0, {a})$.",
    "The probability is $P(X \\ge {a}) = 1 - \\Phi\\left(\\frac{{a} - \\mu}{\\sigma}\\right) \\approx 0.{b}$.",
};

const std::vector<std::string> kCode = {
    "def {id}(xs, k={a}):\n    total = 0\n    for i, x in enumerate(xs):\n        if x % k == 0:\n            total += x * i\n    return total\n",
    "for (int i = 0; i < {a}; ++i) {\n\tbuf[i] = {id}(i, {b}) ^ 0x{c};\n}\n",
    "const {id} = async (url) => {\n  const res = await fetch(url + \"?page={a}\");\n  return res.json();\n};\n",
    "SELECT name, COUNT(*) AS n FROM {id} WHERE score > {a} GROUP BY name ORDER BY n DESC LIMIT {b};\n",
    "    # TODO: handle the empty case\n    if not {id}:\n        raise ValueError(f\"expected {a} items, got {{len({id})}}\")\n",
};

const std::vector<std::string> kCjk = {
    "今天天气很好，我们去公园散步吧。",
    "这个问题的答案是{a}，请仔细检查计算过程。",
    "東京の冬は思ったより寒くなかったが、風が強い日が多かった。",
    "人工智能正在改变我们的工作方式和生活习惯。",
    "서울에서 부산까지 기차로 약 세 시간이 걸립니다.",
    "学习一门新的语言需要耐心和坚持，每天练习{a}分钟就会有进步。",
    "{h}，{h}。{h}{h}！",
    "{h}的{h}是{h}，{h}{a}。",
};

const std::vector<std::string> kOther = {
    "Order #{a}-{b} shipped on 2024-11-{c} at 06:{b}:00Z 🚀",
    "https://example.com/path/{id}?q={a}&r={b}#frag",
    "Température: {a},{b} °C — naïve café résumé 🙂",
    "Привет, мир! Это тест номер {a}.",
    "Version {a}.{b}.{c} → released ✅ (see CHANGELOG)",
};

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

// A pronounceable pseudo-word, so the text is not a small set of repeated words (which would make the
// tokenizer's cache look better than it is on real data).
std::string pseudo_word(std::mt19937_64& rng, bool capital) {
  static const char* onsets[] = {"b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w",
                                 "br", "ch", "cl", "dr", "fl", "gr", "pl", "pr", "sh", "st", "str", "th", "tr", ""};
  static const char* vowels[] = {"a", "e", "i", "o", "u", "ai", "ea", "ee", "ou", "io", "y"};
  static const char* codas[] = {"", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ng", "ck", "rt", "ss"};
  std::string w;
  int syl = 1 + static_cast<int>(rng() % 3);
  for (int k = 0; k < syl; ++k) {
    w += onsets[rng() % (sizeof onsets / sizeof *onsets)];
    w += vowels[rng() % (sizeof vowels / sizeof *vowels)];
    w += codas[rng() % (sizeof codas / sizeof *codas)];
  }
  if (capital && !w.empty()) w[0] = static_cast<char>(w[0] - 'a' + 'A');
  return w;
}

std::string fill(const std::string& tmpl, std::mt19937_64& rng) {
  static const std::vector<std::string> ids = {"compute_total", "parse_row", "users", "handler", "matrix_mul", "cache_key"};
  std::string out;
  for (size_t i = 0; i < tmpl.size(); ++i) {
    if (tmpl.compare(i, 3, "{w}") == 0 || tmpl.compare(i, 3, "{W}") == 0) {
      out += pseudo_word(rng, tmpl[i + 1] == 'W');
      i += 2;
      continue;
    }
    if (tmpl.compare(i, 3, "{h}") == 0) {  // a run of common Han characters
      int len = 2 + static_cast<int>(rng() % 8);
      for (int k = 0; k < len; ++k) append_utf8(out, 0x4E00 + static_cast<char32_t>(rng() % 0x1800));
      i += 2;
      continue;
    }
    if (tmpl[i] == '{' && i + 2 < tmpl.size() && tmpl[i + 2] == '}' &&
        (tmpl[i + 1] == 'a' || tmpl[i + 1] == 'b' || tmpl[i + 1] == 'c')) {
      out += std::to_string(rng() % (tmpl[i + 1] == 'c' ? 100000 : 1000));
      i += 2;
    } else if (tmpl.compare(i, 4, "{id}") == 0) {
      out += ids[rng() % ids.size()];
      i += 3;
    } else {
      out += tmpl[i];
    }
  }
  return out;
}

// Documents of about `doc_bytes` bytes; the mix by bytes is roughly 40% prose, 20% code, 15% math,
// 15% CJK/Korean, 10% other.
std::vector<std::string> make_corpus(size_t total_bytes, size_t doc_bytes, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::string> docs;
  size_t total = 0;
  while (total < total_bytes) {
    std::string doc;
    while (doc.size() < doc_bytes) {
      unsigned r = static_cast<unsigned>(rng() % 100);
      const std::vector<std::string>& pool = r < 40 ? kProse : r < 60 ? kCode : r < 75 ? kMath : r < 90 ? kCjk : kOther;
      int sentences = 1 + static_cast<int>(rng() % 4);
      for (int s = 0; s < sentences; ++s) {
        doc += fill(pool[rng() % pool.size()], rng);
        doc += (rng() % 5 == 0) ? "\n\n" : " ";
      }
    }
    total += doc.size();
    docs.push_back(std::move(doc));
  }
  return docs;
}

int run_bench_tokenize(const BenchTokenizeOptions& o) {
  if (o.mb <= 0 || o.doc_kb <= 0) throw Error(ErrorCode::kUsage, "bench tokenize: --mb and --doc-kb must be positive");
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  auto tok = load_tokenizer(o.dir);
  double load_s = std::chrono::duration<double>(clock::now() - t0).count();

  auto docs = make_corpus(static_cast<size_t>(o.mb * 1e6), static_cast<size_t>(o.doc_kb * 1000), o.seed);
  size_t bytes = 0;
  for (const auto& d : docs) bytes += d.size();

  std::vector<std::vector<int64_t>> all_ids;
  all_ids.reserve(docs.size());
  size_t tokens = 0;
  auto t1 = clock::now();
  for (const auto& d : docs) {
    Encoding e = tok->encode(d, false);
    tokens += e.ids.size();
    all_ids.push_back(std::move(e.ids));
  }
  double enc_s = std::chrono::duration<double>(clock::now() - t1).count();

  auto t2 = clock::now();
  size_t decoded = 0;
  for (const auto& ids : all_ids) decoded += tok->decode(ids).size();
  double dec_s = std::chrono::duration<double>(clock::now() - t2).count();

  std::printf("tokenizer   %s (vocab %lld), loaded in %.3f s\n", o.dir.c_str(), static_cast<long long>(tok->vocab_size()), load_s);
  std::printf("text        %.2f MB in %zu documents of ~%.0f kB (mixed prose, code, math, CJK, other; seed %llu)\n",
              bytes / 1e6, docs.size(), o.doc_kb, static_cast<unsigned long long>(o.seed));
  std::printf("encode      %.3f s  %.2f MB/s  %.0f tokens/s  (%zu tokens, %.2f bytes/token, 1 thread)\n", enc_s,
              bytes / 1e6 / enc_s, tokens / enc_s, tokens, tokens ? double(bytes) / tokens : 0.0);
  std::printf("decode      %.3f s  %.2f MB/s  %.0f tokens/s  (%zu bytes out)\n", dec_s, decoded / 1e6 / dec_s,
              tokens / dec_s, decoded);
  return 0;
}

BenchRegistrar reg_cmd_bench_tokenize({"tokenize", "Tokenizer throughput on generated mixed text (one thread)", [](CLI::App* sub) {
                      auto o = std::make_shared<BenchTokenizeOptions>();
                      sub->add_option("model_dir", o->dir, "model directory or tokenizer file")->required();
                      sub->add_option("--mb", o->mb, "megabytes of text to encode (default 10)");
                      sub->add_option("--doc-kb", o->doc_kb, "size of each encoded document in kB (default 4)");
                      sub->add_option("--seed", o->seed, "seed of the text generator (default 1)");
                      return [o] { return run_bench_tokenize(*o); };
                    }});

}  // namespace
}  // namespace circuitscope::app
