/* C ABI of libcircuitscope_spm.so, the module that wraps libsentencepiece.
 *
 * Why a module: Debian's libsentencepiece embeds (and exports) protobuf-lite 3.14 while libtorch
 * uses the system libprotobuf 3.21; linked into one executable the two clash and the process
 * crashes in static initialisation. The host dlopen()s this module with RTLD_LOCAL|RTLD_DEEPBIND
 * so each side binds to its own protobuf.
 *
 * Rules of the ABI (so it also holds if the module is ever loaded with dlmopen into its own link
 * namespace, with its own heap): only C types cross it; every buffer the module returns is freed by
 * the module's own cs_spm_free_* function; no C++ exception crosses it.
 *
 * Status: functions returning int return 0 on success, non-zero on failure; on failure *err (when
 * err is not NULL) receives a NUL-terminated message owned by the module (free with cs_spm_free). */
#ifndef CIRCUITSCOPE_SPM_MODULE_API_H_
#define CIRCUITSCOPE_SPM_MODULE_API_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on every incompatible change; the host refuses a module with another version. */
#define CS_SPM_ABI_VERSION 1

typedef struct CsSpmModel CsSpmModel;

/* The result of one encode. All arrays have `size` entries. */
typedef struct CsSpmEncoding {
  size_t size;
  int32_t* ids;
  uint32_t* begin; /* byte offsets of each piece's surface into the input */
  uint32_t* end;
} CsSpmEncoding;

int cs_spm_abi_version(void);

/* Loading. On success *model receives a handle to free with cs_spm_model_free. */
int cs_spm_load_file(const char* path, CsSpmModel** model, char** err);
int cs_spm_load_bytes(const char* data, size_t size, CsSpmModel** model, char** err);
void cs_spm_model_free(CsSpmModel* model);

/* Vocabulary. id_to_piece returns a pointer owned by the model (valid while it lives), NULL when
 * the id is out of range; *size receives the piece's length in bytes. piece_to_id returns -1 when
 * the piece is not in the vocabulary (sentencepiece itself would answer unk_id). */
int32_t cs_spm_vocab_size(const CsSpmModel* model);
const char* cs_spm_id_to_piece(const CsSpmModel* model, int32_t id, size_t* size);
int32_t cs_spm_piece_to_id(const CsSpmModel* model, const char* piece, size_t size);
int cs_spm_is_control(const CsSpmModel* model, int32_t id);
int cs_spm_is_unknown(const CsSpmModel* model, int32_t id);
int cs_spm_is_byte(const CsSpmModel* model, int32_t id);
int cs_spm_is_unused(const CsSpmModel* model, int32_t id);
/* -1 when the model defines no such token. */
int32_t cs_spm_unk_id(const CsSpmModel* model);
int32_t cs_spm_bos_id(const CsSpmModel* model);
int32_t cs_spm_eos_id(const CsSpmModel* model);
int32_t cs_spm_pad_id(const CsSpmModel* model);

/* Encodes `text` (no BOS/EOS). *out is filled; release with cs_spm_encoding_free. */
int cs_spm_encode(const CsSpmModel* model, const char* text, size_t size, CsSpmEncoding* out, char** err);
void cs_spm_encoding_free(CsSpmEncoding* enc);

/* Decodes ids. keep_control != 0 writes each control token's piece text where it stands; otherwise
 * control tokens decode to nothing (sentencepiece's own behaviour). *out is NUL-terminated, *out_size
 * its length; free with cs_spm_free. */
int cs_spm_decode(const CsSpmModel* model, const int32_t* ids, size_t n, int keep_control, char** out,
                  size_t* out_size, char** err);

/* The text as the segmenter sees it after the model's normalizer (whitespace escaped to U+2581 and
 * the dummy prefix added when the model says so). Free *out with cs_spm_free. */
int cs_spm_normalize(const CsSpmModel* model, const char* text, size_t size, char** out, size_t* out_size,
                     char** err);

void cs_spm_free(char* p);

#ifdef __cplusplus
}
#endif

#endif /* CIRCUITSCOPE_SPM_MODULE_API_H_ */
