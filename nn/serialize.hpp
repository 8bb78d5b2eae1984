#pragma once
// Saving and loading in the safetensors format: an 8-byte little-endian header length, a JSON
// header {name: {"dtype": "F32"|"F64"|"I64", "shape": [...], "data_offsets": [begin, end]},
// "__metadata__": {string: string}}, then the raw little-endian data. Such files open in Python
// with numpy alone (or the safetensors package).
//
// Writes are atomic: the file is written to a temporary file in the same directory, flushed to
// disk (fsync) and renamed over the target, so a crash or error never damages the previous file.
// Reads are strict: a truncated or corrupted file, a missing or unexpected key, a shape or dtype
// mismatch throws tg::Error naming the file and the key, and leaves the destination unchanged.
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tapegrad/nn/module.hpp"

namespace tg::nn {

/// The "__metadata__" of a safetensors file.
using Metadata = std::map<std::string, std::string>;

/// The content of a safetensors file: tensors in the order of their data, and the metadata.
struct SafetensorsFile {
  /// By name, in the order of their data in the file.
  NamedTensors tensors;
  /// The "__metadata__" strings (empty when the file has none).
  Metadata metadata;
};

/// Writes `tensors` (float32, float64 or int64; unique non-empty names) and `metadata`.
void save_safetensors(const std::string& path, const NamedTensors& tensors, const Metadata& metadata = {});
/// Reads and validates a whole safetensors file (dtypes F32, F64, I64).
SafetensorsFile load_safetensors(const std::string& path);
/// Parses safetensors bytes; `source` names them in errors.
SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& source = "safetensors data");

/// A module's parameters then buffers, by dotted name (tensors shared with the module).
NamedTensors state_dict(const Module& module);
/// Copies `tensors` into the module's parameters and buffers. Strict: every name must be present
/// with the same shape and dtype, and no other name may appear; `source` names them in errors.
void load_state_dict(Module& module, const NamedTensors& tensors, const std::string& source = "state dict");

/// Saves a module's parameters and buffers.
void save(const Module& module, const std::string& path);
/// Loads parameters and buffers saved by save() (or any safetensors file with the same names).
void load(Module& module, const std::string& path);

/// A load of `tensors` into a module's parameters and buffers, checked as load_state_dict checks
/// it (every name, shape and dtype) when made, applied by apply(): a caller reading several parts
/// of a file checks them all before changing anything.
class StateDictLoad {
 public:
  /// Checks `tensors` against the module's names, shapes and dtypes; throws naming `source` on a mismatch.
  StateDictLoad(const Module& module, const NamedTensors& tensors, const std::string& source);
  /// Copies the values into the module (under no-grad).
  void apply();

 private:
  std::vector<std::pair<Tensor, Tensor>> pairs_;  // the module's tensor, its new value
};

/// The metadata value of `key`; throws naming `source` when it is missing.
const std::string& metadata_at(const Metadata& metadata, const std::string& key, const std::string& source);

}  // namespace tg::nn
