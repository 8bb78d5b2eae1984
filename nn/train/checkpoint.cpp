// Optimizer state and training checkpoints, in safetensors files (nn/serialize.hpp).
#include "tapegrad/nn/train/checkpoint.hpp"

#include <stdexcept>
#include <string>

#include "tapegrad/autograd/check.hpp"

namespace tg::nn {
namespace {
optim::StateDict to_state_dict(const NamedTensors& tensors) {
  optim::StateDict out;
  for (const auto& [name, t] : tensors) out.emplace(name, t);
  return out;
}
}  // namespace

void save(const optim::Optimizer& optimizer, const std::string& path) {
  NamedTensors tensors;
  for (const auto& [key, t] : optimizer.state_dict()) tensors.emplace_back(key, t);
  save_safetensors(path, tensors, {{"format", "tapegrad.optimizer"}, {"optimizer", optimizer.name()}});
}

void load(optim::Optimizer& optimizer, const std::string& path) {
  const SafetensorsFile file = load_safetensors(path);
  const std::string kind = metadata_at(file.metadata, "optimizer", path);
  TG_CHECK(kind == optimizer.name(), "{}: holds the state of a {} optimizer, not of {}", path, kind, optimizer.name());
  try {
    optimizer.load_state_dict(to_state_dict(file.tensors));
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", path, e.what()));
  }
}

void save_checkpoint(const std::string& path, const Module& module, const optim::Optimizer& optimizer,
                     std::int64_t epoch, const Generator* generator, const Metadata& extra) {
  Metadata metadata = extra;
  auto reserve = [&](const std::string& key, std::string value) {
    TG_CHECK(!extra.contains(key), "save_checkpoint: the extra metadata key '{}' is reserved", key);
    metadata[key] = std::move(value);
  };
  reserve("format", "tapegrad.checkpoint");
  reserve("epoch", std::to_string(epoch));
  reserve("optimizer", optimizer.name());
  if (generator) reserve("generator", generator->state());
  NamedTensors tensors;
  for (const auto& [name, t] : state_dict(module)) tensors.emplace_back("model." + name, t);
  for (const auto& [key, t] : optimizer.state_dict()) tensors.emplace_back("optimizer." + key, t);
  save_safetensors(path, tensors, metadata);
}

CheckpointInfo load_checkpoint(const std::string& path, Module& module, optim::Optimizer& optimizer,
                               Generator* generator) {
  const std::string source = path;
  SafetensorsFile file = load_safetensors(path);
  TG_CHECK(metadata_at(file.metadata, "format", source) == "tapegrad.checkpoint", "{}: not a tapegrad checkpoint",
           source);
  const std::string kind = metadata_at(file.metadata, "optimizer", source);
  TG_CHECK(kind == optimizer.name(), "{}: holds the state of a {} optimizer, not of {}", source, kind,
           optimizer.name());
  CheckpointInfo info;
  const std::string epoch = metadata_at(file.metadata, "epoch", source);
  try {
    std::size_t used = 0;
    info.epoch = std::stoll(epoch, &used);
    if (used != epoch.size()) throw std::invalid_argument(epoch);
  } catch (const std::exception&) {
    detail::fail("{}: metadata 'epoch' is not an integer: \"{}\"", source, epoch);
  }
  NamedTensors model_part, optimizer_part;
  for (auto& [name, t] : file.tensors) {
    if (name.starts_with("model."))
      model_part.emplace_back(name.substr(6), t);
    else if (name.starts_with("optimizer."))
      optimizer_part.emplace_back(name.substr(10), t);
    else
      detail::fail("{}: unexpected key '{}' (expected model.* or optimizer.*)", source, name);
  }
  // Check everything before changing anything.
  StateDictLoad model_load(module, model_part, source + " (model)");
  Generator restored;
  if (generator) restored.set_state(metadata_at(file.metadata, "generator", source));
  try {
    optimizer.load_state_dict(to_state_dict(optimizer_part));
  } catch (const Error& e) {
    throw Error(fmt::format("{} (optimizer): {}", source, e.what()));
  }
  model_load.apply();
  if (generator) *generator = restored;
  info.metadata = std::move(file.metadata);
  return info;
}

}  // namespace tg::nn
