#include "tokenizer/hf_bpe.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "tokenizer/hf_json.hpp"
#include "tokenizer/hf_unicode.hpp"

namespace circuitscope::hf {

void MergeMap::reserve(size_t n) {
  size_t cap = 16;
  while (cap < n * 2) cap <<= 1;
  slots_.assign(cap, Entry{kEmpty, 0, 0});
  mask_ = cap - 1;
  size_ = 0;
}

void MergeMap::insert(int32_t a, int32_t b, uint32_t rank, int32_t new_id) {
  if ((size_ + 1) * 2 > slots_.size()) {
    std::vector<Entry> old;
    old.swap(slots_);
    reserve(old.size());  // doubles: reserve(n) sizes for 2n
    for (const Entry& e : old) {
      if (e.key != kEmpty) insert(int32_t(e.key >> 32), int32_t(e.key & 0xFFFFFFFFu), e.rank, e.new_id);
    }
  }
  uint64_t key = make_key(a, b);
  size_t i = hash(key) & mask_;
  while (slots_[i].key != kEmpty && slots_[i].key != key) i = (i + 1) & mask_;
  if (slots_[i].key == kEmpty) ++size_;
  slots_[i] = Entry{key, rank, new_id};
}

uint64_t StringIdMap::hash(std::string_view s) {
  const char* p = s.data();
  size_t n = s.size();
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xFF51AFD7ED558CCDull);
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    h = (h ^ v) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
    p += 8;
    n -= 8;
  }
  uint64_t v = 0;
  std::memcpy(&v, p, n);
  h = (h ^ v) * 0x94D049BB133111EBull;
  h ^= h >> 29;
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 32;
  return h;
}

void StringIdMap::reserve(size_t n) {
  keys_.reserve(n);
  ids_.reserve(n);
  size_t cap = 16;
  while (cap < n + n / 2 + 1) cap <<= 1;  // load factor at most 2/3
  if (cap <= slots_.size()) return;
  slots_.assign(cap, Slot{0, -1});
  mask_ = cap - 1;
  for (size_t k = 0; k < keys_.size(); ++k) {
    uint64_t h = hash(keys_[k]);
    size_t i = static_cast<size_t>(h) & mask_;
    while (slots_[i].index >= 0) i = (i + 1) & mask_;
    slots_[i] = Slot{static_cast<uint32_t>(h >> 32), static_cast<int32_t>(k)};
  }
}

void StringIdMap::insert(std::string_view key, int32_t id) {
  uint64_t h = hash(key);
  uint32_t tag = static_cast<uint32_t>(h >> 32);
  size_t i = static_cast<size_t>(h) & mask_;
  while (slots_[i].index >= 0) {
    const Slot& s = slots_[i];
    if (s.tag == tag && keys_[static_cast<size_t>(s.index)] == key) {
      ids_[static_cast<size_t>(s.index)] = id;
      return;
    }
    i = (i + 1) & mask_;
  }
  if ((keys_.size() + 1) * 3 > slots_.size() * 2) {
    reserve(keys_.size() * 2 + 16);
    insert(key, id);
    return;
  }
  slots_[i] = Slot{tag, static_cast<int32_t>(keys_.size())};
  keys_.push_back(key);
  ids_.push_back(id);
}

BpeModel::BpeModel(const json& j, const std::string& path, ModelTables* tables) {
  byte_fallback_ = get_bool_or(j, "byte_fallback", false, path);
  fuse_unk_ = get_bool_or(j, "fuse_unk", false, path);
  ignore_merges_ = get_bool_or(j, "ignore_merges", false, path);
  prefix_ = get_string_or(j, "continuing_subword_prefix", "", path);
  suffix_ = get_string_or(j, "end_of_word_suffix", "", path);
  if (const json* u = optional_member(j, "unk_token")) {
    if (!u->is_string()) format_error(path + ".unk_token", "expected a string or null");
    unk_token_ = u->get<std::string>();
    has_unk_ = true;
  }
  if (const json* d = optional_member(j, "dropout")) {
    if (!d->is_number()) format_error(path + ".dropout", "expected a number or null");
    if (d->get<double>() != 0.0) {
      throw Error(ErrorCode::kUnsupported, "at " + path + ".dropout: BPE dropout is not supported (deterministic "
                                           "encoding only); found " + d->dump());
    }
  }
  if (tables && !tables->error_path.empty()) format_error(tables->error_path, tables->error_message);

  // Vocabulary, as (token, id) entries: collected by the loader, or read from the JSON tree.
  std::vector<std::pair<std::string, int64_t>> entries;
  const json& vocab = member(j, "vocab", path);
  if (vocab.is_null() && tables && tables->has_vocab) {
    entries = std::move(tables->vocab);
  } else {
    if (!vocab.is_object()) format_error(path + ".vocab", std::string("expected an object, found ") + json_kind(vocab));
    entries.reserve(vocab.size());
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      const json& v = it.value();
      if (!v.is_number_integer() || v.get<int64_t>() < 0) {
        format_error(path + ".vocab[\"" + it.key() + "\"]", "expected a non-negative integer id, found " + v.dump());
      }
      entries.emplace_back(it.key(), v.get<int64_t>());
    }
  }
  int64_t max_id = -1;
  for (const auto& e : entries) max_id = std::max(max_id, e.second);
  // Ids index a dense table: refuse absurdly sparse ones rather than allocate gigabytes.
  if (max_id >= static_cast<int64_t>(entries.size()) * 4 + 65536) {
    format_error(path + ".vocab", "token id " + std::to_string(max_id) + " is far beyond the vocabulary size " +
                                      std::to_string(entries.size()));
  }
  vocab_r_.assign(static_cast<size_t>(max_id + 1), std::string());
  has_id_.assign(static_cast<size_t>(max_id + 1), 0);
  vocab_.reserve(entries.size());
  for (auto& [key, id] : entries) {
    size_t i = static_cast<size_t>(id);
    if (has_id_[i]) {  // two tokens share an id: keep the other spelling findable too
      extra_keys_.push_back(std::move(key));
      vocab_.insert(extra_keys_.back(), static_cast<int32_t>(id));
    } else {
      vocab_r_[i] = std::move(key);
      has_id_[i] = 1;
    }
  }
  // vocab_r_ is complete (no more reallocation), so views into its strings stay valid.
  for (size_t i = 0; i < vocab_r_.size(); ++i) {
    if (has_id_[i]) vocab_.insert(vocab_r_[i], static_cast<int32_t>(i));
  }
  entries.clear();
  entries.shrink_to_fit();

  // Merges, as (left, right) pairs; the rank is the position.
  std::vector<std::pair<std::string, std::string>> merges;
  const json& mj = member(j, "merges", path);
  if (mj.is_null() && tables && tables->has_merges) {
    merges = std::move(tables->merges);
  } else {
    if (!mj.is_array()) format_error(path + ".merges", std::string("expected an array, found ") + json_kind(mj));
    merges.reserve(mj.size());
    for (size_t rank = 0; rank < mj.size(); ++rank) {
      const json& m = mj[rank];
      if (m.is_string()) {
        const std::string& s = m.get_ref<const std::string&>();
        size_t sp = s.find(' ');
        if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
          format_error(path + ".merges[" + std::to_string(rank) + "]", "expected \"left right\" with one space, found \"" + s + "\"");
        }
        merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      } else {
        format_error(path + ".merges[" + std::to_string(rank) + "]", "expected a string or a pair of strings, found " + m.dump());
      }
    }
  }
  merges_.reserve(merges.size());
  auto lookup = [&](const std::string& tok, size_t rank, const char* what) -> int32_t {
    int32_t id = vocab_.find(tok);
    if (id < 0) {
      format_error(path + ".merges[" + std::to_string(rank) + "]", std::string(what) + " '" + tok + "' is not in the vocabulary");
    }
    return id;
  };
  std::string merged;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    int32_t ia = lookup(a, rank, "left part");
    int32_t ib = lookup(b, rank, "right part");
    // The continuing-subword prefix of the right part is dropped when merging (as Hugging Face does).
    merged.assign(a);
    if (b.size() >= prefix_.size()) merged.append(b, prefix_.size(), std::string::npos);
    int32_t im = lookup(merged, rank, "merged token");
    merges_.insert(ia, ib, static_cast<uint32_t>(rank), im);
  }

  const auto& bl = byte_level_strings();
  char buf[8];
  for (int byte = 0; byte < 256; ++byte) {
    byte_level_ids_[byte] = vocab_.find(bl[byte]);
    std::snprintf(buf, sizeof buf, "<0x%02X>", byte);
    byte_token_ids_[byte] = vocab_.find(buf);
  }
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  int32_t id = vocab_.find(token);
  if (id < 0) return std::nullopt;
  return id;
}

const std::string* BpeModel::id_to_token(int64_t id) const {
  if (id < 0 || id >= static_cast<int64_t>(vocab_r_.size()) || !has_id_[static_cast<size_t>(id)]) return nullptr;
  return &vocab_r_[static_cast<size_t>(id)];
}

int32_t BpeModel::unk_id() const {
  int32_t id = vocab_.find(unk_token_);
  if (id < 0) {
    throw Error(ErrorCode::kFormat, "BPE unk_token '" + unk_token_ + "' is needed but is not in the vocabulary");
  }
  return id;
}

// One char of the pre-token (spelled `s`, with prefix/suffix already added) covering bytes [b,e): its
// vocabulary id, else its byte tokens (byte_fallback), else the unknown token. Mirrors Hugging Face's
// BPE::merge_word, including where a pending unknown token lands.
void BpeModel::add_char_symbols(std::string_view s, uint32_t b, uint32_t e, std::vector<Sym>& word,
                                std::optional<Sym>& unk) const {
  int32_t id = vocab_.find(s);
  if (id >= 0) {
    if (unk) {
      word.push_back(*unk);
      unk.reset();
    }
    word.push_back({id, b, e});
    return;
  }
  if (byte_fallback_) {
    bool all = true;
    for (char c : s) all = all && byte_token_ids_[static_cast<unsigned char>(c)] >= 0;
    if (all) {
      uint32_t pos = b;
      for (char c : s) {
        uint32_t nb = std::min(pos, e), ne = std::min(pos + 1, e);
        word.push_back({byte_token_ids_[static_cast<unsigned char>(c)], nb, ne});
        ++pos;
      }
      return;
    }
  }
  if (!has_unk_) return;  // Hugging Face drops the char silently
  if (unk && fuse_unk_) {
    unk->e = e;
    return;
  }
  if (unk) word.push_back(*unk);
  unk = Sym{unk_id(), b, e};
}

namespace {

struct Symbol {
  int32_t id;
  uint32_t b, e;
  int32_t prev, next;
  bool alive;
};

struct Candidate {
  uint32_t rank;
  uint32_t pos;
  int32_t new_id;
  // std::priority_queue is a max-heap: "less" means lower priority, i.e. higher rank or later position.
  bool operator<(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

}  // namespace

void BpeModel::merge_word(std::string_view text, bool byte_level, std::vector<Sym>& out) const {
  thread_local std::vector<Sym> word;
  thread_local std::string spelled;
  word.clear();
  std::optional<Sym> unk;
  size_t n = text.size();
  const bool plain = prefix_.empty() && suffix_.empty();
  const auto& bl = byte_level_strings();
  size_t i = 0;
  while (i < n) {
    size_t start = i;
    std::string_view chr;
    if (byte_level) {
      unsigned char byte = static_cast<unsigned char>(text[i]);
      ++i;
      if (plain && byte_level_ids_[byte] >= 0 && !unk) {  // fast path: the byte's char is in the vocabulary
        word.push_back({byte_level_ids_[byte], static_cast<uint32_t>(start), static_cast<uint32_t>(i)});
        continue;
      }
      chr = bl[byte];
    } else {
      i += utf8_seq_len(static_cast<unsigned char>(text[i]));
      if (i > n) i = n;
      chr = text.substr(start, i - start);
    }
    if (plain) {
      add_char_symbols(chr, static_cast<uint32_t>(start), static_cast<uint32_t>(i), word, unk);
    } else {
      spelled.clear();
      if (start != 0) spelled += prefix_;
      spelled.append(chr);
      if (i == n) spelled += suffix_;
      add_char_symbols(spelled, static_cast<uint32_t>(start), static_cast<uint32_t>(i), word, unk);
    }
  }
  if (unk) word.push_back(*unk);

  // Merge: always the lowest-ranked adjacent pair, leftmost first (Hugging Face Word::merge_all).
  thread_local std::vector<Symbol> syms;
  thread_local std::vector<Candidate> heap;
  syms.clear();
  heap.clear();
  size_t m = word.size();
  for (size_t k = 0; k < m; ++k) {
    syms.push_back({word[k].id, word[k].b, word[k].e, static_cast<int32_t>(k) - 1,
                    k + 1 < m ? static_cast<int32_t>(k + 1) : -1, true});
  }
  for (size_t k = 0; k + 1 < m; ++k) {
    if (const MergeMap::Entry* e = merges_.find(syms[k].id, syms[k + 1].id)) {
      heap.push_back({e->rank, static_cast<uint32_t>(k), e->new_id});
    }
  }
  std::make_heap(heap.begin(), heap.end());
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    Candidate top = heap.back();
    heap.pop_back();
    Symbol& cur = syms[top.pos];
    if (!cur.alive || cur.next < 0) continue;
    Symbol& right = syms[static_cast<size_t>(cur.next)];
    const MergeMap::Entry* e = merges_.find(cur.id, right.id);
    if (!e || e->new_id != top.new_id) continue;  // stale: one side was merged since
    cur.id = top.new_id;
    cur.e = right.e;
    right.alive = false;
    cur.next = right.next;
    if (right.next >= 0) syms[static_cast<size_t>(right.next)].prev = static_cast<int32_t>(top.pos);
    if (cur.prev >= 0) {
      if (const MergeMap::Entry* pe = merges_.find(syms[static_cast<size_t>(cur.prev)].id, cur.id)) {
        heap.push_back({pe->rank, static_cast<uint32_t>(cur.prev), pe->new_id});
        std::push_heap(heap.begin(), heap.end());
      }
    }
    if (cur.next >= 0) {
      if (const MergeMap::Entry* ne = merges_.find(cur.id, syms[static_cast<size_t>(cur.next)].id)) {
        heap.push_back({ne->rank, top.pos, ne->new_id});
        std::push_heap(heap.begin(), heap.end());
      }
    }
  }
  for (const Symbol& s : syms) {
    if (s.alive) out.push_back({s.id, s.b, s.e});
  }
}

void BpeModel::tokenize(const Piece& p, std::vector<Sym>& out) const {
  const std::string& text = p.text;
  if (text.empty()) return;
  if (ignore_merges_) {
    std::optional<int32_t> id;
    if (p.byte_level) {
      thread_local std::string spelled;
      spelled.clear();
      const auto& bl = byte_level_strings();
      for (char c : text) spelled += bl[static_cast<unsigned char>(c)];
      id = token_to_id(spelled);
    } else {
      id = token_to_id(text);
    }
    if (id) {
      out.push_back({*id, 0, static_cast<uint32_t>(text.size())});
      return;
    }
  }
  const bool cacheable = text.size() < kMaxCachedLen;
  auto& cache = cache_[p.byte_level ? 1 : 0];
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache.find(text);
    if (it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  size_t first = out.size();
  merge_word(text, p.byte_level, out);
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache.size() >= kCacheCapacity) cache.clear();  // bounded: start over rather than grow
    cache.emplace(text, std::vector<Sym>(out.begin() + static_cast<std::ptrdiff_t>(first), out.end()));
  }
}

}  // namespace circuitscope::hf
