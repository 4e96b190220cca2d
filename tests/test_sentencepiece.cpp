// SentencePiece tokenizer through the isolated module (libcircuitscope_spm.so), checked against the
// sentencepiece command-line tools (spm_encode, spm_decode, spm_normalize) run as subprocesses on
// models trained at test time by spm_train from tests/data/spm/corpus.txt. This binary links
// libtorch, so every test also proves the module coexists with libtorch's libprotobuf.
#include <ATen/ATen.h>
#include <dlfcn.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "test_util.hpp"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "../src/tokenizer/spm_module/spm_module_api.h"
#include "circuitscope/error.hpp"
#include "circuitscope/tokenizer.hpp"

namespace fs = std::filesystem;
using circuitscope::Error;
using circuitscope::ErrorCode;
using circuitscope::Tokenizer;

namespace {

std::string sh_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += (c == '\'') ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs a shell command and returns its stdout; fails the test if it does not exit with 0.
std::string run_command(const std::string& cmd) {
  FILE* pipe = ::popen(cmd.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  const int status = ::pclose(pipe);
  INFO("command: " << cmd);
  REQUIRE(status == 0);
  return out;
}

// Lines without their '\n' (a trailing empty line from the final '\n' is not counted).
std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

std::vector<std::string> split_spaces(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  std::string word;
  while (in >> word) out.push_back(word);
  return out;
}

std::vector<int64_t> parse_ids(const std::string& line) {
  std::vector<int64_t> ids;
  for (const auto& w : split_spaces(line)) ids.push_back(std::stoll(w));
  return ids;
}

std::string ids_line(const std::vector<int64_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? " " : "") + std::to_string(ids[i]);
  return s;
}

void write_lines(const fs::path& path, const std::vector<std::string>& lines) {
  std::ofstream out(path, std::ios::binary);
  for (const auto& l : lines) out << l << '\n';
  REQUIRE(out.good());
}

// Replaces U+2581 (the sentencepiece space) with ' ' and trims spaces at both ends.
std::string piece_as_text(const std::string& piece) {
  static const std::string kMeta = "\xE2\x96\x81";
  std::string s;
  for (size_t i = 0; i < piece.size();) {
    if (piece.compare(i, kMeta.size(), kMeta) == 0) {
      s += ' ';
      i += kMeta.size();
    } else {
      s += piece[i++];
    }
  }
  const size_t b = s.find_first_not_of(' ');
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(' ') - b + 1);
}

bool is_byte_piece(const std::string& p) { return p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>'; }

// Models trained once per process into a temporary folder.
struct SpmModels {
  fs::path dir;
  std::string unigram;  // Llama-like: unk=0 bos=1 eos=2, byte fallback
  std::string bpe;      // no BOS, eos=1, pad=2, control <mask>, user-defined <sep>, no byte fallback
  SpmModels() {
    dir = cs_test::make_temp_dir("spm");
    const std::string corpus = std::string(CS_TEST_DATA_DIR) + "/spm/corpus.txt";
    unigram = (dir / "unigram").string();
    bpe = (dir / "bpe").string();
    run_command("spm_train --input=" + sh_quote(corpus) + " --model_prefix=" + sh_quote(unigram) +
                " --model_type=unigram --vocab_size=600 --byte_fallback=true --character_coverage=0.98"
                " --minloglevel=2 >/dev/null 2>&1");
    run_command("spm_train --input=" + sh_quote(corpus) + " --model_prefix=" + sh_quote(bpe) +
                " --model_type=bpe --vocab_size=400 --character_coverage=0.98 --unk_id=0 --bos_id=-1"
                " --eos_id=1 --pad_id=2 --control_symbols='<mask>' --user_defined_symbols='<sep>'"
                " --minloglevel=2 >/dev/null 2>&1");
    unigram += ".model";
    bpe += ".model";
  }
  ~SpmModels() { cs_test::remove_tree(dir.string()); }
};

const SpmModels& models() {
  static SpmModels m;
  return m;
}

// Sentences beyond the corpus: whitespace runs, leading/trailing spaces, NFKC-changed characters,
// characters outside the vocabulary (unknown / byte fallback), special-looking text, empty input.
const std::vector<std::string>& sentences() {
  static const std::vector<std::string> s = {
      "Hello world! How are you today?",
      "The river ran low that summer.",
      "A gardener knows that patience matters more than any tool.",
      "  leading and trailing spaces   ",
      "double  spaces   and\ttabs",
      "Zoë and Chloé drank café au lait in Kraków.",
      "Full width ＡＢＣ １２３ and the ligature ﬁle.",
      "東京は日本の首都です。北京是中国的首都。",
      "Москва — столица России.",
      "Rare letters: ǅ ß Ω ∑ 🙂 and a euro sign €.",
      "Special-looking text: <s> </s> <unk> <mask> <sep> <pad>",
      "a<sep>b <sep> c",
      "Numbers 12, 345 and 6789; prices rose by 3.5 percent.",
      "x",
      "",
  };
  return s;
}

std::vector<std::string> spm_lines(const std::string& tool_and_flags, const std::vector<std::string>& input_lines,
                                   const std::string& name) {
  const fs::path in = models().dir / (name + ".txt");
  write_lines(in, input_lines);
  auto lines = split_lines(run_command(tool_and_flags + " " + sh_quote(in.string())));
  // A final empty input line gives a final empty output line, which split_lines drops.
  while (lines.size() < input_lines.size()) lines.emplace_back();
  REQUIRE(lines.size() == input_lines.size());
  return lines;
}

// The vocabulary as spm_train wrote it (model_prefix.vocab: "piece<TAB>score" per id).
std::vector<std::string> vocab_file_pieces(const std::string& model_path) {
  const std::string vocab_path = model_path.substr(0, model_path.size() - 6) + ".vocab";
  std::ifstream in(vocab_path, std::ios::binary);
  REQUIRE(in.good());
  std::vector<std::string> pieces;
  std::string line;
  while (std::getline(in, line)) pieces.push_back(line.substr(0, line.find('\t')));
  return pieces;
}

struct EnvGuard {
  std::string name;
  bool had = false;
  std::string old;
  EnvGuard(std::string n, const std::string& value) : name(std::move(n)) {
    if (const char* v = std::getenv(name.c_str())) {
      had = true;
      old = v;
    }
    ::setenv(name.c_str(), value.c_str(), 1);
  }
  ~EnvGuard() {
    if (had)
      ::setenv(name.c_str(), old.c_str(), 1);
    else
      ::unsetenv(name.c_str());
  }
};

std::string module_path() { return std::string(CIRCUITSCOPE_SPM_MODULE_DIR) + "/libcircuitscope_spm.so"; }

float tensor_check() {
  // 3x3 matrix 0..8: sum of all entries of A*A is 486 (hand-computed: column sums 9,12,15 times row sums 3,12,21).
  auto a = at::arange(9, at::kFloat).reshape({3, 3});
  return at::matmul(a, a).sum().item<float>();
}

}  // namespace

TEST_CASE("SentencePiece module loads beside libtorch without mixing protobufs", "[spm]") {
  REQUIRE(tensor_check() == 486.0f);
  auto tok = circuitscope::load_sentencepiece_tokenizer(models().unigram);
  REQUIRE(tok->encode("Hello world", false).ids.size() > 0);
  REQUIRE(tensor_check() == 486.0f);

  // Neither the module nor libsentencepiece entered the global symbol scope...
  CHECK(::dlsym(RTLD_DEFAULT, "cs_spm_encode") == nullptr);
  CHECK(::dlsym(RTLD_DEFAULT, "_ZN13sentencepiece22SentencePieceProcessorC1Ev") == nullptr);
  // ...so protobuf symbols (which libsentencepiece also exports) still come from libtorch's protobuf.
  // Debian's libtorch links the system libprotobuf, whose symbols are global; pip builds of libtorch
  // 2.x keep a private protobuf, and then no protobuf symbol is global at all, which is fine too.
  void* sym = ::dlsym(RTLD_DEFAULT, "_ZN6google8protobuf8internal13VersionStringB5cxx11Ei");
  if (sym != nullptr) {
    Dl_info info{};
    REQUIRE(::dladdr(sym, &info) != 0);
    REQUIRE(info.dli_fname != nullptr);
    CHECK(std::string(info.dli_fname).find("libprotobuf.so") != std::string::npos);
    CHECK(std::string(info.dli_fname).find("sentencepiece") == std::string::npos);
  }
#ifdef CS_DEBIAN_LIBTORCH
  REQUIRE(sym != nullptr);
#endif

  // A bigger tensor computation after the module ran: (ones(64,64) @ ones(64,64)) is all 64s.
  auto b = at::ones({64, 64});
  auto c = at::matmul(b, b);
  CHECK(c.min().item<float>() == 64.0f);
  CHECK(c.max().item<float>() == 64.0f);
}

TEST_CASE("SentencePiece ids and pieces match spm_encode", "[spm]") {
  for (const std::string& model : {models().unigram, models().bpe}) {
    INFO("model " << model);
    auto tok = circuitscope::load_sentencepiece_tokenizer(model);
    const auto& input = sentences();
    const auto ref_ids = spm_lines("spm_encode --output_format=id --model=" + sh_quote(model), input, "ids");
    const auto ref_pieces = spm_lines("spm_encode --output_format=piece --model=" + sh_quote(model), input, "pieces");
    bool saw_unknown = false;
    for (size_t i = 0; i < input.size(); ++i) {
      INFO("sentence '" << input[i] << "'");
      const auto enc = tok->encode(input[i], false);
      const auto want_ids = parse_ids(ref_ids[i]);
      CHECK(enc.ids == want_ids);
      const auto want_pieces = split_spaces(ref_pieces[i]);
      REQUIRE(enc.tokens.size() == want_pieces.size());
      REQUIRE(enc.offsets.size() == enc.ids.size());
      for (size_t k = 0; k < enc.tokens.size(); ++k) {
        // spm_encode prints an unknown piece as the text it covers; Encoding::tokens spells every
        // id as the vocabulary does, so an unknown is "<unk>".
        if (enc.ids[k] == 0) {
          saw_unknown = true;
          CHECK(enc.tokens[k] == "<unk>");
          CHECK(tok->token_to_id(want_pieces[k]) == std::nullopt);
        } else {
          CHECK(enc.tokens[k] == want_pieces[k]);
        }
      }
      // Same ids with add_special_tokens, plus BOS when the model has one.
      const auto with_special = tok->encode(input[i], true);
      if (model == models().unigram) {
        REQUIRE_FALSE(with_special.ids.empty());
        CHECK(with_special.ids.front() == 1);
        CHECK(with_special.tokens.front() == "<s>");
        CHECK(with_special.offsets.front() == std::pair<size_t, size_t>(0, 0));
        CHECK(std::vector<int64_t>(with_special.ids.begin() + 1, with_special.ids.end()) == want_ids);
      } else {
        CHECK(with_special.ids == want_ids);
      }
    }
    // The BPE model has no byte fallback: the CJK/Cyrillic/rare lines must have produced unknowns.
    if (model == models().bpe) CHECK(saw_unknown);
  }
}

TEST_CASE("SentencePiece BOS matches spm_encode --extra_options=bos", "[spm]") {
  auto tok = circuitscope::load_sentencepiece_tokenizer(models().unigram);
  const auto& input = sentences();
  const auto ref =
      spm_lines("spm_encode --output_format=id --extra_options=bos --model=" + sh_quote(models().unigram), input, "bos");
  for (size_t i = 0; i < input.size(); ++i) {
    INFO("sentence '" << input[i] << "'");
    CHECK(tok->encode(input[i], true).ids == parse_ids(ref[i]));
  }
}

TEST_CASE("SentencePiece offsets locate each piece in the input", "[spm]") {
  for (const std::string& model : {models().unigram, models().bpe}) {
    INFO("model " << model);
    auto tok = circuitscope::load_sentencepiece_tokenizer(model);

    // Plain ASCII with single spaces: the normalizer only escapes spaces, so walking spm_encode's
    // pieces over the input gives the exact byte ranges (the first piece's U+2581 is the dummy
    // prefix and covers no input byte; a byte-fallback piece is one ASCII character).
    const std::vector<std::string> plain = {"Hello world! How are you today?", "The bell rang six times.",
                                            "Numbers 12, 345 and 6789."};
    const auto ref_pieces = spm_lines("spm_encode --output_format=piece --model=" + sh_quote(model), plain, "plain");
    for (size_t i = 0; i < plain.size(); ++i) {
      INFO("sentence '" << plain[i] << "'");
      const auto enc = tok->encode(plain[i], false);
      const auto pieces = split_spaces(ref_pieces[i]);
      REQUIRE(enc.offsets.size() == pieces.size());
      size_t pos = 0;
      for (size_t k = 0; k < pieces.size(); ++k) {
        std::string surface;
        const bool byte = is_byte_piece(pieces[k]);
        if (byte)  // ASCII input: a byte piece is a whole character
          surface = std::string(1, static_cast<char>(std::stoi(pieces[k].substr(3, 2), nullptr, 16)));
        for (size_t j = 0; !byte && j < pieces[k].size();) {
          if (pieces[k].compare(j, 3, "\xE2\x96\x81") == 0) {
            if (!(k == 0 && j == 0)) surface += ' ';
            j += 3;
          } else {
            surface += pieces[k][j++];
          }
        }
        REQUIRE(plain[i].compare(pos, surface.size(), surface) == 0);
        CHECK(enc.offsets[k] == std::pair<size_t, size_t>(pos, pos + surface.size()));
        pos += surface.size();
      }
      CHECK(pos == plain[i].size());
    }

    // Every sentence: ranges are ordered, in bounds and disjoint, and the input slice of each piece,
    // normalized by spm_normalize, is the piece's text (the piece spm_encode reports, with U+2581 as
    // a space, trimmed). Byte-fallback pieces of one character share one range held by the last.
    const auto& input = sentences();
    const auto all_pieces = spm_lines("spm_encode --output_format=piece --model=" + sh_quote(model), input, "all");
    std::vector<std::string> surfaces, expected;
    for (size_t i = 0; i < input.size(); ++i) {
      INFO("sentence '" << input[i] << "'");
      const auto enc = tok->encode(input[i], false);
      const auto pieces = split_spaces(all_pieces[i]);
      REQUIRE(pieces.size() == enc.offsets.size());
      size_t prev_end = 0;
      for (size_t k = 0; k < pieces.size(); ++k) {
        const auto [b, e] = enc.offsets[k];
        CHECK(b <= e);
        CHECK(e <= input[i].size());
        CHECK(b >= prev_end);
        prev_end = std::max(prev_end, e);
        if (is_byte_piece(pieces[k])) continue;
        surfaces.push_back(input[i].substr(b, e - b));
        expected.push_back(piece_as_text(pieces[k]));
      }
    }
    const auto normalized = spm_lines("spm_normalize --model=" + sh_quote(model), surfaces, "surfaces");
    for (size_t j = 0; j < surfaces.size(); ++j) {
      INFO("surface '" << surfaces[j] << "'");
      CHECK(normalized[j] == expected[j]);
    }
  }
}

TEST_CASE("SentencePiece decode matches spm_decode and round-trips", "[spm]") {
  for (const std::string& model : {models().unigram, models().bpe}) {
    INFO("model " << model);
    auto tok = circuitscope::load_sentencepiece_tokenizer(model);
    const auto& input = sentences();
    std::vector<std::vector<int64_t>> all_ids;
    std::vector<std::string> id_lines;
    for (const auto& s : input) {
      all_ids.push_back(tok->encode(s, false).ids);
      id_lines.push_back(ids_line(all_ids.back()));
    }
    const auto ref = spm_lines("spm_decode --input_format=id --model=" + sh_quote(model), id_lines, "decode");
    for (size_t i = 0; i < input.size(); ++i) {
      INFO("sentence '" << input[i] << "'");
      CHECK(tok->decode(all_ids[i], true) == ref[i]);
      CHECK(tok->decode(all_ids[i], false) == ref[i]);  // no control tokens in plain encodings
    }
  }

  // Text the normalizer leaves alone comes back unchanged; with byte fallback that includes
  // characters outside the vocabulary.
  auto uni = circuitscope::load_sentencepiece_tokenizer(models().unigram);
  for (const std::string s : {"Hello world! How are you today?", "Zoë and Chloé drank café au lait in Kraków.",
                              "東京は日本の首都です。", "Rare letters: ß Ω ∑ 🙂 and a euro sign €.", "a<sep>b"}) {
    INFO("sentence '" << s << "'");
    CHECK(uni->decode(uni->encode(s, true).ids, true) == s);
  }
  auto bpe = circuitscope::load_sentencepiece_tokenizer(models().bpe);
  CHECK(bpe->decode(bpe->encode("The river ran low.", true).ids, false) == "The river ran low.");
  CHECK(bpe->decode(bpe->encode("a<sep>b", true).ids, false) == "a<sep>b");

  // Control tokens: dropped with skip_special_tokens, written as their pieces otherwise.
  std::vector<int64_t> ids = uni->encode("Hello world", true).ids;  // starts with <s>
  ids.push_back(2);                                                  // </s>
  CHECK(uni->decode(ids, true) == "Hello world");
  CHECK(uni->decode(ids, false) == "<s>Hello world</s>");
  std::vector<int64_t> mask_ids = bpe->encode("a b", false).ids;
  const auto mask = bpe->token_to_id("<mask>");
  REQUIRE(mask.has_value());
  mask_ids.insert(mask_ids.begin() + 1, *mask);
  CHECK(bpe->decode(mask_ids, true) == "a b");
  CHECK(bpe->decode(mask_ids, false) == "a<mask> b");

  CHECK_THROWS_AS(uni->decode({5, uni->vocab_size()}, true), Error);
  CHECK_THROWS_AS(uni->decode({-1}, true), Error);
}

TEST_CASE("SentencePiece normalize matches spm_normalize", "[spm]") {
  for (const std::string& model : {models().unigram, models().bpe}) {
    INFO("model " << model);
    auto tok = circuitscope::load_sentencepiece_tokenizer(model);
    const auto& input = sentences();
    const auto ref =
        spm_lines("spm_normalize --use_internal_normalization=true --model=" + sh_quote(model), input, "normalize");
    for (size_t i = 0; i < input.size(); ++i) {
      INFO("sentence '" << input[i] << "'");
      CHECK(tok->normalize(input[i]) == ref[i]);
    }
  }
}

TEST_CASE("SentencePiece vocabulary matches the .vocab file spm_train wrote", "[spm]") {
  for (const std::string& model : {models().unigram, models().bpe}) {
    INFO("model " << model);
    auto tok = circuitscope::load_sentencepiece_tokenizer(model);
    const auto pieces = vocab_file_pieces(model);
    REQUIRE(tok->vocab_size() == static_cast<int64_t>(pieces.size()));
    for (size_t id = 0; id < pieces.size(); ++id) {
      INFO("id " << id << " piece '" << pieces[id] << "'");
      CHECK(tok->id_to_token(static_cast<int64_t>(id)) == pieces[id]);
      CHECK(tok->token_to_id(pieces[id]) == std::optional<int64_t>(static_cast<int64_t>(id)));
    }
    CHECK(tok->token_to_id("no such piece") == std::nullopt);
    CHECK(tok->token_to_id("") == std::nullopt);
    CHECK_THROWS_AS(tok->id_to_token(tok->vocab_size()), Error);
    CHECK_THROWS_AS(tok->id_to_token(-1), Error);
    CHECK_FALSE(tok->is_special(tok->vocab_size()));
    CHECK_FALSE(tok->is_special(-1));
  }
  // Control tokens per spm_train's flags: bos/eos/pad and --control_symbols; unk and
  // --user_defined_symbols are not control tokens.
  auto uni = circuitscope::load_sentencepiece_tokenizer(models().unigram);
  CHECK_FALSE(uni->is_special(0));  // <unk>
  CHECK(uni->is_special(1));        // <s>
  CHECK(uni->is_special(2));        // </s>
  CHECK_FALSE(uni->is_special(*uni->token_to_id("<0x41>")));
  CHECK_FALSE(uni->is_special(*uni->token_to_id("\xE2\x96\x81the")));
  auto bpe = circuitscope::load_sentencepiece_tokenizer(models().bpe);
  CHECK_FALSE(bpe->is_special(0));  // <unk>
  CHECK(bpe->is_special(1));        // </s>
  CHECK(bpe->is_special(2));        // <pad>
  CHECK(bpe->is_special(*bpe->token_to_id("<mask>")));
  CHECK_FALSE(bpe->is_special(*bpe->token_to_id("<sep>")));
  CHECK(bpe->token_to_id("<s>") == std::nullopt);  // --bos_id=-1
}

TEST_CASE("SentencePiece loading errors", "[spm]") {
  SECTION("missing model file") {
    try {
      circuitscope::load_sentencepiece_tokenizer((models().dir / "nope.model").string());
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kIo);
      CHECK(std::string(e.what()).find("nope.model") != std::string::npos);
    }
  }
  SECTION("not a model") {
    const fs::path bad = models().dir / "bad.model";
    {
      std::ofstream out(bad, std::ios::binary);
      out << "this is not a protobuf";
    }
    try {
      circuitscope::load_sentencepiece_tokenizer(bad.string());
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kFormat);
      CHECK(std::string(e.what()).find("bad.model") != std::string::npos);
    }
  }
  SECTION("module named by CIRCUITSCOPE_SPM_MODULE is missing") {
    EnvGuard env("CIRCUITSCOPE_SPM_MODULE", "/nonexistent/dir/libcircuitscope_spm.so");
    try {
      circuitscope::load_sentencepiece_tokenizer(models().unigram);
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kIo);
      CHECK(std::string(e.what()).find("/nonexistent/dir/libcircuitscope_spm.so") != std::string::npos);
      CHECK(std::string(e.what()).find("CIRCUITSCOPE_SPM_MODULE") != std::string::npos);
    }
  }
  SECTION("CIRCUITSCOPE_SPM_MODULE may name the module's folder") {
    EnvGuard env("CIRCUITSCOPE_SPM_MODULE", CIRCUITSCOPE_SPM_MODULE_DIR);
    auto tok = circuitscope::load_sentencepiece_tokenizer(models().unigram);
    CHECK(tok->vocab_size() == 600);
  }
}

TEST_CASE("SentencePiece module C ABI", "[spm]") {
  void* h = ::dlopen(module_path().c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
  REQUIRE(h != nullptr);
  auto abi_version = reinterpret_cast<decltype(&cs_spm_abi_version)>(::dlsym(h, "cs_spm_abi_version"));
  auto load_file = reinterpret_cast<decltype(&cs_spm_load_file)>(::dlsym(h, "cs_spm_load_file"));
  auto load_bytes = reinterpret_cast<decltype(&cs_spm_load_bytes)>(::dlsym(h, "cs_spm_load_bytes"));
  auto model_free = reinterpret_cast<decltype(&cs_spm_model_free)>(::dlsym(h, "cs_spm_model_free"));
  auto vocab_size = reinterpret_cast<decltype(&cs_spm_vocab_size)>(::dlsym(h, "cs_spm_vocab_size"));
  auto is_byte = reinterpret_cast<decltype(&cs_spm_is_byte)>(::dlsym(h, "cs_spm_is_byte"));
  auto is_unknown = reinterpret_cast<decltype(&cs_spm_is_unknown)>(::dlsym(h, "cs_spm_is_unknown"));
  auto eos_id = reinterpret_cast<decltype(&cs_spm_eos_id)>(::dlsym(h, "cs_spm_eos_id"));
  auto pad_id = reinterpret_cast<decltype(&cs_spm_pad_id)>(::dlsym(h, "cs_spm_pad_id"));
  auto free_string = reinterpret_cast<decltype(&cs_spm_free)>(::dlsym(h, "cs_spm_free"));
  REQUIRE((abi_version && load_file && load_bytes && model_free && vocab_size && is_byte && is_unknown && eos_id &&
           pad_id && free_string));
  CHECK(abi_version() == CS_SPM_ABI_VERSION);

  CsSpmModel* from_file = nullptr;
  char* err = nullptr;
  REQUIRE(load_file(models().unigram.c_str(), &from_file, &err) == 0);
  REQUIRE(err == nullptr);
  std::ifstream in(models().unigram, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CsSpmModel* from_bytes = nullptr;
  REQUIRE(load_bytes(bytes.data(), bytes.size(), &from_bytes, &err) == 0);
  CHECK(vocab_size(from_file) == 600);
  CHECK(vocab_size(from_bytes) == 600);
  CHECK(is_unknown(from_file, 0) == 1);
  CHECK(is_byte(from_file, 3) == 1);  // <0x00> follows <unk> <s> </s>
  CHECK(is_byte(from_file, 600) == 0);
  CHECK(eos_id(from_file) == 2);
  CHECK(pad_id(from_file) == -1);
  model_free(from_file);
  model_free(from_bytes);

  CsSpmModel* missing = nullptr;
  CHECK(load_file((models().dir / "nope.model").c_str(), &missing, &err) != 0);
  CHECK(missing == nullptr);
  REQUIRE(err != nullptr);
  CHECK(std::string(err).find("nope.model") != std::string::npos);
  free_string(err);
  REQUIRE(tensor_check() == 486.0f);
  // dlopen of the same file returns the loader's handle; it is never closed.
}

TEST_CASE("SentencePiece module C ABI also works from its own link namespace (dlmopen)", "[spm]") {
  // The ABI passes only C buffers freed by the module, so the module also runs under
  // dlmopen(LM_ID_NEWLM), which gives it its own libc/libstdc++ heap; this keeps that option open.
  void* h = ::dlmopen(LM_ID_NEWLM, module_path().c_str(), RTLD_NOW | RTLD_LOCAL);
  INFO("dlmopen: " << (h ? "" : ::dlerror()));
  REQUIRE(h != nullptr);
  auto load_file = reinterpret_cast<decltype(&cs_spm_load_file)>(::dlsym(h, "cs_spm_load_file"));
  auto model_free = reinterpret_cast<decltype(&cs_spm_model_free)>(::dlsym(h, "cs_spm_model_free"));
  auto encode = reinterpret_cast<decltype(&cs_spm_encode)>(::dlsym(h, "cs_spm_encode"));
  auto encoding_free = reinterpret_cast<decltype(&cs_spm_encoding_free)>(::dlsym(h, "cs_spm_encoding_free"));
  auto decode = reinterpret_cast<decltype(&cs_spm_decode)>(::dlsym(h, "cs_spm_decode"));
  auto free_string = reinterpret_cast<decltype(&cs_spm_free)>(::dlsym(h, "cs_spm_free"));
  REQUIRE((load_file && model_free && encode && encoding_free && decode && free_string));

  CsSpmModel* model = nullptr;
  char* err = nullptr;
  REQUIRE(load_file(models().unigram.c_str(), &model, &err) == 0);
  auto tok = circuitscope::load_sentencepiece_tokenizer(models().unigram);
  for (const auto& s : sentences()) {
    INFO("sentence '" << s << "'");
    CsSpmEncoding enc{};
    REQUIRE(encode(model, s.data(), s.size(), &enc, &err) == 0);
    const std::vector<int64_t> ids(enc.ids, enc.ids + enc.size);
    CHECK(ids == tok->encode(s, false).ids);
    char* text = nullptr;
    size_t size = 0;
    REQUIRE(decode(model, enc.ids, enc.size, 0, &text, &size, &err) == 0);
    CHECK(std::string(text, size) == tok->decode(ids, true));
    free_string(text);
    encoding_free(&enc);
  }
  model_free(model);
  REQUIRE(tensor_check() == 486.0f);
}
