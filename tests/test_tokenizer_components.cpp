// tokenizer.json components on small hand-made tokenizers (tests/data/tokenizers/*_tiny, written by
// make_tiny.py). Every expected value was worked out by hand from the Hugging Face tokenizers
// documentation and source comments (split behaviours on "the-final--countdown", pre_tokenize_str
// examples, AddedVocabulary unit-test cases, BPE merge order), not taken from this implementation.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unistd.h>
#include <string>
#include <utility>
#include <vector>

#include "circuitscope/error.hpp"
#include "circuitscope/tokenizer_json.hpp"

using namespace circuitscope;
using nlohmann::json;
using Ids = std::vector<int64_t>;
using Offsets = std::vector<std::pair<size_t, size_t>>;
using Strings = std::vector<std::string>;

namespace {

const std::string kDir = std::string(CS_TEST_DATA_DIR) + "/tokenizers/";

std::unique_ptr<Tokenizer> load_tok(const std::string& name) { return load_tokenizer(kDir + name); }

json read_json(const std::string& name) {
  std::ifstream in(kDir + name + "/tokenizer.json");
  REQUIRE(in);
  return json::parse(in);
}

std::unique_ptr<Tokenizer> from(const json& j) { return tokenizer_from_json(j.dump()); }

// chars_tiny (one token per printable ASCII char, id = code - 32) with components set by `edit`.
std::unique_ptr<Tokenizer> chars_with(const std::function<void(json&)>& edit) {
  json j = read_json("chars_tiny");
  edit(j);
  return from(j);
}

Strings pre_texts(const Tokenizer& t, const std::string& s) {
  Strings out;
  for (const auto& p : pre_tokenize(t, s)) out.push_back(p.text);
  return out;
}

Offsets pre_spans(const Tokenizer& t, const std::string& s) {
  Offsets out;
  for (const auto& p : pre_tokenize(t, s)) out.emplace_back(p.begin, p.end);
  return out;
}

json added(int64_t id, const std::string& content, bool special, bool normalized, bool lstrip = false,
           bool rstrip = false, bool single_word = false) {
  return {{"id", id}, {"content", content}, {"special", special}, {"normalized", normalized},
          {"lstrip", lstrip}, {"rstrip", rstrip}, {"single_word", single_word}};
}

// A tokenizer whose vocabulary is exactly `vocab` (ids in order) with `decoder`, to test decoders.
std::unique_ptr<Tokenizer> decoder_tok(const Strings& vocab, const json& decoder) {
  json v = json::object();
  for (size_t i = 0; i < vocab.size(); ++i) v[vocab[i]] = i;
  json j = {{"model", {{"type", "BPE"}, {"vocab", v}, {"merges", json::array()}}}, {"decoder", decoder}};
  return from(j);
}

Ids iota_ids(size_t n) {
  Ids ids;
  for (size_t i = 0; i < n; ++i) ids.push_back(static_cast<int64_t>(i));
  return ids;
}

ErrorCode error_code_of(const std::function<void()>& f, std::string& message) {
  try {
    f();
  } catch (const Error& e) {
    message = e.what();
    return e.code();
  }
  FAIL("expected a circuitscope::Error");
  return ErrorCode::kInternal;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// GPT-2 style byte-level BPE. Vocabulary: byte b has id b (spelled in the ByteLevel alphabet), merges
// 0 "Ġ t"->256 "Ġt", 1 "h e"->257, 2 "Ġt he"->258, 3 "l l"->259, 4 "e ll"->260, 5 "h ell"->261,
// 6 "hell o"->262, 7 "Ġ hello"->263.

TEST_CASE("ByteLevel BPE: prefix space - regex split - merge order - trimmed offsets", "[tokenizer]") {
  auto t = load_tok("bytelevel_tiny");
  // "hello the" -> " hello the" -> pieces " hello", " the".
  // " hello": Ġ h e l l o; lowest rank first: (h,e) rank 1 -> he; (l,l) rank 3 -> ll; then no merge
  // applies ("e ll" needs a lone e, "h ell" a lone h): Ġ he ll o.
  // " the": (Ġ,t) rank 0 -> Ġt; (h,e) rank 1 -> he; (Ġt,he) rank 2 -> Ġthe.
  Encoding e = t->encode("hello the");
  CHECK(e.ids == Ids{32, 257, 259, 111, 258});
  CHECK(e.tokens == Strings{"Ġ", "he", "ll", "o", "Ġthe"});
  // The added space maps to 'h' (0,1); trim_offsets keeps a single added leading space of the first
  // token but removes trailing spaces: "Ġ" -> (0,0). "Ġthe" (5,9) loses its leading space -> (6,9).
  CHECK(e.offsets == Offsets{{0, 0}, {0, 2}, {2, 4}, {4, 5}, {6, 9}});
  CHECK(t->decode(e.ids) == " hello the");
  CHECK(t->vocab_size() == 301);
}

TEST_CASE("ByteLevel pre-tokenizer splits as the GPT-2 pattern says", "[tokenizer]") {
  auto t = load_tok("bytelevel_tiny");
  // Hugging Face docs example for ByteLevel(add_prefix_space=True).
  CHECK(pre_texts(*t, "Hello my friend, how is your day going?") ==
        Strings{"ĠHello", "Ġmy", "Ġfriend", ",", "Ġhow", "Ġis", "Ġyour", "Ġday", "Ġgoing", "?"});
  CHECK(pre_spans(*t, "Hello my friend, how is your day going?") ==
        Offsets{{0, 5}, {5, 8}, {8, 15}, {15, 16}, {16, 20}, {20, 23}, {23, 28}, {28, 32}, {32, 38}, {38, 39}});
  // \s+(?!\S) leaves the last space of a run to the next word.
  CHECK(pre_texts(*t, "a  b") == Strings{"Ġa", "Ġ", "Ġb"});
  CHECK(pre_spans(*t, "a  b") == Offsets{{0, 1}, {1, 2}, {2, 4}});
  // Contractions are their own pieces; no merges apply to " it": Ġ i t.
  CHECK(t->encode("it's").ids == Ids{32, 105, 116, 39, 115});
}

TEST_CASE("ByteLevel: added tokens split the text and each part gets the prefix space", "[tokenizer]") {
  auto t = load_tok("bytelevel_tiny");
  Encoding e = t->encode("hello<|endoftext|>the");
  CHECK(e.ids == Ids{32, 257, 259, 111, 300, 258});
  CHECK(e.offsets[4] == std::make_pair(size_t(5), size_t(18)));
  CHECK(t->is_special(300));
  CHECK(t->decode(e.ids) == " hello<|endoftext|> the");
  CHECK(t->decode(e.ids, true) == " hello the");
}

TEST_CASE("ByteLevel: non-ASCII bytes and lossy decoding", "[tokenizer]") {
  auto t = load_tok("bytelevel_tiny");
  // " é" = bytes 20 C3 A9; no merges. Every byte token of é maps to the whole char (0,2); the first
  // token "Ġ" (added space, aligned to é) is trimmed to (0,1) by its trailing space.
  Encoding e = t->encode("é");
  CHECK(e.ids == Ids{32, 195, 169});
  CHECK(e.offsets == Offsets{{0, 1}, {0, 2}, {0, 2}});
  CHECK(t->decode(e.ids) == " é");
  // A lone lead byte is ill-formed: one U+FFFD (Rust from_utf8_lossy), then the following 'h'.
  CHECK(t->decode({195}) == "\xEF\xBF\xBD");
  CHECK(t->decode({195, 104}) == "\xEF\xBF\xBDh");
  // Unknown ids are skipped, as Hugging Face does.
  CHECK(t->decode({104, 99999, 105}) == "hi");
}

// ---------------------------------------------------------------------------------------------------
// Llama-3 style: Split(Llama-3 regex) + ByteLevel(use_regex false), ignore_merges, BOS template.

TEST_CASE("Llama-3 style: BOS - ignore_merges - digit groups", "[tokenizer]") {
  auto t = load_tok("llama3_tiny");
  // Pieces "hello", " hello": both are whole vocabulary entries (262 "hello", 263 "Ġhello"), which
  // ignore_merges takes directly although the merges could not build them.
  Encoding e = t->encode("hello hello");
  CHECK(e.ids == Ids{300, 262, 263});
  CHECK(e.tokens == Strings{"<|begin_of_text|>", "hello", "Ġhello"});
  CHECK(e.offsets == Offsets{{0, 0}, {0, 5}, {5, 11}});
  CHECK(t->encode("hello hello", false).ids == Ids{262, 263});
  // " hell" is not in the vocabulary: merges run, (h,e) then (l,l): Ġ he ll.
  CHECK(t->encode(" hell", false).ids == Ids{32, 257, 259});
  // \p{N}{1,3}: "12345" -> "123", "45".
  CHECK(pre_texts(*t, "12345") == Strings{"123", "45"});
  CHECK(t->encode("12345", false).ids == Ids{49, 50, 51, 52, 53});
  // (?i:'s) matches "'S"; \s*[\r\n]+ takes the newlines, the space goes with the word.
  CHECK(pre_texts(*t, "IT'S") == Strings{"IT", "'S"});
  CHECK(pre_texts(*t, "\n\n x") == Strings{"ĊĊ", "Ġx"});
  CHECK(t->decode({300, 262, 263}) == "<|begin_of_text|>hello hello");
  CHECK(t->decode({300, 262, 263}, true) == "hello hello");
}

// ---------------------------------------------------------------------------------------------------
// SentencePiece-converted BPE. Ids: <unk> 0, <s> 1, </s> 2, <0x00>..<0xFF> 3..258, ▁ 259, a 260,
// b 261, c 262, ▁a 263, bc 264, ▁abc 265; merges (▁,a) 0, (b,c) 1, (▁a,bc) 2 in the [a, b] form.

TEST_CASE("Llama-2 legacy layout: Prepend + Replace normalizer - byte fallback - BOS", "[tokenizer]") {
  auto t = load_tok("llama_legacy_tiny");
  // "abc ab" -> "▁abc▁ab" (one piece: no pre-tokenizer). Initial ▁ a b c ▁ a b; rank 0 merges at
  // positions 0 then 4 (leftmost first): ▁a b c ▁a b; rank 1: ▁a bc ▁a b; rank 2: ▁abc ▁a b.
  Encoding e = t->encode("abc ab");
  CHECK(e.ids == Ids{1, 265, 263, 261});
  CHECK(e.tokens == Strings{"<s>", "▁abc", "▁a", "b"});
  // The prepended ▁ maps to 'a' (0,1); the ▁ that replaced the space maps to the space (3,4).
  CHECK(e.offsets == Offsets{{0, 0}, {0, 3}, {3, 5}, {5, 6}});
  CHECK(t->encode("abc ab", false).ids == Ids{265, 263, 261});
  CHECK(t->normalize("abc ab") == "▁abc▁ab");
  // Decoder: Replace ▁ -> " ", ByteFallback, Fuse, Strip one leading space.
  CHECK(t->decode({1, 265, 263, 261}) == "<s> abc ab");
  CHECK(t->decode({1, 265, 263, 261}, true) == "abc ab");
  // é is not a piece: its UTF-8 bytes C3 A9 become <0xC3> (3+195) and <0xA9> (3+169).
  Encoding b = t->encode("é", false);
  CHECK(b.ids == Ids{259, 198, 172});
  CHECK(b.offsets == Offsets{{0, 2}, {0, 2}, {0, 2}});
  CHECK(t->decode(b.ids) == "é");
  // Byte runs that are not UTF-8 become one U+FFFD per byte.
  CHECK(t->decode({198}) == "\xEF\xBF\xBD");
  CHECK(t->decode({198, 198, 260}) == "\xEF\xBF\xBD\xEF\xBF\xBD" "a");
  // The legacy normalizer prepends ▁ to the text after a special token too.
  CHECK(t->encode("<s>ab", false).ids == Ids{1, 263, 261});
}

TEST_CASE("Metaspace pre-tokenizer (prepend_scheme first - split) and Metaspace decoder", "[tokenizer]") {
  auto t = load_tok("metaspace_tiny");
  CHECK(t->encode("abc ab").ids == Ids{1, 265, 263, 261});
  CHECK(t->encode("abc ab").offsets == Offsets{{0, 0}, {0, 3}, {3, 5}, {5, 6}});
  // Hugging Face's Metaspace unit test.
  CHECK(pre_texts(*t, "Hey   friend!") == Strings{"▁Hey", "▁", "▁", "▁friend!"});
  CHECK(pre_spans(*t, "Hey   friend!") == Offsets{{0, 3}, {3, 4}, {4, 5}, {5, 13}});
  // "first": no ▁ for text that does not start the input (after <s>): a b, no merge.
  CHECK(t->encode("<s>ab", false).ids == Ids{1, 260, 261});
  // Decoder: ▁ -> space, except in the first token where it is dropped.
  CHECK(t->decode({265, 263, 261}) == "abc ab");
  CHECK(t->decode({259, 259, 260}) == " a");
  CHECK(t->decode({1, 265}) == "<s> abc");
  CHECK(t->decode({1, 265}, true) == "abc");
}

TEST_CASE("Metaspace prepend schemes and split=false", "[tokenizer]") {
  auto with = [](const json& pre) {
    return chars_with([&](json& j) { j["pre_tokenizer"] = pre; });
  };
  auto always = with({{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "always"}, {"split", true}});
  CHECK(pre_texts(*always, "Hey friend!") == Strings{"▁Hey", "▁friend!"});
  CHECK(pre_spans(*always, "Hey friend!") == Offsets{{0, 3}, {3, 11}});
  auto nosplit = with({{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "always"}, {"split", false}});
  CHECK(pre_texts(*nosplit, "Hey friend!") == Strings{"▁Hey▁friend!"});
  auto never = with({{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "never"}, {"split", true}});
  CHECK(pre_texts(*never, "Hey friend!") == Strings{"Hey", "▁friend!"});
  // Legacy field: add_prefix_space true means "always".
  auto legacy = with({{"type", "Metaspace"}, {"replacement", "▁"}, {"add_prefix_space", true}});
  CHECK(pre_texts(*legacy, "Hey friend!") == Strings{"▁Hey", "▁friend!"});
}

// ---------------------------------------------------------------------------------------------------
// NFKC + Lowercase, Split(" ", Removed) + Digits(individual), unk without fusing, no decoder.
// Ids: [UNK] 0, a 1, b 2, c 3, 1 4, 2 5, 3 6, fi 7, f 8, i 9, ab 10, x 11; merges "a b", "f i".

TEST_CASE("NFKC - Lowercase - Digits and unknown tokens", "[tokenizer]") {
  auto t = load_tok("nfkc_digits_tiny");
  // U+FB01 'ﬁ' (3 bytes) -> "fi"; both letters map to it, so the merged token covers (0,3).
  Encoding e = t->encode("ﬁ ab12");
  CHECK(e.ids == Ids{7, 10, 4, 5});
  CHECK(e.offsets == Offsets{{0, 3}, {4, 6}, {6, 7}, {7, 8}});
  // Fullwidth digits (3 bytes each) -> ASCII digits, then one piece per digit.
  Encoding f = t->encode("１２３");
  CHECK(f.ids == Ids{4, 5, 6});
  CHECK(f.offsets == Offsets{{0, 3}, {3, 6}, {6, 9}});
  CHECK(t->encode("AB").ids == Ids{10});
  // z is unknown: one [UNK] per char when fuse_unk is false.
  Encoding u = t->encode("zz a");
  CHECK(u.ids == Ids{0, 0, 1});
  CHECK(u.tokens == Strings{"[UNK]", "[UNK]", "a"});
  CHECK(u.offsets == Offsets{{0, 1}, {1, 2}, {3, 4}});
  CHECK(t->encode("azza").ids == Ids{1, 0, 0, 1});
  CHECK(t->normalize("ﬁ AB１") == "fi ab1");
  CHECK(pre_texts(*t, "ab12 c3") == Strings{"ab", "1", "2", "c", "3"});
  // No decoder: tokens joined with spaces.
  CHECK(t->decode({7, 10}) == "fi ab");
}

TEST_CASE("fuse_unk and Digits without individual_digits", "[tokenizer]") {
  json j = read_json("nfkc_digits_tiny");
  j["model"]["fuse_unk"] = true;
  j["pre_tokenizer"]["pretokenizers"][1]["individual_digits"] = false;
  auto t = from(j);
  Encoding u = t->encode("zz a");
  CHECK(u.ids == Ids{0, 1});
  CHECK(u.offsets == Offsets{{0, 2}, {3, 4}});
  CHECK(t->encode("azza").ids == Ids{1, 0, 1});
  CHECK(pre_texts(*t, "ab12 c3") == Strings{"ab", "12", "c", "3"});
}

// ---------------------------------------------------------------------------------------------------
// Added tokens (chars_tiny: id = ASCII code - 32, so ' ' 0, 'a' 65 ...).

TEST_CASE("Added tokens: special/raw vs normalized - lstrip/rstrip - single_word", "[tokenizer]") {
  // The AddedVocabulary "options_use_cases" case: Lowercase normalizer, "[CLS]"/"[SEP]" special and not
  // normalized, "my" with lstrip+rstrip, "name", "ony" single_word; all but the special ones normalized.
  auto t = chars_with([](json& j) {
    j["normalizer"] = {{"type", "Lowercase"}};
    j["added_tokens"] = {added(200, "[CLS]", true, false), added(201, "[SEP]", true, false),
                         added(202, "my", false, true, true, true), added(203, "name", false, true),
                         added(204, "ony", false, true, false, false, true)};
  });
  const std::string text = "[CLS] My name is Anthony [SEP]";
  auto pre = pre_tokenize(*t, text);
  REQUIRE(pre.size() == 5);
  CHECK(pre[0].added_id == 200);
  CHECK(pre[1].text == " my ");  // includes both stripped spaces, matched on the lowercased text
  CHECK(pre[1].added_id == 202);
  CHECK(std::make_pair(pre[1].begin, pre[1].end) == std::make_pair(size_t(5), size_t(9)));
  CHECK(pre[2].added_id == 203);
  CHECK(pre[3].text == " is anthony ");  // "ony" inside "anthony" is not a single word
  CHECK(pre[3].added_id == -1);
  CHECK(pre[4].added_id == 201);
  Encoding e = t->encode(text);
  CHECK(e.ids == Ids{200, 202, 203, 0, 73, 83, 0, 65, 78, 84, 72, 79, 78, 89, 0, 201});
  CHECK(e.offsets[1] == std::make_pair(size_t(5), size_t(9)));
  CHECK(e.offsets.back() == std::make_pair(size_t(25), size_t(30)));
  CHECK(t->is_special(200));
  CHECK_FALSE(t->is_special(202));
  CHECK(t->token_to_id("my") == 202);
  CHECK(t->id_to_token(203) == "name");
  CHECK(t->decode({200, 202, 203}) == "[CLS] my name");
  CHECK(t->decode({200, 202, 203}, true) == "my name");
}

TEST_CASE("Added tokens: single_word rules", "[tokenizer]") {
  // AddedVocabulary "test_single_word_is_correct".
  auto t = chars_with([](json& j) {
    j["normalizer"] = {{"type", "Lowercase"}};
    j["added_tokens"] = json::array({added(200, "<mask>", false, true, false, false, true)});  // not {x}: clang makes that x itself
  });
  auto pre = pre_tokenize(*t, "<mask> My name <mask> A<mask> <mask>ony <mask>");
  Strings texts;
  std::vector<int64_t> ids;
  for (const auto& p : pre) {
    texts.push_back(p.text);
    ids.push_back(p.added_id);
  }
  CHECK(texts == Strings{"<mask>", " my name ", "<mask>", " a<mask> <mask>ony ", "<mask>"});
  CHECK(ids == Ids{200, -1, 200, -1, 200});
}

TEST_CASE("Added tokens: lstrip/rstrip take Unicode whitespace and do not overlap", "[tokenizer]") {
  // AddedVocabulary "test_lstrip_unicode_space".
  auto t = chars_with([](json& j) {
    j["normalizer"] = {{"type", "Lowercase"}};
    j["added_tokens"] = json::array({added(200, "<mask>", false, true, true, true, true)});
  });
  auto pre = pre_tokenize(*t, "Hi <mask> there\t<mask>\t<mask>\u2000");
  Strings texts;
  for (const auto& p : pre) texts.push_back(p.text);
  CHECK(texts == Strings{"hi", " <mask> ", "there", "\t<mask>\t", "<mask>\u2000"});
}

TEST_CASE("Added tokens: leftmost-longest match - raw before normalized", "[tokenizer]") {
  auto t = chars_with([](json& j) {
    j["normalizer"] = {{"type", "Lowercase"}};
    j["added_tokens"] = {added(200, "<a>", true, false), added(201, "<a><b>", true, false),
                         added(202, "xy", false, true)};
  });
  // "<a><b>" wins over "<a>" at the same start; "XY" matches "xy" after lowercasing; the special
  // tokens are matched on the raw text only, so "<A>" is not "<a>" (it is lowercased to the chars
  // '<' 28, 'a' 65, '>' 30).
  CHECK(t->encode("<a><b><a>XY<A>").ids == Ids{201, 200, 202, 28, 65, 30});
}

// ---------------------------------------------------------------------------------------------------
// Split behaviours: the SplitDelimiterBehavior documentation example.

TEST_CASE("Split pre-tokenizer behaviours and invert", "[tokenizer]") {
  auto split = [](const std::string& behavior, bool invert) {
    return chars_with([&](json& j) {
      j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior}, {"invert", invert}};
    });
  };
  const std::string s = "the-final--countdown";
  CHECK(pre_texts(*split("Removed", false), s) == Strings{"the", "final", "countdown"});
  CHECK(pre_texts(*split("Isolated", false), s) == Strings{"the", "-", "final", "-", "-", "countdown"});
  CHECK(pre_texts(*split("MergedWithPrevious", false), s) == Strings{"the-", "final-", "-", "countdown"});
  CHECK(pre_texts(*split("MergedWithNext", false), s) == Strings{"the", "-final", "-", "-countdown"});
  CHECK(pre_texts(*split("Contiguous", false), s) == Strings{"the", "-", "final", "--", "countdown"});
  // invert swaps matches and gaps: removing the (inverted) matches keeps the dashes; merging the
  // words with what precedes them is the mirror image of MergedWithNext.
  CHECK(pre_texts(*split("Removed", true), s) == Strings{"-", "-", "-"});
  CHECK(pre_texts(*split("MergedWithPrevious", true), s) == Strings{"the", "-final", "-", "-countdown"});
  CHECK(pre_spans(*split("Removed", false), s) == Offsets{{0, 3}, {4, 9}, {11, 20}});

  auto re = chars_with([](json& j) {
    j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "\\s+"}}}, {"behavior", "Removed"}, {"invert", false}};
  });
  CHECK(pre_texts(*re, "a  b\tc") == Strings{"a", "b", "c"});
}

// ---------------------------------------------------------------------------------------------------
// Normalizers.

TEST_CASE("Normalizers: Strip - Replace (regex and string) - NFC - NFKC - Lowercase - Prepend", "[tokenizer]") {
  auto t = chars_with([](json& j) {
    j["normalizer"] = {{"type", "Sequence"},
                       {"normalizers",
                        {{{"type", "Strip"}, {"strip_left", true}, {"strip_right", true}},
                         {{"type", "Replace"}, {"pattern", {{"Regex", " +"}}}, {"content", " "}},
                         {{"type", "NFC"}}}}};
  });
  CHECK(t->normalize("  a   e\u0301  ") == "a \u00e9");
  // The replacement maps to the whole replaced run (1,4) (Hugging Face: "each character in the new
  // normalized part will align to the whole replaced one").
  Encoding e = t->encode("a   b");
  CHECK(e.ids == Ids{65, 0, 66});
  CHECK(e.offsets == Offsets{{0, 1}, {1, 4}, {4, 5}});
  // A char that is not in the vocabulary, without unk_token or byte_fallback, is dropped.
  CHECK(t->encode("a e\u0301").ids == Ids{65, 0});

  // NFC composes Hangul jamo algorithmically: U+1100 U+1161 U+11A8 -> U+AC01.
  CHECK(t->normalize("a\u1100\u1161\u11A8b") == "a\uAC01b");
  auto nfkc = chars_with([](json& j) {
    j["normalizer"] = {{"type", "NFKC"}};
    j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "."}}}, {"behavior", "Isolated"}, {"invert", false}};
  });
  // Halfwidth ﾊ U+FF8A + ﾞ U+FF9E -> ハ + U+3099 -> バ U+30D0, which covers both input chars.
  CHECK(nfkc->normalize("x\uFF8A\uFF9Ey") == "x\u30D0y");
  CHECK(pre_texts(*nfkc, "x\uFF8A\uFF9Ey") == Strings{"x", "\u30D0", "y"});
  CHECK(pre_spans(*nfkc, "x\uFF8A\uFF9Ey") == Offsets{{0, 1}, {1, 7}, {7, 8}});

  auto lower = chars_with([](json& j) { j["normalizer"] = {{"type", "Lowercase"}}; });
  // Rust char::to_lowercase: U+0130 has the two-char lowercase "i\u0307".
  CHECK(lower->normalize("\u00C0B \u0130") == "\u00E0b i\u0307");

  auto prep = chars_with([](json& j) {
    j["normalizer"] = {{"type", "Sequence"},
                       {"normalizers",
                        {{{"type", "Prepend"}, {"prepend", "_"}},
                         {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "_"}}}}};
  });
  CHECK(prep->normalize("a b") == "_a_b");
  CHECK(prep->normalize("") == "");
  Encoding p = prep->encode("a b");
  CHECK(p.ids == Ids{63, 65, 63, 66});
  CHECK(p.offsets == Offsets{{0, 1}, {0, 1}, {1, 2}, {2, 3}});
}

// ---------------------------------------------------------------------------------------------------
// Decoders on their own (vocabulary = the listed strings, ids in order).

TEST_CASE("Decoders: Metaspace - ByteFallback - Fuse - Strip - Replace - BPEDecoder - Sequence", "[tokenizer]") {
  json meta = {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "always"}, {"split", true}};
  CHECK(decoder_tok({"▁Hey", "▁friend!"}, meta)->decode({0, 1}) == "Hey friend!");
  json never = {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "never"}, {"split", true}};
  CHECK(decoder_tok({"▁Hey"}, never)->decode({0}) == " Hey");

  json fallback = {{"type", "Sequence"}, {"decoders", {{{"type", "ByteFallback"}}, {{"type", "Fuse"}}}}};
  // E5 8F AB is U+53EB; hex digits may be lower case.
  auto bf = decoder_tok({"<0xE5>", "<0x8f>", "<0xab>", "a"}, fallback);
  CHECK(bf->decode({0, 1, 2, 3}) == "\u53EB" "a");
  CHECK(bf->decode({0, 0, 3}) == "\xEF\xBF\xBD\xEF\xBF\xBD" "a");

  CHECK(decoder_tok({"Hey", " friend"}, {{"type", "Fuse"}})->decode({0, 1}) == "Hey friend");
  // Strip applies to every token: at most `start` leading and `stop` trailing copies of the char.
  json strip = {{"type", "Strip"}, {"content", "H"}, {"start", 1}, {"stop", 0}};
  CHECK(decoder_tok({"Hey", " friend!", "HHH"}, strip)->decode(iota_ids(3)) == "ey friend!HH");
  json strip_end = {{"type", "Strip"}, {"content", "!"}, {"start", 0}, {"stop", 2}};
  CHECK(decoder_tok({"a!!!", "b!"}, strip_end)->decode({0, 1}) == "a!b");

  json replace = {{"type", "Replace"}, {"pattern", {{"String", "_"}}}, {"content", " "}};
  CHECK(decoder_tok({"Hello_friend", "_x"}, replace)->decode({0, 1}) == "Hello friend x");
  json replace_re = {{"type", "Replace"}, {"pattern", {{"Regex", "[0-9]+"}}}, {"content", "#"}};
  CHECK(decoder_tok({"a12b3"}, replace_re)->decode({0}) == "a#b#");

  json bpe = {{"type", "BPEDecoder"}, {"suffix", "</w>"}};
  CHECK(decoder_tok({"My</w>", "na", "me</w>"}, bpe)->decode({0, 1, 2}) == "My name");

  json bytelevel = {{"type", "ByteLevel"}};
  CHECK(decoder_tok({"Hello", "Ġthere", "<X>"}, bytelevel)->decode({0, 1, 2}) == "Hello there<X>");
}

TEST_CASE("BPE continuing_subword_prefix and end_of_word_suffix", "[tokenizer]") {
  // With a prefix, non-initial chars are looked up as "##x" and a merge (a, ##b) yields "a" + "b".
  json pre = {{"model",
               {{"type", "BPE"},
                {"continuing_subword_prefix", "##"},
                {"vocab", {{"a", 0}, {"##b", 1}, {"ab", 2}, {"b", 3}, {"##a", 4}}},
                {"merges", json::array({"a ##b"})}}}};
  auto p = from(pre);
  CHECK(p->encode("ab").ids == Ids{2});
  CHECK(p->encode("ba").ids == Ids{3, 4});
  // With a suffix, the last char is looked up as "x</w>"; (a, b</w>) yields "ab</w>".
  json suf = {{"model",
               {{"type", "BPE"},
                {"end_of_word_suffix", "</w>"},
                {"vocab", {{"a", 0}, {"b</w>", 1}, {"ab</w>", 2}}},
                {"merges", json::array({json::array({"a", "b</w>"})})}}},
              {"decoder", {{"type", "BPEDecoder"}, {"suffix", "</w>"}}}};
  auto s = from(suf);
  CHECK(s->encode("ab").ids == Ids{2});
  CHECK(s->decode({2, 2}) == "ab ab");
}

// ---------------------------------------------------------------------------------------------------
// Loading, tokenizer_config.json, errors.

TEST_CASE("tokenizer_config.json adds the added_tokens_decoder entries tokenizer.json lacks", "[tokenizer]") {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("cs_tok_cfg_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::copy_file(kDir + "chars_tiny/tokenizer.json", dir / "tokenizer.json", fs::copy_options::overwrite_existing);
  {
    std::ofstream cfg(dir / "tokenizer_config.json");
    cfg << R"({"added_tokens_decoder": {"300": {"content": "<extra>", "lstrip": false, "normalized": false,
              "rstrip": false, "single_word": false, "special": true}}, "bos_token": null})";
  }
  auto t = load_tokenizer(dir.string());
  CHECK(t->token_to_id("<extra>") == 300);
  CHECK(t->is_special(300));
  CHECK(t->encode("a<extra>").ids == Ids{65, 300});
  CHECK(t->vocab_size() == 301);
  fs::remove_all(dir);
}

TEST_CASE("load_tokenizer: missing files - SentencePiece fallback", "[tokenizer][spm]") {
  namespace fs = std::filesystem;
  std::string msg;
  CHECK(error_code_of([] { load_tokenizer("/nonexistent/model/dir"); }, msg) == ErrorCode::kIo);
  fs::path dir = fs::temp_directory_path() / ("cs_tok_spm_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  CHECK(error_code_of([&] { load_tokenizer(dir.string()); }, msg) == ErrorCode::kIo);
  CHECK(msg.find("tokenizer.json or tokenizer.model") != std::string::npos);
  // Only tokenizer.model: handed to the SentencePiece loader (which rejects this junk file).
  { std::ofstream(dir / "tokenizer.model") << "not a model"; }
  CHECK_THROWS_AS(load_tokenizer(dir.string()), Error);
  try {
    load_tokenizer(dir.string());
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("tokenizer.model") != std::string::npos);
    CHECK(e.code() != ErrorCode::kIo);
  }
  fs::remove_all(dir);
}

TEST_CASE("Malformed or unsupported tokenizer.json: Error names the type and the JSON path", "[tokenizer]") {
  std::string msg;
  CHECK(error_code_of([] { tokenizer_from_json("{\"model\": ", "bad.json"); }, msg) == ErrorCode::kFormat);
  CHECK(msg.find("bad.json") != std::string::npos);
  CHECK(error_code_of([] { tokenizer_from_json("{}"); }, msg) == ErrorCode::kFormat);
  CHECK(msg.find("'model'") != std::string::npos);

  auto edited = [](const std::function<void(json&)>& edit) {
    json j = read_json("chars_tiny");
    edit(j);
    return [j] { tokenizer_from_json(j.dump()); };
  };
  CHECK(error_code_of(edited([](json& j) { j["model"]["type"] = "WordPiece"; }), msg) == ErrorCode::kUnsupported);
  CHECK(msg.find("WordPiece") != std::string::npos);
  CHECK(msg.find("$.model.type") != std::string::npos);

  CHECK(error_code_of(edited([](json& j) {
          j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}, {{"type", "BertNormalizer"}}}}};
        }),
                      msg) == ErrorCode::kUnsupported);
  CHECK(msg.find("BertNormalizer") != std::string::npos);
  CHECK(msg.find("$.normalizer.normalizers[1].type") != std::string::npos);

  CHECK(error_code_of(edited([](json& j) { j["pre_tokenizer"] = {{"type", "Whitespace"}}; }), msg) ==
        ErrorCode::kUnsupported);
  CHECK(msg.find("$.pre_tokenizer.type") != std::string::npos);
  CHECK(error_code_of(edited([](json& j) { j["decoder"] = {{"type", "WordPiece"}, {"prefix", "##"}}; }), msg) ==
        ErrorCode::kUnsupported);
  CHECK(msg.find("$.decoder.type") != std::string::npos);
  CHECK(error_code_of(edited([](json& j) { j["post_processor"] = {{"type", "RobertaProcessing"}}; }), msg) ==
        ErrorCode::kUnsupported);
  CHECK(msg.find("RobertaProcessing") != std::string::npos);
  CHECK(error_code_of(edited([](json& j) { j["model"]["dropout"] = 0.1; }), msg) == ErrorCode::kUnsupported);

  CHECK(error_code_of(edited([](json& j) { j["model"]["merges"] = json::array({"a q_not_there"}); }), msg) == ErrorCode::kFormat);
  CHECK(msg.find("$.model.merges[0]") != std::string::npos);
  CHECK(error_code_of(edited([](json& j) { j["model"]["merges"] = json::array({"abc"}); }), msg) == ErrorCode::kFormat);
  CHECK(msg.find("one space") != std::string::npos);
  CHECK(error_code_of(edited([](json& j) { j["model"]["vocab"]["a"] = "x"; }), msg) == ErrorCode::kFormat);
  CHECK(msg.find("$.model.vocab[\"a\"]") != std::string::npos);
  CHECK(error_code_of(edited([](json& j) { j["model"]["vocab"]["b"] = -1; }), msg) == ErrorCode::kFormat);
  CHECK(msg.find("$.model.vocab[\"b\"]") != std::string::npos);
  CHECK(error_code_of(edited([](json& j) { j["model"]["vocab"]["c"] = 2.5; }), msg) == ErrorCode::kFormat);
  CHECK(error_code_of(edited([](json& j) { j["model"]["vocab"] = json::array({1, 2}); }), msg) == ErrorCode::kFormat);
  CHECK(msg.find("$.model.vocab") != std::string::npos);
  CHECK(error_code_of(edited([](json& j) { j["model"]["merges"] = json::array({json::array({"a", 1})}); }), msg) ==
        ErrorCode::kFormat);
  CHECK(msg.find("$.model.merges[0]") != std::string::npos);
  CHECK(error_code_of(edited([](json& j) { j["model"]["merges"] = json::array({"a b", json::object()}); }), msg) ==
        ErrorCode::kFormat);
  CHECK(msg.find("$.model.merges[1]") != std::string::npos);
  CHECK(error_code_of(edited([](json& j) { j["model"]["merges"] = "a b"; }), msg) == ErrorCode::kFormat);
  CHECK(error_code_of(edited([](json& j) {
          j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
        }),
                      msg) == ErrorCode::kFormat);
  CHECK(msg.find("$.pre_tokenizer.pattern.Regex") != std::string::npos);
  CHECK(error_code_of(edited([](json& j) {
          j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", "Sideways"}};
        }),
                      msg) == ErrorCode::kFormat);
  CHECK(msg.find("Sideways") != std::string::npos);
  CHECK(error_code_of(edited([](json& j) { j["added_tokens"] = {{{"content", "x"}}}; }), msg) == ErrorCode::kFormat);
  CHECK(msg.find("$.added_tokens[0]") != std::string::npos);
  CHECK(error_code_of(edited([](json& j) { j["normalizer"] = {{"kind", "NFC"}}; }), msg) == ErrorCode::kFormat);
  CHECK(error_code_of(edited([](json& j) {
          j["post_processor"] = {{"type", "TemplateProcessing"},
                                 {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}}},
                                 {"special_tokens", json::object()}};
        }),
                      msg) == ErrorCode::kFormat);
  CHECK(msg.find("<s>") != std::string::npos);
}

TEST_CASE("Invalid UTF-8 input is an Error naming the byte offset", "[tokenizer]") {
  auto t = load_tok("bytelevel_tiny");
  const std::vector<std::pair<std::string, size_t>> cases = {
      {"ab\xC3(", 2},                  // lead byte without its continuation
      {"abc\x80", 3},                  // lone continuation byte
      {"\xC0\xAF", 0},                 // overlong encoding of '/'
      {"x\xED\xA0\x80", 1},            // UTF-16 surrogate
      {"ok \xF4\x90\x80\x80", 3},      // above U+10FFFF
      {"\xE4\xB8", 0},                 // truncated at the end
  };
  for (const auto& c : cases) {
    const std::string& text = c.first;  // not a structured binding: clang < 16 cannot capture those
    const size_t at = c.second;
    std::string msg;
    CHECK(error_code_of([&] { t->encode(text); }, msg) == ErrorCode::kInput);
    CHECK(msg.find("byte offset " + std::to_string(at)) != std::string::npos);
    CHECK(error_code_of([&] { t->normalize(text); }, msg) == ErrorCode::kInput);
  }
  CHECK_THROWS_AS(t->id_to_token(100000), Error);
}
