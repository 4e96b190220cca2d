// Safetensors reading (mmap, validated header) and writing.
// Format: 8-byte little-endian header length N, N bytes of JSON header, then the data buffer.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace circuitscope {

enum class StDType { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };

const char* st_dtype_name(StDType t);
size_t st_dtype_size(StDType t);

struct TensorInfo {
  std::string name;
  StDType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // offsets relative to the data buffer
  uint64_t end = 0;
  const uint8_t* data = nullptr;  // points into the mapping
  std::string file;               // which file holds it, for messages
  int64_t numel() const;
};

// One mmapped .safetensors file. Construction validates the whole header: length, JSON, dtypes,
// shapes against byte sizes, offsets inside the buffer and not overlapping.
class SafetensorsFile {
 public:
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  // The same validation on a file's content held in memory (the fuzz target; files not on disk).
  // `name` stands for the path in messages and in path(); the object owns `bytes`.
  static std::shared_ptr<SafetensorsFile> from_bytes(std::string bytes, const std::string& name);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  uint64_t file_size() const { return size_; }
  const std::string& header_json() const { return header_; }
  const uint8_t* bytes() const { return base_; }  // the whole file (mapped, or held by from_bytes)

 private:
  SafetensorsFile() = default;
  // Validates the header of the size_ bytes at base_ and fills the tensor table (open and from_bytes).
  void parse();
  std::string path_;
  void* map_ = nullptr;   // the mapping (open); nullptr for from_bytes
  std::string owned_;     // the content (from_bytes)
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  std::string header_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// All weights of a checkpoint directory: model.safetensors, or the shards listed in
// model.safetensors.index.json.
class TensorStore {
 public:
  static TensorStore open_dir(const std::string& dir);
  static TensorStore open_file(const std::string& path);
  // One file already open (e.g. SafetensorsFile::from_bytes); source() is its path().
  static TensorStore from_file(std::shared_ptr<SafetensorsFile> file);

  const TensorInfo* find(const std::string& name) const;
  const TensorInfo& at(const std::string& name) const;  // throws naming the tensor and folder
  std::vector<std::string> names() const;
  size_t num_files() const { return files_.size(); }
  const std::string& source() const { return source_; }
  // Stable identity of the checkpoint: FNV-1a over each shard's header and size.
  std::string fingerprint() const;

  // Copies the tensor into a fresh at::Tensor of the given dtype on the given device.
  at::Tensor load(const std::string& name, c10::ScalarType dtype, c10::Device device = c10::kCPU) const;
  at::Tensor load(const std::string& name) const;  // stored dtype, CPU

 private:
  std::string source_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, std::pair<size_t, size_t>> where_;  // name -> (file, tensor index)
};

c10::ScalarType to_scalar_type(StDType t);
StDType from_scalar_type(c10::ScalarType t);

class AtomicFileWriter;

// One tensor of a file to be written: the header is built from these before any data is.
struct TensorSpec {
  std::string name;
  StDType dtype;
  std::vector<int64_t> shape;
};

// Streams one .safetensors file, one tensor at a time in the order of `specs` (a checkpoint larger
// than memory is written holding one tensor). The file appears at `path` only on commit(), complete
// and flushed to disk; a writer destroyed before that (an exception) removes its temporary file.
class SafetensorsWriter {
 public:
  SafetensorsWriter(std::string path, std::vector<TensorSpec> specs,
                    const std::map<std::string, std::string>& metadata = {});
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;
  // The next tensor (any device): its shape and dtype must be those of its spec.
  void write(const at::Tensor& t);
  // Error(kInternal) unless every tensor has been written.
  void commit();
  uint64_t data_bytes() const { return data_bytes_; }

 private:
  std::string path_;
  std::vector<TensorSpec> specs_;
  size_t next_ = 0;
  uint64_t data_bytes_ = 0;
  std::unique_ptr<AtomicFileWriter> out_;
};

// Writes tensors (any device/dtype among the supported ones) atomically: temp file, then rename.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace circuitscope
