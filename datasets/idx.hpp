#pragma once
// IDX files (the MNIST format), raw or gzip'd: a checked reader that keeps the elements as bytes.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "tapegrad/autograd/tensor.hpp"

namespace tg::datasets {

/// Element type of an IDX file: the third byte of its magic number.
enum class IdxType : std::uint8_t { u8 = 0x08, i8 = 0x09, i16 = 0x0B, i32 = 0x0C, f32 = 0x0D, f64 = 0x0E };

/// "ubyte", "byte", "short", "int", "float" or "double", as the IDX format names them.
std::string_view idx_type_name(IdxType t);
/// Bytes per element.
std::size_t idx_type_size(IdxType t);

/// The contents of an IDX file: dims and the elements, row-major, in host byte order.
struct IdxArray {
  /// The element type.
  IdxType type = IdxType::u8;
  /// The size of each dimension, outermost first.
  Shape dims;
  std::vector<std::uint8_t> bytes;  ///< numel() * idx_type_size(type) bytes
  /// The product of dims.
  std::size_t numel() const;
};

/// What the caller requires of a file; unset fields accept anything.
struct IdxExpect {
  /// The element type required.
  std::optional<IdxType> type{};
  /// The number of dimensions required.
  std::optional<std::size_t> rank{};
  /// The SHA-256 (64 lowercase hex digits) of the file's IDX bytes, decompressed when it is
  /// gzip'd (so that any gzip of the same data matches); empty: not checked.
  std::string sha256{};
  std::string what{};  ///< names the expected file in a mismatch message ("MNIST train images")
};

/// Reads an IDX file. Gzip is recognised by content (the 1f 8b magic), whatever the name says,
/// so `x-idx3-ubyte` holding gzip data and `x.gz` holding raw data both read correctly. A gzip
/// file must be whole: every member ends with its trailer, whose CRC-32 and length are checked,
/// and nothing follows the last member. Checks the magic, element type, rank and that the data is
/// exactly as long as the dims say (at most 2^40 elements); every error names the file and what
/// is wrong.
IdxArray read_idx(const std::string& path, const IdxExpect& expect = {});

/// The same, for the bytes of a file held in memory; `name` names them in errors.
IdxArray parse_idx(std::span<const std::uint8_t> bytes, const std::string& name, const IdxExpect& expect = {});

/// The array as a Tensor of shape dims: integer types → int64, f32 → float32, f64 → float64.
Tensor idx_to_tensor(const IdxArray& a);

}  // namespace tg::datasets
