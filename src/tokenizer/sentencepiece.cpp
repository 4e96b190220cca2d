// SentencePiece tokenizer (tokenizer.model) through libcircuitscope_spm.so.
//
// Debian's libsentencepiece embeds and exports protobuf-lite 3.14, which clashes with the system
// libprotobuf 3.21 that libtorch uses (the process segfaults in static initialisation when both are
// linked in). libsentencepiece is therefore linked only into a separate module that is dlopen()ed
// here with RTLD_LOCAL|RTLD_DEEPBIND: RTLD_LOCAL keeps its protobuf out of the global scope (so
// libtorch's libprotobuf never binds to it), RTLD_DEEPBIND makes the module and libsentencepiece
// resolve their own protobuf symbols before the global scope (so they never bind to libprotobuf 3.21).
//
// Module lookup, first match wins:
//   1. $CIRCUITSCOPE_SPM_MODULE (a file, or a folder holding libcircuitscope_spm.so). When set it is
//      the only place looked at: an explicit choice should not silently fall back to another build.
//   2. the folder of the running executable (/proc/self/exe);
//   3. CIRCUITSCOPE_SPM_MODULE_DIR, the CMake binary folder the module was built into.
#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "circuitscope/error.hpp"
#include "circuitscope/tokenizer.hpp"
#include "tokenizer/spm_module/spm_module_api.h"

namespace circuitscope {
namespace {

constexpr const char* kModuleFileName = "libcircuitscope_spm.so";
constexpr const char* kModuleEnvVar = "CIRCUITSCOPE_SPM_MODULE";

// Function table of one loaded module.
struct SpmApi {
  std::string path;
  decltype(&cs_spm_abi_version) abi_version = nullptr;
  decltype(&cs_spm_load_file) load_file = nullptr;
  decltype(&cs_spm_load_bytes) load_bytes = nullptr;
  decltype(&cs_spm_model_free) model_free = nullptr;
  decltype(&cs_spm_vocab_size) vocab_size = nullptr;
  decltype(&cs_spm_id_to_piece) id_to_piece = nullptr;
  decltype(&cs_spm_piece_to_id) piece_to_id = nullptr;
  decltype(&cs_spm_is_control) is_control = nullptr;
  decltype(&cs_spm_is_unknown) is_unknown = nullptr;
  decltype(&cs_spm_bos_id) bos_id = nullptr;
  decltype(&cs_spm_eos_id) eos_id = nullptr;
  decltype(&cs_spm_unk_id) unk_id = nullptr;
  decltype(&cs_spm_encode) encode = nullptr;
  decltype(&cs_spm_encoding_free) encoding_free = nullptr;
  decltype(&cs_spm_decode) decode = nullptr;
  decltype(&cs_spm_normalize) normalize = nullptr;
  decltype(&cs_spm_free) free_string = nullptr;
};

bool is_regular_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string executable_dir() {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return {};
  std::string exe(buf, static_cast<size_t>(n));
  const size_t slash = exe.rfind('/');
  return slash == std::string::npos ? std::string() : exe.substr(0, slash);
}

std::vector<std::string> module_candidates() {
  if (const char* env = std::getenv(kModuleEnvVar); env != nullptr && *env != '\0') {
    std::string p(env);
    if (is_directory(p)) p += std::string("/") + kModuleFileName;
    return {p};
  }
  std::vector<std::string> out;
  if (std::string dir = executable_dir(); !dir.empty()) out.push_back(dir + "/" + kModuleFileName);
#ifdef CIRCUITSCOPE_SPM_MODULE_DIR
  const std::string build_path = std::string(CIRCUITSCOPE_SPM_MODULE_DIR) + "/" + kModuleFileName;
  if (out.empty() || out.front() != build_path) out.push_back(build_path);
#endif
  return out;
}

template <typename Fn>
void resolve(void* handle, const std::string& path, const char* name, Fn& fn) {
  fn = reinterpret_cast<Fn>(::dlsym(handle, name));
  if (fn == nullptr)
    throw Error(ErrorCode::kInternal,
                "SentencePiece module '" + path + "' lacks the symbol '" + name + "' (stale build?)");
}

std::unique_ptr<SpmApi> open_module(const std::string& path) {
  // The module is never dlclose()d: tokenizers may outlive any owner we could give it, and
  // unloading protobuf-carrying libraries at exit is a known source of crashes.
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
  if (handle == nullptr) {
    const char* why = ::dlerror();
    throw Error(ErrorCode::kIo, "cannot load the SentencePiece module '" + path + "': " + (why ? why : "dlopen failed"));
  }
  auto api = std::make_unique<SpmApi>();
  api->path = path;
  resolve(handle, path, "cs_spm_abi_version", api->abi_version);
  const int version = api->abi_version();
  if (version != CS_SPM_ABI_VERSION)
    throw Error(ErrorCode::kInternal, "SentencePiece module '" + path + "' has ABI version " + std::to_string(version) +
                                          ", expected " + std::to_string(CS_SPM_ABI_VERSION) + " (stale build?)");
  resolve(handle, path, "cs_spm_load_file", api->load_file);
  resolve(handle, path, "cs_spm_load_bytes", api->load_bytes);
  resolve(handle, path, "cs_spm_model_free", api->model_free);
  resolve(handle, path, "cs_spm_vocab_size", api->vocab_size);
  resolve(handle, path, "cs_spm_id_to_piece", api->id_to_piece);
  resolve(handle, path, "cs_spm_piece_to_id", api->piece_to_id);
  resolve(handle, path, "cs_spm_is_control", api->is_control);
  resolve(handle, path, "cs_spm_is_unknown", api->is_unknown);
  resolve(handle, path, "cs_spm_bos_id", api->bos_id);
  resolve(handle, path, "cs_spm_eos_id", api->eos_id);
  resolve(handle, path, "cs_spm_unk_id", api->unk_id);
  resolve(handle, path, "cs_spm_encode", api->encode);
  resolve(handle, path, "cs_spm_encoding_free", api->encoding_free);
  resolve(handle, path, "cs_spm_decode", api->decode);
  resolve(handle, path, "cs_spm_normalize", api->normalize);
  resolve(handle, path, "cs_spm_free", api->free_string);
  spdlog::debug("loaded SentencePiece module {}", path);
  return api;
}

// The module for the current lookup rules. Loaded modules are kept for the life of the process
// (keyed by path, as the environment variable may name another one later).
const SpmApi& spm_api() {
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<SpmApi>> loaded;
  const std::vector<std::string> candidates = module_candidates();
  std::lock_guard<std::mutex> lock(mutex);
  for (const auto& path : candidates) {
    if (auto it = loaded.find(path); it != loaded.end()) return *it->second;
    if (!is_regular_file(path)) continue;
    auto api = open_module(path);
    return *loaded.emplace(path, std::move(api)).first->second;
  }
  std::string looked;
  for (const auto& path : candidates) looked += (looked.empty() ? "" : ", ") + std::string("'") + path + "'";
  const char* env = std::getenv(kModuleEnvVar);
  throw Error(ErrorCode::kIo, std::string("SentencePiece module ") + kModuleFileName + " not found; looked at " + looked +
                                  (env && *env ? std::string(" (from $") + kModuleEnvVar + ")"
                                               : std::string(" (set $") + kModuleEnvVar + " to its path)"));
}

// Owns a message the module allocated.
struct ModuleString {
  const SpmApi* api;
  char* p = nullptr;
  ~ModuleString() {
    if (p != nullptr) api->free_string(p);
  }
  std::string str() const { return p ? std::string(p) : std::string(); }
};

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(const SpmApi& api, CsSpmModel* model, std::string path)
      : api_(&api), model_(model), path_(std::move(path)) {
    vocab_size_ = api_->vocab_size(model_);
    bos_id_ = api_->bos_id(model_);
  }
  ~SentencePieceTokenizer() override { api_->model_free(model_); }
  SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;
  SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;

  // add_special_tokens prepends BOS when the model defines one (bos_id >= 0) and never appends EOS:
  // a .model file does not record a policy, and this is what Llama/Mistral's LlamaTokenizer does by
  // default (add_bos_token=True, add_eos_token=False). BOS gets the empty offset range (0,0).
  Encoding encode(std::string_view text, bool add_special_tokens) const override {
    if (text.size() > UINT32_MAX)
      throw Error(ErrorCode::kInput, "text of " + std::to_string(text.size()) +
                                         " bytes is too long for SentencePiece (32-bit offsets)");
    CsSpmEncoding raw{0, nullptr, nullptr, nullptr};
    ModuleString err{api_};
    if (api_->encode(model_, text.data(), text.size(), &raw, &err.p) != 0)
      throw Error(ErrorCode::kInput, "SentencePiece (" + path_ + ") failed to encode: " + err.str());
    struct Guard {
      const SpmApi* api;
      CsSpmEncoding* enc;
      ~Guard() { api->encoding_free(enc); }
    } guard{api_, &raw};

    Encoding out;
    const bool bos = add_special_tokens && bos_id_ >= 0;
    const size_t n = raw.size + (bos ? 1 : 0);
    out.ids.reserve(n);
    out.tokens.reserve(n);
    out.offsets.reserve(n);
    if (bos) {
      out.ids.push_back(bos_id_);
      out.tokens.push_back(id_to_token(bos_id_));
      out.offsets.emplace_back(0, 0);
    }
    for (size_t i = 0; i < raw.size; ++i) {
      out.ids.push_back(raw.ids[i]);
      out.tokens.push_back(id_to_token(raw.ids[i]));
      out.offsets.emplace_back(raw.begin[i], raw.end[i]);
    }
    return out;
  }

  // skip_special_tokens drops control tokens (what sentencepiece itself does); otherwise each control
  // token's piece text (e.g. "<s>") is written where it stands. Unknown ids decode to sentencepiece's
  // " \u2047 " and byte-fallback pieces are merged back into UTF-8, as sentencepiece does.
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const override {
    std::vector<int32_t> ids32(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] < 0 || ids[i] >= vocab_size_)
        throw Error(ErrorCode::kInput, "token id " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
                                           " is outside the vocabulary [0," + std::to_string(vocab_size_) +
                                           ") of " + path_);
      ids32[i] = static_cast<int32_t>(ids[i]);
    }
    ModuleString out{api_};
    ModuleString err{api_};
    size_t size = 0;
    if (api_->decode(model_, ids32.data(), ids32.size(), skip_special_tokens ? 0 : 1, &out.p, &size, &err.p) != 0)
      throw Error(ErrorCode::kInput, "SentencePiece (" + path_ + ") failed to decode: " + err.str());
    return std::string(out.p, size);
  }

  int64_t vocab_size() const override { return vocab_size_; }

  std::optional<int64_t> token_to_id(std::string_view token) const override {
    const int32_t id = api_->piece_to_id(model_, token.data(), token.size());
    if (id < 0) return std::nullopt;
    return id;
  }

  std::string id_to_token(int64_t id) const override {
    size_t size = 0;
    const char* p = (id >= 0 && id < vocab_size_) ? api_->id_to_piece(model_, static_cast<int32_t>(id), &size) : nullptr;
    if (p == nullptr)
      throw Error(ErrorCode::kInput, "token id " + std::to_string(id) + " is outside the vocabulary [0," +
                                         std::to_string(vocab_size_) + ") of " + path_);
    return std::string(p, size);
  }

  // Control tokens (<s>, </s>, and any --control_symbols); false for ids outside the vocabulary.
  bool is_special(int64_t id) const override {
    return id >= 0 && id < vocab_size_ && api_->is_control(model_, static_cast<int32_t>(id)) != 0;
  }

  // sentencepiece's own normalizer output as its segmenter sees it: NFKC-style rules of the model,
  // extra whitespace removed, spaces escaped to U+2581 and the dummy-prefix U+2581 added when the
  // model asks for it (as `spm_normalize --use_internal_normalization` prints).
  std::string normalize(std::string_view text) const override {
    ModuleString out{api_};
    ModuleString err{api_};
    size_t size = 0;
    if (api_->normalize(model_, text.data(), text.size(), &out.p, &size, &err.p) != 0)
      throw Error(ErrorCode::kInput, "SentencePiece (" + path_ + ") failed to normalize: " + err.str());
    return std::string(out.p, size);
  }

 private:
  const SpmApi* api_;
  CsSpmModel* model_;
  std::string path_;
  int64_t vocab_size_ = 0;
  int32_t bos_id_ = -1;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& model_path) {
  // Read the file here so that "cannot read" (kIo) and "not a sentencepiece model" (kFormat) differ.
  std::ifstream in(model_path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kIo, "cannot open SentencePiece model '" + model_path + "': " + std::strerror(errno));
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) throw Error(ErrorCode::kIo, "cannot read SentencePiece model '" + model_path + "'");
  const std::string bytes = buf.str();

  const SpmApi& api = spm_api();
  CsSpmModel* model = nullptr;
  ModuleString err{&api};
  if (api.load_bytes(bytes.data(), bytes.size(), &model, &err.p) != 0)
    throw Error(ErrorCode::kFormat, "'" + model_path + "' is not a valid SentencePiece model: " + err.str());
  if (api.vocab_size(model) <= 0) {
    api.model_free(model);
    throw Error(ErrorCode::kFormat, "SentencePiece model '" + model_path + "' has an empty vocabulary");
  }
  try {
    return std::make_unique<SentencePieceTokenizer>(api, model, model_path);
  } catch (...) {
    api.model_free(model);
    throw;
  }
}

}  // namespace circuitscope
