#include "tapegrad/nn/serialize.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/detail/atomic_file.hpp"
#include "tapegrad/autograd/grad_mode.hpp"

namespace tg::nn {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian; this host is not");

namespace {

constexpr std::string_view kMetadataKey = "__metadata__";
// The reference implementation refuses larger headers; so do we, before allocating anything.
constexpr std::uint64_t kMaxHeaderSize = 100'000'000;

std::string_view safetensors_dtype(Dtype d) {
  switch (d) {
    case Dtype::float32:
      return "F32";
    case Dtype::float64:
      return "F64";
    case Dtype::int64:
      return "I64";
  }
  return "?";
}

// Writes header + tensors whole or not at all (autograd/detail/atomic_file.hpp).
void write_atomic(const std::string& path, const std::string& header, const NamedTensors& tensors) {
  tg::detail::AtomicFile file(path, "save");
  file.write(header.data(), header.size());
  for (const auto& [name, t] : tensors) file.write(t.data_ptr(), t.numel() * dtype_size(t.dtype()));
  file.commit();
}

// Each tensor's data has a CRC-32 in the metadata under this prefix and its name: safetensors
// keeps no checksum of its own, and a flipped bit in a weight would load without a word. Other
// readers ignore metadata they do not know.
constexpr std::string_view kCrcPrefix = "tapegrad.crc32.";
// And the whole metadata (a checkpoint's epoch and generator state, and those checksums) one of
// its own, so that a changed value or a damaged checksum key is refused too.
constexpr std::string_view kMetadataCrcKey = "tapegrad.metadata_crc32";

std::string crc32_hex(const void* data, std::size_t size) {
  uLong crc = crc32(0L, Z_NULL, 0);
  const auto* p = static_cast<const Bytef*>(data);
  while (size > 0) {
    const auto chunk = static_cast<uInt>(std::min<std::size_t>(size, 1u << 30));
    crc = crc32(crc, p, chunk);
    p += chunk;
    size -= chunk;
  }
  return fmt::format("{:08x}", static_cast<std::uint32_t>(crc));
}

// The CRC-32 of every metadata entry but its own, as "key\0value\0" in key order.
std::string metadata_crc(const Metadata& metadata) {
  std::string text;
  for (const auto& [key, value] : metadata)
    if (key != kMetadataCrcKey) text += key + '\0' + value + '\0';
  return crc32_hex(text.data(), text.size());
}

// The largest element count accepted, counting the dims that are not 0: a shape like
// [0, 2^32, 2^32] holds nothing, but its strides overflow (xtensor computes them signed).
constexpr std::uint64_t kMaxElements = std::uint64_t{1} << 40;

// a * b, throwing on overflow (sizes come from untrusted headers).
std::uint64_t checked_mul(std::uint64_t a, std::uint64_t b, const std::string& source, const std::string& key) {
  TG_CHECK(b == 0 || a <= UINT64_MAX / b, "{}: tensor '{}' has a size that overflows", source, key);
  return a * b;
}

}  // namespace

void save_safetensors(const std::string& path, const NamedTensors& tensors, const Metadata& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  Metadata with_crcs = metadata;
  for (const auto& [key, value] : metadata)
    TG_CHECK(!key.starts_with(kCrcPrefix) && key != kMetadataCrcKey,
             "save {}: the metadata key '{}' is reserved (tapegrad's checksums)", path, key);
  for (const auto& [name, t] : tensors)
    if (t.defined())
      with_crcs[std::string(kCrcPrefix) + name] = crc32_hex(t.data_ptr(), t.numel() * dtype_size(t.dtype()));
  with_crcs[std::string(kMetadataCrcKey)] = metadata_crc(with_crcs);
  header[std::string(kMetadataKey)] = with_crcs;
  std::set<std::string> names;
  std::uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    TG_CHECK(!name.empty() && name != kMetadataKey, "save {}: invalid tensor name \"{}\"", path, name);
    TG_CHECK(names.insert(name).second, "save {}: the name '{}' appears twice", path, name);
    TG_CHECK(t.defined(), "save {}: tensor '{}' is undefined", path, name);
    const std::uint64_t bytes = t.numel() * dtype_size(t.dtype());
    header[name] = {
        {"dtype", safetensors_dtype(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // aligns the data to 8 bytes, as the reference writer does
  std::string prefix(8, '\0');
  const std::uint64_t n = text.size();
  std::memcpy(prefix.data(), &n, 8);
  write_atomic(path, prefix + text, tensors);
}

SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& source) {
  TG_CHECK(bytes.size() >= 8, "{}: not a safetensors file: {} bytes, shorter than the 8-byte header length", source,
           bytes.size());
  std::uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  TG_CHECK(n <= kMaxHeaderSize && n <= bytes.size() - 8,
           "{}: corrupted or truncated safetensors file: header length {} but only {} bytes follow", source, n,
           bytes.size() - 8);
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  } catch (const nlohmann::json::exception& e) {
    detail::fail("{}: corrupted safetensors header (invalid JSON): {}", source, e.what());
  }
  TG_CHECK(header.is_object(), "{}: corrupted safetensors header: expected a JSON object", source);

  const std::uint64_t data_size = bytes.size() - 8 - n;
  const char* data = bytes.data() + 8 + n;
  SafetensorsFile file;
  struct Entry {
    std::uint64_t begin, end;
    std::string name;
    Dtype dtype;
    Shape shape;
  };
  std::vector<Entry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey) {
      TG_CHECK(value.is_object(), "{}: '__metadata__' must be an object of strings", source);
      for (const auto& [mk, mv] : value.items()) {
        TG_CHECK(mv.is_string(), "{}: metadata '{}' is not a string", source, mk);
        file.metadata.emplace(mk, mv.get<std::string>());
      }
      continue;
    }
    TG_CHECK(value.is_object() && value.contains("dtype") && value.contains("shape") && value.contains("data_offsets"),
             "{}: tensor '{}' needs dtype, shape and data_offsets", source, key);
    const auto& dt = value["dtype"];
    TG_CHECK(dt.is_string(), "{}: tensor '{}': dtype is not a string", source, key);
    const std::string d = dt.get<std::string>();
    Entry e{.begin = 0, .end = 0, .name = key, .dtype = float32, .shape = {}};
    if (d == "F32")
      e.dtype = float32;
    else if (d == "F64")
      e.dtype = float64;
    else if (d == "I64")
      e.dtype = int64;
    else
      detail::fail("{}: tensor '{}' has dtype {}; tapegrad reads F32, F64 and I64", source, key, d);
    const auto& shape = value["shape"];
    TG_CHECK(shape.is_array(), "{}: tensor '{}': shape is not an array", source, key);
    std::uint64_t numel = 1, nonzero = 1;
    for (const auto& s : shape) {
      TG_CHECK(s.is_number_unsigned(), "{}: tensor '{}': shape entries must be non-negative integers", source, key);
      e.shape.push_back(s.get<std::uint64_t>());
      numel = checked_mul(numel, e.shape.back(), source, key);
      if (e.shape.back() != 0) nonzero = checked_mul(nonzero, e.shape.back(), source, key);
    }
    TG_CHECK(nonzero <= kMaxElements,
             "{}: tensor '{}': shape {} has more than 2^40 elements (even counting only the "
             "dims that are not 0)",
             source, key, shape_str(e.shape));
    const auto& off = value["data_offsets"];
    TG_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned(),
             "{}: tensor '{}': data_offsets must be two non-negative integers", source, key);
    e.begin = off[0].get<std::uint64_t>();
    e.end = off[1].get<std::uint64_t>();
    TG_CHECK(e.begin <= e.end && e.end <= data_size,
             "{}: tensor '{}': data_offsets [{}, {}] out of range of the {} data bytes (truncated file?)", source, key,
             e.begin, e.end, data_size);
    TG_CHECK(e.end - e.begin == checked_mul(numel, dtype_size(e.dtype), source, key),
             "{}: tensor '{}': data_offsets [{}, {}] hold {} bytes but shape {} of {} needs {}", source, key, e.begin,
             e.end, e.end - e.begin, shape_str(e.shape), d, numel * dtype_size(e.dtype));
    entries.push_back(std::move(e));
  }
  // The data must be covered exactly once, without gaps, overlaps or trailing bytes.
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  std::uint64_t expected = 0;
  for (const Entry& e : entries) {
    TG_CHECK(e.begin == expected, "{}: tensor '{}': data_offsets start at {} but the previous tensor ends at {}",
             source, e.name, e.begin, expected);
    expected = e.end;
  }
  TG_CHECK(expected == data_size, "{}: the tensors cover {} bytes but the file has {} data bytes", source, expected,
           data_size);
  // Checksums: every tensor written by tapegrad has one, and so has its whole metadata (since
  // 0.2.0; files of earlier versions and of other writers go without).
  if (auto it = file.metadata.find(std::string(kMetadataCrcKey)); it != file.metadata.end()) {
    const std::string stored = it->second;
    file.metadata.erase(it);
    const std::string got = metadata_crc(file.metadata);
    TG_CHECK(got == stored, "{}: the metadata fails its checksum (CRC-32 {} stored, {} computed): the file is corrupt",
             source, stored, got);
  }
  std::map<std::string, std::string> crcs;
  for (auto it = file.metadata.begin(); it != file.metadata.end();) {
    if (it->first.starts_with(kCrcPrefix)) {
      crcs.emplace(it->first.substr(kCrcPrefix.size()), it->second);
      it = file.metadata.erase(it);
    } else {
      ++it;
    }
  }
  for (const Entry& e : entries) {
    if (auto it = crcs.find(e.name); it != crcs.end()) {
      const std::string got = crc32_hex(data + e.begin, e.end - e.begin);
      TG_CHECK(got == it->second,
               "{}: tensor '{}' fails its checksum (CRC-32 {} stored, {} computed): the file is corrupt", source,
               e.name, it->second, got);
      crcs.erase(it);
    }
  }
  TG_CHECK(crcs.empty(), "{}: a checksum names the tensor '{}', which the file does not hold", source,
           crcs.empty() ? "" : crcs.begin()->first);
  for (const Entry& e : entries) {
    Tensor t = zeros(e.shape, e.dtype);
    if (e.end > e.begin) std::memcpy(t.mutable_data_ptr(), data + e.begin, e.end - e.begin);
    file.tensors.emplace_back(e.name, std::move(t));
  }
  return file;
}

SafetensorsFile load_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  TG_CHECK(in.good(), "load: cannot open {}", path);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  TG_CHECK(!in.bad(), "load: reading {} failed", path);
  return parse_safetensors(buffer.str(), path);
}

NamedTensors state_dict(const Module& module) {
  NamedTensors out = module.named_parameters();
  for (auto& entry : module.named_buffers()) out.push_back(std::move(entry));
  return out;
}

StateDictLoad::StateDictLoad(const Module& module, const NamedTensors& tensors, const std::string& source) {
  std::map<std::string, const Tensor*> given;
  for (const auto& [name, t] : tensors) {
    TG_CHECK(given.emplace(name, &t).second, "{}: the key '{}' appears twice", source, name);
  }
  for (const auto& [name, dst] : state_dict(module)) {
    auto it = given.find(name);
    TG_CHECK(it != given.end(), "{}: missing key '{}' (needed by {})", source, name, module.name());
    const Tensor& src = *it->second;
    TG_CHECK(src.defined() && src.dtype() == dst.dtype(),
             "{}: '{}' is {} but the module's is {} (convert the module with to() first)", source, name,
             src.defined() ? dtype_name(src.dtype()) : "undefined", dst.dtype());
    TG_CHECK(src.shape() == dst.shape(), "{}: '{}' has shape {} but the module's has shape {}", source, name,
             shape_str(src.shape()), shape_str(dst.shape()));
    pairs_.emplace_back(dst, src);
    given.erase(it);
  }
  TG_CHECK(given.empty(), "{}: unexpected key '{}' (not in {})", source, given.empty() ? "" : given.begin()->first,
           module.name());
}

void StateDictLoad::apply() {
  NoGradGuard no_grad;
  for (auto& [dst, src] : pairs_) dst.copy_(src);
}

const std::string& metadata_at(const Metadata& metadata, const std::string& key, const std::string& source) {
  auto it = metadata.find(key);
  TG_CHECK(it != metadata.end(), "{}: metadata '{}' is missing", source, key);
  return it->second;
}

void load_state_dict(Module& module, const NamedTensors& tensors, const std::string& source) {
  StateDictLoad(module, tensors, source).apply();
}

void save(const Module& module, const std::string& path) {
  save_safetensors(path, state_dict(module), {{"format", "tapegrad.module"}, {"module", module.name()}});
}

void load(Module& module, const std::string& path) {
  const SafetensorsFile file = load_safetensors(path);
  load_state_dict(module, file.tensors, path);
}

}  // namespace tg::nn
