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

class BpeModel {
 public:
  struct Sym {
    int32_t id;
    uint32_t b, e;  // byte range in the piece text
  };

  BpeModel(const nlohmann::json& j, const std::string& path);

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
  std::unordered_map<std::string_view, int32_t> vocab_;  // views into vocab_r_ and extra_keys_
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
