#include "datasets/idx.hpp"

#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <memory>

namespace tg::datasets {
namespace {

struct GzCloser {
  void operator()(gzFile f) const { gzclose(f); }
};
using GzFile = std::unique_ptr<gzFile_s, GzCloser>;

/// Reads up to n bytes (fewer only at the end of the data); throws on a zlib error.
std::size_t read_up_to(gzFile f, const std::string& name, void* out, std::size_t n) {
  auto* p = static_cast<std::uint8_t*>(out);
  std::size_t done = 0;
  while (done < n) {
    const auto chunk = static_cast<unsigned>(std::min<std::size_t>(n - done, 1u << 30));
    const int got = gzread(f, p + done, chunk);
    if (got < 0) {
      int errnum = 0;
      const char* msg = gzerror(f, &errnum);
      detail::fail("read_idx: '{}': corrupt gzip data ({})", name, msg);
    }
    if (got == 0) break;
    done += static_cast<std::size_t>(got);
  }
  return done;
}

/// True when the reader stopped because a gzip stream ended early.
bool gzip_truncated(gzFile f) {
  int errnum = Z_OK;
  gzerror(f, &errnum);
  return errnum == Z_BUF_ERROR;
}

std::uint32_t big_endian_u32(const std::uint8_t* b) {
  return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | b[3];
}

bool valid_type(std::uint8_t t) { return t == 0x08 || t == 0x09 || t == 0x0B || t == 0x0C || t == 0x0D || t == 0x0E; }

}  // namespace

std::string_view idx_type_name(IdxType t) {
  switch (t) {
    case IdxType::u8:
      return "ubyte";
    case IdxType::i8:
      return "byte";
    case IdxType::i16:
      return "short";
    case IdxType::i32:
      return "int";
    case IdxType::f32:
      return "float";
    case IdxType::f64:
      return "double";
  }
  return "?";
}

std::size_t idx_type_size(IdxType t) {
  switch (t) {
    case IdxType::u8:
    case IdxType::i8:
      return 1;
    case IdxType::i16:
      return 2;
    case IdxType::i32:
    case IdxType::f32:
      return 4;
    case IdxType::f64:
      return 8;
  }
  return 1;
}

std::size_t IdxArray::numel() const {
  std::size_t n = 1;
  for (auto d : dims) n *= d;
  return n;
}

IdxArray read_idx(const std::filesystem::path& path, const IdxExpect& expect) {
  const std::string name = path.string();
  std::error_code ec;
  TG_CHECK(std::filesystem::is_regular_file(path, ec), "read_idx: '{}' does not exist or is not a regular file", name);
  const std::uintmax_t file_size = std::filesystem::file_size(path, ec);
  TG_CHECK(!ec, "read_idx: cannot read the size of '{}': {}", name, ec.message());

  errno = 0;
  GzFile file(gzopen(name.c_str(), "rb"));
  TG_CHECK(file, "read_idx: cannot open '{}': {}", name, errno ? std::strerror(errno) : "out of memory");
  gzbuffer(file.get(), 1u << 17);
  gzFile f = file.get();

  std::uint8_t magic[4];
  const std::size_t got_magic = read_up_to(f, name, magic, 4);
  // zlib decides gzip or raw from the first bytes (1f 8b), not from the file name.
  const bool gz = gzdirect(f) == 0;
  const char* kind = gz ? "gzip'd file" : "file";
  TG_CHECK(got_magic == 4, "read_idx: '{}' is not an IDX file: the {} holds {} bytes, fewer than the 4-byte magic",
           name, kind, got_magic);
  TG_CHECK(magic[0] == 0 && magic[1] == 0 && valid_type(magic[2]),
           "read_idx: '{}' is not an IDX file: magic number {:02x} {:02x} {:02x} {:02x}, expected 00 00 <type> "
           "<rank> with type 08 (ubyte), 09, 0b, 0c, 0d or 0e",
           name, magic[0], magic[1], magic[2], magic[3]);
  IdxArray out;
  out.type = static_cast<IdxType>(magic[2]);
  const std::size_t rank = magic[3];
  TG_CHECK(rank >= 1, "read_idx: '{}' has rank 0 in its magic number; expected at least one dimension", name);
  if (expect.type) {
    TG_CHECK(out.type == *expect.type, "read_idx: '{}' holds elements of type {} (0x{:02x}), expected {} (0x{:02x})",
             name, idx_type_name(out.type), magic[2], idx_type_name(*expect.type), static_cast<unsigned>(*expect.type));
  }
  if (expect.rank) {
    TG_CHECK(rank == *expect.rank, "read_idx: '{}' has {} dimensions, expected {}", name, rank, *expect.rank);
  }

  std::uint8_t dim_bytes[4 * 255];
  const std::size_t header = 4 + 4 * rank;
  const std::size_t got_dims = read_up_to(f, name, dim_bytes, 4 * rank);
  TG_CHECK(got_dims == 4 * rank,
           "read_idx: '{}' is truncated: the header of a rank-{} IDX file needs {} bytes, the {} "
           "ends after {}",
           name, rank, header, kind, 4 + got_dims);
  const std::size_t elem = idx_type_size(out.type);
  std::size_t payload = elem;
  bool overflow = false;
  for (std::size_t i = 0; i < rank; ++i) {
    const std::size_t d = big_endian_u32(dim_bytes + 4 * i);
    out.dims.push_back(d);
    if (d != 0 && payload > std::numeric_limits<std::size_t>::max() / d) overflow = true;
    payload *= d;
  }
  TG_CHECK(!overflow, "read_idx: '{}' has dims {} whose size overflows", name, shape_str(out.dims));
  const std::string layout = fmt::format("dims {} of {}", shape_str(out.dims), idx_type_name(out.type));

  // Raw files are checked against their size before allocating. Deflate expands at most
  // ~1032:1, so a gzip file far smaller than its header claims is cut short.
  if (!gz) {
    TG_CHECK(file_size >= header + payload,
             "read_idx: '{}' is truncated: its header says {} = {} bytes of data, the file holds {}", name, layout,
             payload, file_size - header);
    TG_CHECK(file_size == header + payload,
             "read_idx: '{}' has {} trailing bytes after the {} bytes of data its header ({}) describes", name,
             file_size - header - payload, payload, layout);
  } else {
    TG_CHECK(payload / 1032 <= file_size + 1024,
             "read_idx: '{}' is truncated: its header says {} = {} bytes of data, more than a {}-byte gzip file can "
             "hold",
             name, layout, payload, file_size);
  }

  out.bytes.resize(payload);
  const std::size_t got = read_up_to(f, name, out.bytes.data(), payload);
  if (got < payload) {
    TG_CHECK(!(gz && gzip_truncated(f)),
             "read_idx: '{}' is truncated: the gzip stream ends after {} of the {} bytes of data its header ({}) "
             "describes",
             name, got, payload, layout);
    detail::fail("read_idx: '{}' is truncated: its header says {} = {} bytes of data, the {} holds {}", name, layout,
                 payload, kind, got);
  }
  // Reading to the end also makes zlib check the gzip trailer (CRC and length).
  std::size_t trailing = 0;
  std::uint8_t scratch[4096];
  for (std::size_t n; (n = read_up_to(f, name, scratch, sizeof scratch)) > 0;) trailing += n;
  TG_CHECK(!(gz && gzip_truncated(f)), "read_idx: '{}' is truncated: the gzip stream ends before its trailer", name);
  TG_CHECK(trailing == 0, "read_idx: '{}' has {} trailing bytes after the {} bytes of data its header ({}) describes",
           name, trailing, payload, layout);

  if (elem > 1 && std::endian::native == std::endian::little) {
    for (std::size_t i = 0; i < payload; i += elem) std::reverse(out.bytes.begin() + i, out.bytes.begin() + i + elem);
  }
  return out;
}

namespace {
template <class Src, class Dst>
xt::xarray<Dst> convert(const IdxArray& a) {
  auto out = xt::xarray<Dst>::from_shape(a.dims);
  const std::size_t n = a.numel();
  Dst* dst = out.data();
  for (std::size_t i = 0; i < n; ++i) {
    Src v;
    std::memcpy(&v, a.bytes.data() + i * sizeof(Src), sizeof(Src));
    dst[i] = static_cast<Dst>(v);
  }
  return out;
}
}  // namespace

Tensor idx_to_tensor(const IdxArray& a) {
  TG_CHECK(a.bytes.size() == a.numel() * idx_type_size(a.type), "idx_to_tensor: {} bytes do not fit dims {} of {}",
           a.bytes.size(), shape_str(a.dims), idx_type_name(a.type));
  switch (a.type) {
    case IdxType::u8:
      return Tensor(convert<std::uint8_t, std::int64_t>(a));
    case IdxType::i8:
      return Tensor(convert<std::int8_t, std::int64_t>(a));
    case IdxType::i16:
      return Tensor(convert<std::int16_t, std::int64_t>(a));
    case IdxType::i32:
      return Tensor(convert<std::int32_t, std::int64_t>(a));
    case IdxType::f32:
      return Tensor(convert<float, float>(a));
    case IdxType::f64:
      return Tensor(convert<double, double>(a));
  }
  detail::fail("idx_to_tensor: unknown element type");
}

}  // namespace tg::datasets
