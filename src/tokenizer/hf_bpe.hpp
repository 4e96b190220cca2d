// The BPE model of tokenizer.json (internal).
#pragma once
#include <array>
#include <deque>
#include <cstdint>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/hf_json_load.hpp"
#include "tokenizer/hf_pipeline.hpp"

namespace circuitscope::hf {

// Open-addressing map from a pair of token ids to (merge rank, merged id).
class MergeMap {
 public:
  struct Entry {
    uint64_t key;
    uint32_t rank;
    int32_t new_id;
  };
  void reserve(size_t n);
  void insert(int32_t a, int32_t b, uint32_t rank, int32_t new_id);  // a later insert of a pair wins
  const Entry* find(int32_t a, int32_t b) const {
    uint64_t key = make_key(a, b);
    size_t i = hash(key) & mask_;
    while (true) {
      const Entry& e = slots_[i];
      if (e.key == key) return &e;
      if (e.key == kEmpty) return nullptr;
      i = (i + 1) & mask_;
    }
  }
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static uint64_t make_key(int32_t a, int32_t b) {
    return (uint64_t(uint32_t(a)) << 32) | uint32_t(b);
  }
  static size_t hash(uint64_t k) { return static_cast<size_t>((k * 0x9E3779B97F4A7C15ull) >> 20); }
  std::vector<Entry> slots_ = std::vector<Entry>(16, Entry{kEmpty, 0, 0});
  size_t mask_ = 15, size_ = 0;
};

// Open-addressing map from strings (views into storage the owner keeps alive) to ids: one probe array
// with a hash tag per slot, so a lookup touches little memory (vocabularies have ~150k entries).
class StringIdMap {
 public:
  void reserve(size_t n);
  void insert(std::string_view key, int32_t id);  // a later insert of a key wins
  int32_t find(std::string_view key) const {      // -1 when absent
    uint64_t h = hash(key);
    uint32_t tag = static_cast<uint32_t>(h >> 32);
    size_t i = static_cast<size_t>(h) & mask_;
    while (true) {
      const Slot& s = slots_[i];
      if (s.index < 0) return -1;
      if (s.tag == tag && keys_[static_cast<size_t>(s.index)] == key) return ids_[static_cast<size_t>(s.index)];
      i = (i + 1) & mask_;
    }
  }
  size_t size() const { return keys_.size(); }
  static uint64_t hash(std::string_view s);

 private:
  struct Slot {
    uint32_t tag;
    int32_t index;  // into keys_/ids_, -1 when empty
  };
  void grow();
  std::vector<Slot> slots_ = std::vector<Slot>(16, Slot{0, -1});
  size_t mask_ = 15;
  std::vector<std::string_view> keys_;
  std::vector<int32_t> ids_;
};

class BpeModel {
 public:
  struct Sym {
    int32_t id;
    uint32_t b, e;  // byte range in the piece text
  };

  // `tables` (may be null) holds model.vocab / model.merges when the loader collected them instead of
  // leaving them in `j`; their strings are moved out.
  BpeModel(const nlohmann::json& j, const std::string& path, ModelTables* tables = nullptr);

  // Appends the tokens of one pre-token.
  void tokenize(const Piece& p, std::vector<Sym>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  const std::string* id_to_token(int64_t id) const;
  int64_t max_id() const { return static_cast<int64_t>(vocab_r_.size()) - 1; }

 private:
  void merge_word(std::string_view text, bool byte_level, std::vector<Sym>& out) const;
  void add_char_symbols(std::string_view s, uint32_t b, uint32_t e, std::vector<Sym>& word,
                        std::optional<Sym>& unk) const;
  int32_t unk_id() const;

  std::vector<std::string> vocab_r_;   // by id ("" where no token has the id)
  std::vector<uint8_t> has_id_;
  std::deque<std::string> extra_keys_;  // spellings of ids that two tokens share
  StringIdMap vocab_;  // views into vocab_r_ and extra_keys_
  MergeMap merges_;
  std::string unk_token_;
  bool has_unk_ = false;
  bool byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
  std::string prefix_, suffix_;
  std::array<int32_t, 256> byte_level_ids_{};   // id of each byte's ByteLevel char, -1 if absent
  std::array<int32_t, 256> byte_token_ids_{};   // id of "<0xXX>", -1 if absent

  // Bounded cache of whole-pre-token results (one per piece kind: plain / byte-level).
  static constexpr size_t kCacheCapacity = 1 << 16;
  static constexpr size_t kMaxCachedLen = 256;
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<Sym>> cache_[2];
};

}  // namespace circuitscope::hf
