#include "tokenizer/hf_json_load.hpp"

#include "circuitscope/error.hpp"
#include "circuitscope/json_limits.hpp"

namespace circuitscope::hf {
namespace {

using json = nlohmann::json;

// SAX handler: a plain tree builder, except inside model.vocab / model.merges.
class Handler {
 public:
  using number_integer_t = json::number_integer_t;
  using number_unsigned_t = json::number_unsigned_t;
  using number_float_t = json::number_float_t;
  using string_t = json::string_t;
  using binary_t = json::binary_t;

  Handler(json& root, ModelTables& t) : root_(root), t_(t) {}

  bool null() { return value(nullptr); }
  bool boolean(bool v) { return value(v); }
  bool number_integer(number_integer_t v) {
    if (mode_ == Mode::kVocab) return vocab_id(v);
    return value(v);
  }
  bool number_unsigned(number_unsigned_t v) {
    if (mode_ == Mode::kVocab) return vocab_id(v > static_cast<uint64_t>(INT64_MAX) ? -1 : static_cast<int64_t>(v));
    return value(v);
  }
  bool number_float(number_float_t v, const string_t&) { return value(v); }
  bool binary(binary_t& v) { return value(std::move(v)); }

  bool string(string_t& s) {
    if (mode_ == Mode::kMerges) {
      if (depth_ == 1) {  // "a b"
        size_t sp = s.find(' ');
        if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
          fail(merge_path(), "expected \"left right\" with one space, found \"" + s + "\"");
        } else {
          t_.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
        }
        ++merge_index_;
        return true;
      }
      if (depth_ == 2) {  // one side of an [a, b] pair
        pair_.push_back(std::move(s));
        return true;
      }
    }
    return value(std::move(s));
  }

  bool key(string_t& k) {
    if (mode_ == Mode::kVocab && depth_ == 1) {
      vocab_key_ = std::move(k);
      return true;
    }
    if (mode_ != Mode::kNone) return true;
    keys_.back() = std::move(k);
    return true;
  }

  bool start_object(std::size_t) {
    if (mode_ == Mode::kNone && at_model_member("vocab")) {
      value(nullptr);
      mode_ = Mode::kVocab;
      depth_ = 1;
      t_.has_vocab = true;
      t_.vocab.clear();
      t_.vocab.reserve(1 << 17);
      return true;
    }
    if (mode_ != Mode::kNone) {
      if (mode_ == Mode::kVocab && depth_ == 1) fail(vocab_path(), "expected a non-negative integer id, found an object");
      if (mode_ == Mode::kMerges && depth_ == 1) {
        fail(merge_path(), "expected a string or a pair of strings, found an object");
        ++merge_index_;
      }
      if (mode_ == Mode::kMerges && depth_ == 2) poison_pair();
      ++depth_;
      return true;
    }
    push(json::object());
    return true;
  }

  bool end_object() {
    if (mode_ != Mode::kNone) {
      if (--depth_ == 0) mode_ = Mode::kNone;
      return true;
    }
    stack_.pop_back();
    keys_.pop_back();
    return true;
  }

  bool start_array(std::size_t) {
    if (mode_ == Mode::kNone && at_model_member("merges")) {
      value(nullptr);
      mode_ = Mode::kMerges;
      depth_ = 1;
      merge_index_ = 0;
      t_.has_merges = true;
      t_.merges.clear();
      t_.merges.reserve(1 << 17);
      return true;
    }
    if (mode_ != Mode::kNone) {
      if (mode_ == Mode::kVocab && depth_ == 1) fail(vocab_path(), "expected a non-negative integer id, found an array");
      if (mode_ == Mode::kMerges && depth_ == 1) pair_.clear();
      if (mode_ == Mode::kMerges && depth_ == 2) poison_pair();
      ++depth_;
      return true;
    }
    push(json::array());
    return true;
  }

  bool end_array() {
    if (mode_ != Mode::kNone) {
      --depth_;
      if (mode_ == Mode::kMerges && depth_ == 1) {
        if (pair_.size() == 2 && !pair_non_string_) {
          t_.merges.emplace_back(std::move(pair_[0]), std::move(pair_[1]));
        } else {
          fail(merge_path(), "expected a pair of strings");
        }
        pair_.clear();
        pair_non_string_ = false;
        ++merge_index_;
      }
      if (depth_ == 0) mode_ = Mode::kNone;
      return true;
    }
    stack_.pop_back();
    keys_.pop_back();
    return true;
  }

  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) {
    error_ = e.what();
    return false;
  }

  const std::string& error() const { return error_; }

 private:
  enum class Mode { kNone, kVocab, kMerges };

  // A scalar or container value at the current position of the tree (outside the captured tables,
  // where values are checked instead).
  bool value(json v) {
    if (mode_ == Mode::kVocab) {
      if (depth_ == 1) fail(vocab_path(), "expected a non-negative integer id, found " + v.dump());
      return true;
    }
    if (mode_ == Mode::kMerges) {
      if (depth_ == 1) {
        fail(merge_path(), "expected a string or a pair of strings, found " + v.dump());
        ++merge_index_;
      } else if (depth_ == 2) {
        poison_pair();
      }
      return true;
    }
    place(std::move(v));
    return true;
  }

  json* place(json v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    json* top = stack_.back();
    if (top->is_array()) {
      top->push_back(std::move(v));
      return &top->back();
    }
    json& slot = (*top)[keys_.back()];
    slot = std::move(v);
    return &slot;
  }

  void push(json container) {
    json* p = place(std::move(container));
    stack_.push_back(p);
    keys_.emplace_back();
  }

  // True when the next value is root["model"][name].
  bool at_model_member(const char* name) const {
    return stack_.size() == 2 && stack_[0]->is_object() && keys_[0] == "model" && stack_[1]->is_object() &&
           keys_[1] == name;
  }

  bool vocab_id(int64_t v) {
    if (depth_ != 1) return true;
    if (v < 0) {
      fail(vocab_path(), "expected a non-negative integer id, found " + std::to_string(v));
    } else {
      t_.vocab.emplace_back(std::move(vocab_key_), v);
    }
    return true;
  }

  void poison_pair() {  // a pair member that is not a string
    pair_non_string_ = true;
    pair_.push_back(std::string());
  }

  std::string vocab_path() const { return "$.model.vocab[\"" + vocab_key_ + "\"]"; }
  std::string merge_path() const { return "$.model.merges[" + std::to_string(merge_index_) + "]"; }
  void fail(const std::string& path, const std::string& message) {
    if (!t_.error_path.empty()) return;
    t_.error_path = path;
    t_.error_message = message;
  }

  json& root_;
  ModelTables& t_;
  std::vector<json*> stack_;
  std::vector<std::string> keys_;  // the current key of each open object
  Mode mode_ = Mode::kNone;
  int depth_ = 0;
  std::string vocab_key_;
  size_t merge_index_ = 0;
  std::vector<std::string> pair_;
  bool pair_non_string_ = false;
  std::string error_;
};

}  // namespace

nlohmann::json parse_tokenizer_json(std::string_view text, const std::string& origin, ModelTables& tables) {
  check_json_depth(text, origin);
  json root;
  Handler h(root, tables);
  bool ok = json::sax_parse(text.begin(), text.end(), &h);
  if (!ok) {
    throw Error(ErrorCode::kFormat, origin + ": not valid JSON: " + (h.error().empty() ? "parse error" : h.error()));
  }
  return root;
}

}  // namespace circuitscope::hf
