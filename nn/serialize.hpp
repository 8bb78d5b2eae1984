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
#include <filesystem>
#include <map>
#include <string>

#include "autograd/generator.hpp"
#include "nn/module.hpp"
#include "optim/optimizer.hpp"

namespace tg::nn {

/// The "__metadata__" of a safetensors file.
using Metadata = std::map<std::string, std::string>;

/// The content of a safetensors file: tensors in the order of their data, and the metadata.
struct SafetensorsFile {
  NamedTensors tensors;
  Metadata metadata;
};

/// Writes `tensors` (float32, float64 or int64; unique non-empty names) and `metadata`.
void save_safetensors(const std::filesystem::path& path, const NamedTensors& tensors, const Metadata& metadata = {});
/// Reads and validates a whole safetensors file (dtypes F32, F64, I64).
SafetensorsFile load_safetensors(const std::filesystem::path& path);
/// Parses safetensors bytes; `source` names them in errors.
SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& source = "safetensors data");

/// A module's parameters then buffers, by dotted name (tensors shared with the module).
NamedTensors state_dict(const Module& module);
/// Copies `tensors` into the module's parameters and buffers. Strict: every name must be present
/// with the same shape and dtype, and no other name may appear; `source` names them in errors.
void load_state_dict(Module& module, const NamedTensors& tensors, const std::string& source = "state dict");

/// Saves a module's parameters and buffers.
void save(const Module& module, const std::filesystem::path& path);
/// Loads parameters and buffers saved by save() (or any safetensors file with the same names).
void load(Module& module, const std::filesystem::path& path);

/// Saves an optimizer's state (see optim::StateDict for the names).
void save(const optim::Optimizer& optimizer, const std::filesystem::path& path);
/// Loads state saved from an optimizer of the same kind over parameters of the same shapes.
void load(optim::Optimizer& optimizer, const std::filesystem::path& path);

/// What load_checkpoint found besides the tensors.
struct CheckpointInfo {
  std::int64_t epoch = 0;
  Metadata metadata;  ///< everything in the file's metadata, including `extra` given at saving
};

/// One file with the model ("model.<name>"), the optimizer state ("optimizer.<key>"), the epoch,
/// the generator's state when given (to resume shuffles and dropout exactly) and `extra` metadata.
void save_checkpoint(const std::filesystem::path& path, const Module& module, const optim::Optimizer& optimizer,
                     std::int64_t epoch, const Generator* generator = nullptr, const Metadata& extra = {});
/// Restores a checkpoint into existing objects built like the saved ones; all or nothing. The
/// generator, when given, must have been saved.
CheckpointInfo load_checkpoint(const std::filesystem::path& path, Module& module, optim::Optimizer& optimizer,
                               Generator* generator = nullptr);

}  // namespace tg::nn
