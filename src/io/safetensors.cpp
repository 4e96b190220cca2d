#include "circuitscope/safetensors.hpp"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>
#include <sstream>

#include "circuitscope/error.hpp"
#include "circuitscope/report.hpp"
#include "circuitscope/json_limits.hpp"

namespace circuitscope {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // safetensors' own limit

struct DTypeRow {
  StDType type;
  const char* name;
  size_t size;
  c10::ScalarType scalar;
};
constexpr DTypeRow kDTypes[] = {
    {StDType::kF64, "F64", 8, c10::kDouble}, {StDType::kF32, "F32", 4, c10::kFloat},
    {StDType::kF16, "F16", 2, c10::kHalf},   {StDType::kBF16, "BF16", 2, c10::kBFloat16},
    {StDType::kI64, "I64", 8, c10::kLong},   {StDType::kI32, "I32", 4, c10::kInt},
    {StDType::kI16, "I16", 2, c10::kShort},  {StDType::kI8, "I8", 1, c10::kChar},
    {StDType::kU8, "U8", 1, c10::kByte},     {StDType::kBool, "BOOL", 1, c10::kBool},
};

const DTypeRow& row_of(StDType t) {
  for (const auto& r : kDTypes)
    if (r.type == t) return r;
  throw Error(ErrorCode::kInternal, "unknown safetensors dtype enum");
}

std::string supported_dtype_list() {
  std::string s;
  for (const auto& r : kDTypes) s += (s.empty() ? "" : ", ") + std::string(r.name);
  return s;
}

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw Error(ErrorCode::kFormat, "safetensors file '" + path + "': " + what);
}

uint64_t fnv1a(const void* data, size_t n, uint64_t h) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}
}  // namespace

const char* st_dtype_name(StDType t) { return row_of(t).name; }
size_t st_dtype_size(StDType t) { return row_of(t).size; }
c10::ScalarType to_scalar_type(StDType t) { return row_of(t).scalar; }
StDType from_scalar_type(c10::ScalarType t) {
  for (const auto& r : kDTypes)
    if (r.scalar == t) return r.type;
  throw Error(ErrorCode::kUnsupported, std::string("cannot store torch dtype ") + c10::toString(t) + " in safetensors");
}

int64_t TensorInfo::numel() const {
  return std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<int64_t>());
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(ErrorCode::kIo, "cannot open '" + path + "': " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw Error(ErrorCode::kIo, "cannot stat '" + path + "': " + std::strerror(errno));
  }
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  f->size_ = static_cast<uint64_t>(st.st_size);
  if (f->size_ < 8) {
    ::close(fd);
    fail(path, "file is " + std::to_string(f->size_) + " bytes; expected at least 8 (the header length)");
  }
  // MAP_PRIVATE: zero-copy reads; nothing is ever written through the mapping.
  void* m = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) throw Error(ErrorCode::kIo, "cannot mmap '" + path + "': " + std::strerror(errno));
  f->map_ = m;
  f->base_ = static_cast<const uint8_t*>(m);
  f->parse();
  return f;
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::from_bytes(std::string bytes, const std::string& name) {
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = name;
  f->owned_ = std::move(bytes);
  f->size_ = f->owned_.size();
  f->base_ = reinterpret_cast<const uint8_t*>(f->owned_.data());
  f->parse();
  return f;
}

void SafetensorsFile::parse() {
  const std::string& path = path_;  // for messages
  if (size_ < 8) fail(path, "file is " + std::to_string(size_) + " bytes; expected at least 8 (the header length)");

  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | base_[i];  // little-endian regardless of host
  if (n > kMaxHeaderBytes) fail(path, "header length " + std::to_string(n) + " exceeds the 100 MiB limit");
  if (8 + n > size_)
    fail(path, "header length " + std::to_string(n) + " runs beyond the end of the file (" +
                   std::to_string(size_) + " bytes); the file is truncated or not safetensors");
  header_.assign(reinterpret_cast<const char*>(base_ + 8), n);
  check_json_depth(header_, "safetensors file '" + path + "': header");
  json h;
  try {
    h = json::parse(header_);
  } catch (const json::exception& e) {
    fail(path, std::string("header is not valid JSON: ") + e.what());
  }
  if (!h.is_object()) fail(path, "header must be a JSON object");
  const uint64_t data_size = size_ - 8 - n;
  const uint8_t* data = base_ + 8 + n;

  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail(path, "__metadata__ must be an object of strings");
      for (auto m2 = v.begin(); m2 != v.end(); ++m2) {
        if (!m2.value().is_string()) fail(path, "__metadata__['" + m2.key() + "'] must be a string");
        metadata_[m2.key()] = m2.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "'";
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      fail(path, where + " must have dtype, shape and data_offsets");
    TensorInfo t;
    t.name = name;
    t.file = path;
    if (!v["dtype"].is_string()) fail(path, where + ": dtype must be a string");
    const std::string ds = v["dtype"].get<std::string>();
    bool found = false;
    for (const auto& r : kDTypes)
      if (ds == r.name) {
        t.dtype = r.type;
        found = true;
      }
    if (!found) fail(path, where + " has dtype '" + ds + "'; expected one of " + supported_dtype_list());
    if (!v["shape"].is_array()) fail(path, where + ": shape must be an array");
    for (const auto& d : v["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0) fail(path, where + ": shape entries must be non-negative integers");
      t.shape.push_back(d.get<int64_t>());
    }
    const json& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      fail(path, where + ": data_offsets must be [begin, end] with non-negative integers");
    t.begin = off[0].get<uint64_t>();
    t.end = off[1].get<uint64_t>();
    if (t.begin > t.end)
      fail(path, where + " has data_offsets [" + std::to_string(t.begin) + "," + std::to_string(t.end) + "]; begin is after end");
    if (t.end > data_size)
      fail(path, where + " has data_offsets [" + std::to_string(t.begin) + "," + std::to_string(t.end) +
                     "] beyond the data buffer of " + std::to_string(data_size) + " bytes");
    // Overflow-safe: numel * size compared against the byte span.
    const uint64_t span = t.end - t.begin;
    uint64_t expect = st_dtype_size(t.dtype);
    for (auto d : t.shape) {
      if (d != 0 && expect > span / static_cast<uint64_t>(d) + 1) {
        expect = UINT64_MAX;
        break;
      }
      expect *= static_cast<uint64_t>(d);
    }
    if (expect != span)
      fail(path, where + " has dtype " + ds + " and shape " + shape_str(t.shape) + " (" +
                     (expect == UINT64_MAX ? std::string("too many") : std::to_string(expect)) +
                     " bytes) but data_offsets span " + std::to_string(span) + " bytes");
    t.data = data + t.begin;
    index_[name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }
  std::vector<const TensorInfo*> by_off;
  for (const auto& t : tensors_)
    if (t.end > t.begin) by_off.push_back(&t);
  std::sort(by_off.begin(), by_off.end(), [](auto a, auto b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_off.size(); ++i)
    if (by_off[i]->begin < by_off[i - 1]->end)
      fail(path, "tensors '" + by_off[i - 1]->name + "' and '" + by_off[i]->name + "' have overlapping data_offsets");
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, size_);
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

TensorStore TensorStore::open_file(const std::string& path) { return from_file(SafetensorsFile::open(path)); }

TensorStore TensorStore::from_file(std::shared_ptr<SafetensorsFile> file) {
  TensorStore s;
  s.source_ = file->path();
  s.files_.push_back(std::move(file));
  for (size_t i = 0; i < s.files_[0]->tensors().size(); ++i) s.where_[s.files_[0]->tensors()[i].name] = {0, i};
  return s;
}

TensorStore TensorStore::open_dir(const std::string& dir) {
  const fs::path d(dir);
  const fs::path single = d / "model.safetensors";
  const fs::path index = d / "model.safetensors.index.json";
  if (fs::exists(single)) {
    TensorStore s = open_file(single.string());
    s.source_ = dir;
    return s;
  }
  if (!fs::exists(index))
    throw Error(ErrorCode::kIo, "no weights in '" + dir + "': expected model.safetensors or model.safetensors.index.json");
  json j;
  {
    std::ifstream in(index, std::ios::binary);
    if (!in) throw Error(ErrorCode::kIo, "cannot read '" + index.string() + "'");
    std::ostringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    check_json_depth(text, "'" + index.string() + "'");
    try {
      j = json::parse(text);
    } catch (const json::exception& e) {
      throw Error(ErrorCode::kFormat, "'" + index.string() + "' is not valid JSON: " + e.what());
    }
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    throw Error(ErrorCode::kFormat, "'" + index.string() + "' has no \"weight_map\" object");
  TensorStore s;
  s.source_ = dir;
  std::map<std::string, size_t> file_idx;
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    if (!it.value().is_string())
      throw Error(ErrorCode::kFormat, "'" + index.string() + "': weight_map['" + it.key() + "'] must be a file name");
    const std::string shard = it.value().get<std::string>();
    if (shard.find('/') != std::string::npos || shard == ".." )
      throw Error(ErrorCode::kFormat, "'" + index.string() + "': shard name '" + shard + "' must be a plain file name");
    if (!file_idx.count(shard)) {
      file_idx[shard] = s.files_.size();
      s.files_.push_back(SafetensorsFile::open((d / shard).string()));
    }
    const size_t fi = file_idx[shard];
    const TensorInfo* t = s.files_[fi]->find(it.key());
    if (!t)
      throw Error(ErrorCode::kFormat, "'" + index.string() + "' maps tensor '" + it.key() + "' to '" + shard +
                                          "', which does not contain it");
    s.where_[it.key()] = {fi, static_cast<size_t>(t - s.files_[fi]->tensors().data())};
  }
  return s;
}

const TensorInfo* TensorStore::find(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) return nullptr;
  return &files_[it->second.first]->tensors()[it->second.second];
}

const TensorInfo& TensorStore::at(const std::string& name) const {
  const TensorInfo* t = find(name);
  if (!t)
    throw Error(ErrorCode::kFormat, "tensor '" + name + "' is missing from '" + source_ + "' (" +
                                        std::to_string(where_.size()) + " tensors in " + std::to_string(files_.size()) +
                                        " file(s))");
  return *t;
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> out;
  for (const auto& kv : where_) out.push_back(kv.first);
  return out;
}

std::string TensorStore::fingerprint() const {
  uint64_t h = 1469598103934665603ull;
  // Sorted by file name so that the fingerprint does not depend on index order.
  std::vector<const SafetensorsFile*> fs_sorted;
  for (const auto& f : files_) fs_sorted.push_back(f.get());
  std::sort(fs_sorted.begin(), fs_sorted.end(), [](auto a, auto b) {
    return fs::path(a->path()).filename() < fs::path(b->path()).filename();
  });
  for (const auto* f : fs_sorted) {
    h = fnv1a(f->header_json().data(), f->header_json().size(), h);
    const uint64_t sz = f->file_size();
    h = fnv1a(&sz, sizeof(sz), h);
    // And 32 evenly spaced 4 KiB blocks of the weights: checkpoints of one training run share their
    // headers and sizes, and training changes every block.
    constexpr uint64_t kBlock = 4096, kBlocks = 32;
    const uint64_t begin = 8 + f->header_json().size();
    if (sz > begin)
      for (uint64_t b = 0; b < kBlocks; ++b) {
        const uint64_t off = begin + (sz - begin) * b / kBlocks;
        h = fnv1a(f->bytes() + off, std::min(kBlock, sz - off), h);
      }
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "fnv1a64:%016llx", static_cast<unsigned long long>(h));
  return buf;
}

at::Tensor TensorStore::load(const std::string& name) const {
  const TensorInfo& t = at(name);
  auto opts = at::TensorOptions().dtype(to_scalar_type(t.dtype));
  if (t.numel() == 0) return at::empty(t.shape, opts);
  // from_blob on the read-only mapping, then clone: the result owns aligned, writable memory.
  return at::from_blob(const_cast<uint8_t*>(t.data), t.shape, opts).clone();
}

at::Tensor TensorStore::load(const std::string& name, c10::ScalarType dtype, c10::Device device) const {
  const TensorInfo& t = at(name);
  auto opts = at::TensorOptions().dtype(to_scalar_type(t.dtype));
  if (t.numel() == 0) return at::empty(t.shape, at::TensorOptions().dtype(dtype).device(device));
  at::Tensor view = at::from_blob(const_cast<uint8_t*>(t.data), t.shape, opts);
  // copy=true guarantees the result never aliases the mapping, even when dtype and device match.
  return view.to(device, dtype, /*non_blocking=*/false, /*copy=*/true);
}

SafetensorsWriter::SafetensorsWriter(std::string path, std::vector<TensorSpec> specs,
                                     const std::map<std::string, std::string>& metadata)
    : path_(std::move(path)), specs_(std::move(specs)) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> seen;
  for (const auto& t : specs_) {
    if (t.name.empty() || t.name == "__metadata__")
      throw Error(ErrorCode::kInternal, "tensor name '" + t.name + "' cannot be written to " + path_);
    if (!seen.insert(t.name).second)
      throw Error(ErrorCode::kInternal, "duplicate tensor name '" + t.name + "' when writing " + path_);
    uint64_t n = st_dtype_size(t.dtype);
    for (int64_t d : t.shape) {
      if (d < 0) throw Error(ErrorCode::kInternal, "tensor '" + t.name + "' has a negative dimension");
      n *= static_cast<uint64_t>(d);
    }
    header[t.name] = {{"dtype", st_dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {data_bytes_, data_bytes_ + n}}};
    data_bytes_ += n;
  }
  std::string hs = header.dump();
  while ((8 + hs.size()) % 8 != 0) hs.push_back(' ');  // keep the data buffer 8-byte aligned
  out_ = std::make_unique<AtomicFileWriter>(path_);
  uint8_t len[8];
  const uint64_t n = hs.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  out_->stream().write(reinterpret_cast<const char*>(len), 8);
  out_->stream().write(hs.data(), static_cast<std::streamsize>(hs.size()));
}

SafetensorsWriter::~SafetensorsWriter() = default;

void SafetensorsWriter::write(const at::Tensor& t) {
  if (next_ >= specs_.size())
    throw Error(ErrorCode::kInternal, "all " + std::to_string(specs_.size()) + " tensors of " + path_ + " are already written");
  const TensorSpec& s = specs_[next_];
  at::Tensor c = t.detach().to(c10::kCPU).contiguous();
  if (c.sizes().vec() != s.shape || from_scalar_type(c.scalar_type()) != s.dtype)
    throw Error(ErrorCode::kInternal, "tensor '" + s.name + "' for " + path_ + " is " + st_dtype_name(from_scalar_type(c.scalar_type())) +
                                          " " + shape_str(c.sizes().vec()) + "; expected " + st_dtype_name(s.dtype) + " " + shape_str(s.shape));
  out_->stream().write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.nbytes()));
  if (!out_->stream()) throw Error(ErrorCode::kIo, "write of tensor '" + s.name + "' to " + path_ + " failed");
  ++next_;
}

void SafetensorsWriter::commit() {
  if (next_ != specs_.size())
    throw Error(ErrorCode::kInternal, path_ + ": " + std::to_string(next_) + " of " + std::to_string(specs_.size()) +
                                          " tensors written before commit");
  out_->commit();
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<TensorSpec> specs;
  specs.reserve(tensors.size());
  for (const auto& [name, t] : tensors) specs.push_back({name, from_scalar_type(t.scalar_type()), t.sizes().vec()});
  SafetensorsWriter w(path, std::move(specs), metadata);
  for (const auto& [name, t] : tensors) w.write(t);
  w.commit();
}

}  // namespace circuitscope
