#pragma once
// Thread-local grad mode: when off, ops record nothing.

namespace tg {

/// True when ops should record the graph (the default; per thread).
bool is_grad_enabled();
/// Turns recording on or off for the calling thread (NoGradGuard and GradModeGuard restore it).
void set_grad_enabled(bool enabled);

/// Turns graph recording off for its scope (evaluation, optimizer steps, initialization).
class NoGradGuard {
 public:
  /// Turns recording off, remembering the previous mode.
  NoGradGuard() : previous_(is_grad_enabled()) { set_grad_enabled(false); }
  /// Puts back the previous mode.
  ~NoGradGuard() { set_grad_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

/// Sets grad mode to `enabled` for its scope.
class GradModeGuard {
 public:
  /// Sets grad mode to `enabled`; the destructor puts back the previous mode.
  explicit GradModeGuard(bool enabled) : previous_(is_grad_enabled()) { set_grad_enabled(enabled); }
  /// Puts back the previous mode.
  ~GradModeGuard() { set_grad_enabled(previous_); }
  GradModeGuard(const GradModeGuard&) = delete;
  GradModeGuard& operator=(const GradModeGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace tg
