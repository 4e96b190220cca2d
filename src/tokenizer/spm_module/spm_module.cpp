// libcircuitscope_spm.so: a thin C wrapper over libsentencepiece (see spm_module_api.h for why it
// is a separately loaded module). Built with hidden visibility; only the cs_spm_* functions are
// exported. Nothing here may throw across the C boundary.
#include "spm_module_api.h"

#include <sentencepiece_processor.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <vector>

#define CS_SPM_EXPORT extern "C" __attribute__((visibility("default")))

struct CsSpmModel {
  sentencepiece::SentencePieceProcessor sp;
  int32_t vocab_size = 0;
};

namespace {

// Copies `s` into a malloc'd NUL-terminated buffer (NULL if out of memory).
char* dup_string(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (p == nullptr) return nullptr;
  std::memcpy(p, s.data(), s.size());
  p[s.size()] = '\0';
  return p;
}

int fail(char** err, const std::string& message) {
  if (err != nullptr) *err = dup_string(message);
  return 1;
}

int fail_exception(char** err) {
  try {
    throw;
  } catch (const std::exception& e) {
    return fail(err, std::string("sentencepiece module: ") + e.what());
  } catch (...) {
    return fail(err, "sentencepiece module: unknown exception");
  }
}

bool in_range(const CsSpmModel* m, int32_t id) { return m != nullptr && id >= 0 && id < m->vocab_size; }

int finish_load(CsSpmModel* m, const sentencepiece::util::Status& status, CsSpmModel** model, char** err) {
  if (!status.ok()) {
    std::string message = status.ToString();
    delete m;
    return fail(err, message);
  }
  m->vocab_size = m->sp.GetPieceSize();
  *model = m;
  return 0;
}

// "<0x4F>" -> 0x4F; -1 if `piece` is not a byte piece spelling.
int byte_piece_value(const std::string& piece) {
  if (piece.size() != 6 || piece.compare(0, 3, "<0x") != 0 || piece[5] != '>') return -1;
  char* end = nullptr;
  const std::string hex = piece.substr(3, 2);
  const long v = std::strtol(hex.c_str(), &end, 16);
  if (end != hex.c_str() + 2) return -1;
  return static_cast<int>(v);
}

}  // namespace

CS_SPM_EXPORT int cs_spm_abi_version(void) { return CS_SPM_ABI_VERSION; }

CS_SPM_EXPORT int cs_spm_load_file(const char* path, CsSpmModel** model, char** err) {
  if (path == nullptr || model == nullptr) return fail(err, "cs_spm_load_file: null argument");
  *model = nullptr;
  try {
    auto* m = new CsSpmModel();
    return finish_load(m, m->sp.Load(path), model, err);
  } catch (...) {
    return fail_exception(err);
  }
}

CS_SPM_EXPORT int cs_spm_load_bytes(const char* data, size_t size, CsSpmModel** model, char** err) {
  if ((data == nullptr && size != 0) || model == nullptr) return fail(err, "cs_spm_load_bytes: null argument");
  *model = nullptr;
  try {
    auto* m = new CsSpmModel();
    return finish_load(m, m->sp.LoadFromSerializedProto(absl::string_view(data, size)), model, err);
  } catch (...) {
    return fail_exception(err);
  }
}

CS_SPM_EXPORT void cs_spm_model_free(CsSpmModel* model) { delete model; }

CS_SPM_EXPORT int32_t cs_spm_vocab_size(const CsSpmModel* model) { return model ? model->vocab_size : 0; }

CS_SPM_EXPORT const char* cs_spm_id_to_piece(const CsSpmModel* model, int32_t id, size_t* size) {
  if (!in_range(model, id)) return nullptr;
  // IdToPiece returns a reference into the model proto, alive as long as the model.
  const std::string& piece = model->sp.IdToPiece(id);
  if (size != nullptr) *size = piece.size();
  return piece.c_str();
}

CS_SPM_EXPORT int32_t cs_spm_piece_to_id(const CsSpmModel* model, const char* piece, size_t size) {
  if (model == nullptr || (piece == nullptr && size != 0)) return -1;
  try {
    const absl::string_view p(piece, size);
    const int id = model->sp.PieceToId(p);
    // sentencepiece maps any piece it does not know to unk_id; tell that apart from "<unk>" itself.
    if (id < 0 || id >= model->vocab_size) return -1;
    if (model->sp.IsUnknown(id) && model->sp.IdToPiece(id) != p) return -1;
    return id;
  } catch (...) {
    return -1;
  }
}

CS_SPM_EXPORT int cs_spm_is_control(const CsSpmModel* model, int32_t id) {
  return in_range(model, id) && model->sp.IsControl(id) ? 1 : 0;
}
CS_SPM_EXPORT int cs_spm_is_unknown(const CsSpmModel* model, int32_t id) {
  return in_range(model, id) && model->sp.IsUnknown(id) ? 1 : 0;
}
CS_SPM_EXPORT int cs_spm_is_byte(const CsSpmModel* model, int32_t id) {
  return in_range(model, id) && model->sp.IsByte(id) ? 1 : 0;
}
CS_SPM_EXPORT int cs_spm_is_unused(const CsSpmModel* model, int32_t id) {
  return in_range(model, id) && model->sp.IsUnused(id) ? 1 : 0;
}
CS_SPM_EXPORT int32_t cs_spm_unk_id(const CsSpmModel* model) { return model ? model->sp.unk_id() : -1; }
CS_SPM_EXPORT int32_t cs_spm_bos_id(const CsSpmModel* model) { return model ? model->sp.bos_id() : -1; }
CS_SPM_EXPORT int32_t cs_spm_eos_id(const CsSpmModel* model) { return model ? model->sp.eos_id() : -1; }
CS_SPM_EXPORT int32_t cs_spm_pad_id(const CsSpmModel* model) { return model ? model->sp.pad_id() : -1; }

CS_SPM_EXPORT void cs_spm_encoding_free(CsSpmEncoding* enc) {
  if (enc == nullptr) return;
  std::free(enc->ids);
  std::free(enc->begin);
  std::free(enc->end);
  enc->ids = nullptr;
  enc->begin = nullptr;
  enc->end = nullptr;
  enc->size = 0;
}

CS_SPM_EXPORT int cs_spm_encode(const CsSpmModel* model, const char* text, size_t size, CsSpmEncoding* out,
                                char** err) {
  if (model == nullptr || out == nullptr || (text == nullptr && size != 0))
    return fail(err, "cs_spm_encode: null argument");
  *out = CsSpmEncoding{0, nullptr, nullptr, nullptr};
  try {
    sentencepiece::ImmutableSentencePieceText spt;
    const auto status = model->sp.Encode(absl::string_view(text, size), spt.mutable_proto());
    if (!status.ok()) return fail(err, status.ToString());
    const size_t n = spt.pieces_size();
    const size_t alloc = n == 0 ? 1 : n;  // malloc(0) may return NULL
    out->ids = static_cast<int32_t*>(std::malloc(alloc * sizeof(int32_t)));
    out->begin = static_cast<uint32_t*>(std::malloc(alloc * sizeof(uint32_t)));
    out->end = static_cast<uint32_t*>(std::malloc(alloc * sizeof(uint32_t)));
    if (!out->ids || !out->begin || !out->end) {
      cs_spm_encoding_free(out);
      return fail(err, "cs_spm_encode: out of memory");
    }
    for (size_t i = 0; i < n; ++i) {
      const auto piece = spt.pieces(static_cast<int>(i));
      out->ids[i] = static_cast<int32_t>(piece.id());
      out->begin[i] = piece.begin();
      out->end[i] = piece.end();
    }
    out->size = n;
    return 0;
  } catch (...) {
    cs_spm_encoding_free(out);
    return fail_exception(err);
  }
}

CS_SPM_EXPORT int cs_spm_decode(const CsSpmModel* model, const int32_t* ids, size_t n, int keep_control, char** out,
                                size_t* out_size, char** err) {
  if (model == nullptr || out == nullptr || (ids == nullptr && n != 0))
    return fail(err, "cs_spm_decode: null argument");
  *out = nullptr;
  try {
    std::vector<int> v(n);
    for (size_t i = 0; i < n; ++i) {
      if (!in_range(model, ids[i]))
        return fail(err, "id " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
                             " is outside the vocabulary [0," + std::to_string(model->vocab_size) + ")");
      v[i] = ids[i];
    }
    sentencepiece::ImmutableSentencePieceText spt;
    const auto status = model->sp.Decode(v, spt.mutable_proto());
    if (!status.ok()) return fail(err, status.ToString());
    std::string text;
    if (keep_control == 0) {
      text = spt.text();
    } else {
      // sentencepiece gives control pieces an empty surface; the concatenated surfaces are its
      // decoded text, so splicing the control pieces in keeps everything else unchanged.
      for (size_t i = 0; i < spt.pieces_size(); ++i) {
        const auto piece = spt.pieces(static_cast<int>(i));
        if (model->sp.IsControl(static_cast<int>(piece.id())))
          text += piece.piece();
        else
          text += piece.surface();
      }
    }
    *out = dup_string(text);
    if (*out == nullptr) return fail(err, "cs_spm_decode: out of memory");
    if (out_size != nullptr) *out_size = text.size();
    return 0;
  } catch (...) {
    return fail_exception(err);
  }
}

CS_SPM_EXPORT int cs_spm_normalize(const CsSpmModel* model, const char* text, size_t size, char** out,
                                   size_t* out_size, char** err) {
  if (model == nullptr || out == nullptr || (text == nullptr && size != 0))
    return fail(err, "cs_spm_normalize: null argument");
  *out = nullptr;
  try {
    // sentencepiece 0.1.97 has no public Normalize(); the encoded pieces partition the normalized
    // text exactly (each piece's `piece` field is its slice of it, also for unknown pieces), except
    // that byte-fallback pieces spell their slice as one "<0xXX>" piece per byte.
    sentencepiece::ImmutableSentencePieceText spt;
    const auto status = model->sp.Encode(absl::string_view(text, size), spt.mutable_proto());
    if (!status.ok()) return fail(err, status.ToString());
    std::string normalized;
    for (size_t i = 0; i < spt.pieces_size(); ++i) {
      const auto piece = spt.pieces(static_cast<int>(i));
      const int id = static_cast<int>(piece.id());
      if (model->sp.IsControl(id)) continue;
      if (model->sp.IsByte(id)) {
        const int b = byte_piece_value(piece.piece());
        if (b < 0) return fail(err, "cs_spm_normalize: byte piece with unexpected spelling '" + piece.piece() + "'");
        normalized.push_back(static_cast<char>(b));
      } else {
        normalized += piece.piece();
      }
    }
    *out = dup_string(normalized);
    if (*out == nullptr) return fail(err, "cs_spm_normalize: out of memory");
    if (out_size != nullptr) *out_size = normalized.size();
    return 0;
  } catch (...) {
    return fail_exception(err);
  }
}

CS_SPM_EXPORT void cs_spm_free(char* p) { std::free(p); }
