#pragma once
// Optimizer state and training checkpoints (model, optimizer, epoch, generator) in safetensors
// files, written atomically and read all or nothing, as nn/serialize.hpp does for modules.
#include <cstdint>

#include "tapegrad/autograd/generator.hpp"
#include "tapegrad/nn/module.hpp"
#include "tapegrad/nn/serialize.hpp"
#include "tapegrad/optim/optimizer.hpp"

namespace tg::nn {

/// Saves an optimizer's state (see optim::StateDict for the names).
void save(const optim::Optimizer& optimizer, const std::string& path);
/// Loads state saved from an optimizer of the same kind over parameters of the same shapes.
void load(optim::Optimizer& optimizer, const std::string& path);

/// What load_checkpoint found besides the tensors.
struct CheckpointInfo {
  /// The epoch given to save_checkpoint.
  std::int64_t epoch = 0;
  Metadata metadata;  ///< everything in the file's metadata, including `extra` given at saving
};

/// One file with the model ("model.<name>"), the optimizer state ("optimizer.<key>"), the epoch,
/// the generator's state when given (to resume shuffles and dropout exactly) and `extra` metadata.
void save_checkpoint(const std::string& path, const Module& module, const optim::Optimizer& optimizer,
                     std::int64_t epoch, const Generator* generator = nullptr, const Metadata& extra = {});
/// Restores a checkpoint into existing objects built like the saved ones; all or nothing. The
/// generator, when given, must have been saved.
CheckpointInfo load_checkpoint(const std::string& path, Module& module, optim::Optimizer& optimizer,
                               Generator* generator = nullptr);

}  // namespace tg::nn
