#include "tapegrad/datasets/idx.hpp"

#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <span>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/datasets/detail/sha256.hpp"

namespace tg::datasets {
namespace {

std::uint32_t big_endian_u32(const std::uint8_t* b) {
  return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | b[3];
}

bool valid_type(std::uint8_t t) { return t == 0x08 || t == 0x09 || t == 0x0B || t == 0x0C || t == 0x0D || t == 0x0E; }

// The largest element count read_idx accepts, counting the dims that are not 0: a shape like
// [0, 2^32, 2^32] holds nothing, but its strides overflow (xtensor computes them signed).
constexpr std::uint64_t max_elements = std::uint64_t{1} << 40;

// The whole file's bytes.
std::vector<std::uint8_t> read_file(const std::string& path) {
  std::error_code ec;
  const bool exists = std::filesystem::exists(path, ec);
  TG_CHECK(exists, "read_idx: '{}' does not exist", path);
  TG_CHECK(std::filesystem::is_regular_file(path, ec), "read_idx: '{}' is not a regular file", path);
  std::FILE* f = std::fopen(path.c_str(), "rb");
  TG_CHECK(f, "read_idx: cannot open '{}': {}", path, std::strerror(errno));
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> closer(f, &std::fclose);
  std::vector<std::uint8_t> bytes;
  std::uint8_t chunk[1 << 16];
  for (std::size_t n; (n = std::fread(chunk, 1, sizeof chunk, f)) > 0;) bytes.insert(bytes.end(), chunk, chunk + n);
  TG_CHECK(!std::ferror(f), "read_idx: reading '{}' failed: {}", path, std::strerror(errno));
  return bytes;
}

// The IDX layout at the start of `data`: element type, dims and the bytes the data must hold;
// throws naming the file when the header is short or malformed. `kind` says "file" or "gzip
// stream" in the messages.
struct Layout {
  IdxType type;
  Shape dims;
  std::size_t header = 0, payload = 0;
  std::string text;  // "dims [60000, 28, 28] of ubyte", for messages
};

std::optional<Layout> parse_header(const std::uint8_t* data, std::size_t size, const std::string& name,
                                   const IdxExpect& expect, std::string_view kind, bool complete) {
  if (size < 4) {
    TG_CHECK(!complete, "read_idx: '{}' is not an IDX file: the {} holds {} bytes, fewer than the 4-byte magic", name,
             kind, size);
    return std::nullopt;
  }
  TG_CHECK(data[0] == 0 && data[1] == 0 && valid_type(data[2]),
           "read_idx: '{}' is not an IDX file: magic number {:02x} {:02x} {:02x} {:02x}, expected 00 00 <type> "
           "<rank> with type 08 (ubyte), 09, 0b, 0c, 0d or 0e",
           name, data[0], data[1], data[2], data[3]);
  Layout l;
  l.type = static_cast<IdxType>(data[2]);
  const std::size_t rank = data[3];
  TG_CHECK(rank >= 1, "read_idx: '{}' has rank 0 in its magic number; expected at least one dimension", name);
  if (expect.type) {
    TG_CHECK(l.type == *expect.type, "read_idx: '{}' holds elements of type {} (0x{:02x}), expected {} (0x{:02x})",
             name, idx_type_name(l.type), data[2], idx_type_name(*expect.type), static_cast<unsigned>(*expect.type));
  }
  if (expect.rank) {
    TG_CHECK(rank == *expect.rank, "read_idx: '{}' has {} dimensions, expected {}", name, rank, *expect.rank);
  }
  l.header = 4 + 4 * rank;
  if (size < l.header) {
    TG_CHECK(!complete,
             "read_idx: '{}' is truncated: the header of a rank-{} IDX file needs {} bytes, the {} ends after {}", name,
             rank, l.header, kind, size);
    return std::nullopt;
  }
  std::uint64_t nonzero = 1;
  bool too_large = false;
  for (std::size_t i = 0; i < rank; ++i) {
    const std::size_t d = big_endian_u32(data + 4 + 4 * i);
    l.dims.push_back(d);
    if (d != 0) {
      too_large |= nonzero > max_elements / d;
      nonzero *= d;
    }
  }
  TG_CHECK(!too_large && nonzero <= max_elements,
           "read_idx: '{}' has dims {}: more than 2^40 elements (even counting only the dims that are not 0)", name,
           shape_str(l.dims));
  const bool empty = std::find(l.dims.begin(), l.dims.end(), std::size_t{0}) != l.dims.end();
  l.payload = empty ? 0 : static_cast<std::size_t>(nonzero) * idx_type_size(l.type);
  l.text = fmt::format("dims {} of {}", shape_str(l.dims), idx_type_name(l.type));
  return l;
}

struct ZStream {
  z_stream z{};
  ZStream() {
    // 16 + MAX_WBITS: a gzip wrapper, whose CRC-32 and length zlib checks at each member's end.
    TG_CHECK(inflateInit2(&z, 16 + MAX_WBITS) == Z_OK, "read_idx: zlib cannot start");
  }
  ~ZStream() { inflateEnd(&z); }
};

// The decompressed bytes of a whole gzip file: every member complete with its trailer (CRC-32
// and length checked), nothing after the last. Memory grows only as data arrives, up to the
// size the IDX header inside claims: a header claiming more than the stream holds costs nothing.
std::vector<std::uint8_t> gunzip(std::span<const std::uint8_t> gz, const std::string& name, const IdxExpect& expect) {
  ZStream s;
  s.z.next_in = const_cast<std::uint8_t*>(gz.data());  // zlib's API is not const, it does not write
  std::vector<std::uint8_t> out;
  std::optional<Layout> layout;
  std::size_t beyond = 0;  // bytes decompressed past what the header describes (counted, not kept)
  std::uint8_t chunk[1 << 16];
  std::size_t left = gz.size();
  bool member_ended = false;
  while (true) {
    const auto feed = static_cast<uInt>(std::min<std::size_t>(left, 1u << 30));
    s.z.avail_in += feed;
    left -= feed;
    s.z.next_out = chunk;
    s.z.avail_out = sizeof chunk;
    const int rc = inflate(&s.z, Z_NO_FLUSH);
    if (rc == Z_DATA_ERROR || rc == Z_MEM_ERROR || rc == Z_NEED_DICT || rc == Z_STREAM_ERROR)
      detail::fail("read_idx: '{}': corrupt gzip data ({})", name, s.z.msg ? s.z.msg : "zlib error");
    const std::size_t produced = sizeof chunk - s.z.avail_out;
    std::size_t keep = produced;
    if (layout) keep = std::min(produced, layout->header + layout->payload - out.size());
    out.insert(out.end(), chunk, chunk + keep);
    beyond += produced - keep;
    if (!layout) {
      layout = parse_header(out.data(), out.size(), name, expect, "gzip stream", false);
      if (layout && out.size() > layout->header + layout->payload) {
        beyond += out.size() - layout->header - layout->payload;
        out.resize(layout->header + layout->payload);
      }
    }
    if (rc == Z_STREAM_END) {
      // Another gzip member may follow (as `cat a.gz b.gz` makes); anything else is garbage.
      if (s.z.avail_in + left == 0) {
        member_ended = true;
        break;
      }
      TG_CHECK(s.z.avail_in + left >= 2 && s.z.next_in[0] == 0x1f && s.z.next_in[1] == 0x8b,
               "read_idx: '{}' has {} bytes of trailing garbage after its gzip stream", name, s.z.avail_in + left);
      inflateReset(&s.z);
      continue;
    }
    if (rc == Z_BUF_ERROR || (produced == 0 && s.z.avail_in == 0 && left == 0)) break;
  }
  if (!member_ended) {
    const std::string of =
        layout ? fmt::format(" of the {} bytes of data its header ({}) describes", layout->payload, layout->text)
               : std::string();
    const std::size_t data = layout ? out.size() - std::min(out.size(), layout->header) : out.size();
    detail::fail(
        "read_idx: '{}' is truncated: the gzip stream ends before its end (after {} bytes{}), or before its "
        "trailer",
        name, data, of);
  }
  TG_CHECK(beyond == 0, "read_idx: '{}' has {} trailing bytes after the {} bytes of data its header ({}) describes",
           name, beyond, layout ? layout->payload : 0, layout ? layout->text : "");
  return out;
}

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

IdxArray read_idx(const std::string& path, const IdxExpect& expect) { return parse_idx(read_file(path), path, expect); }

IdxArray parse_idx(std::span<const std::uint8_t> file, const std::string& name, const IdxExpect& expect) {
  // Gzip is recognised by its magic (1f 8b), not by the file name.
  const bool gz = file.size() >= 2 && file[0] == 0x1f && file[1] == 0x8b;
  const std::vector<std::uint8_t> bytes =
      gz ? gunzip(file, name, expect) : std::vector<std::uint8_t>(file.begin(), file.end());
  const char* kind = gz ? "gzip stream" : "file";
  const Layout layout = *parse_header(bytes.data(), bytes.size(), name, expect, kind, true);
  const std::size_t data = bytes.size() - layout.header;
  TG_CHECK(data >= layout.payload,
           "read_idx: '{}' is truncated: its header says {} = {} bytes of data, the {} holds {}", name, layout.text,
           layout.payload, kind, data);
  TG_CHECK(data == layout.payload,
           "read_idx: '{}' has {} trailing bytes after the {} bytes of data its header ({}) describes", name,
           data - layout.payload, layout.payload, layout.text);
  if (!expect.sha256.empty()) {
    tg::detail::Sha256 sha;
    sha.update(bytes.data(), bytes.size());
    const std::string got = sha.hex();
    TG_CHECK(got == expect.sha256,
             "read_idx: '{}' is not the file expected: the SHA-256 of its {}content is {}, expected {}{}", name,
             gz ? "decompressed " : "", got, expect.sha256,
             expect.what.empty() ? "" : fmt::format(" ({})", expect.what));
  }
  IdxArray out;
  out.type = layout.type;
  out.dims = layout.dims;
  out.bytes.assign(bytes.begin() + static_cast<std::ptrdiff_t>(layout.header), bytes.end());
  const std::size_t elem = idx_type_size(out.type);
  if (elem > 1 && std::endian::native == std::endian::little) {
    for (std::size_t i = 0; i < out.bytes.size(); i += elem)
      std::reverse(out.bytes.begin() + static_cast<std::ptrdiff_t>(i),
                   out.bytes.begin() + static_cast<std::ptrdiff_t>(i + elem));
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
