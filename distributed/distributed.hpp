#pragma once
// Processes working together over MPI (Open MPI): the environment, this process's rank, and
// collective operations on tensors. Every rank must call the same collectives in the same order
// with tensors of the same dtype (and, except for all_gather's first axis, the same shape).
//
//   int main(int argc, char** argv) {
//     tg::distributed::Environment env(argc, argv);  // MPI_Init_thread ... MPI_Finalize
//     tg::Tensor t = tg::ones({3});
//     tg::distributed::all_reduce(t);                  // [n, n, n] on every rank
//   }
//
// MPI is called from the thread that made the Environment only (MPI_THREAD_FUNNELED). Without an
// Environment every function acts as a world of one process. A library built without MPI
// (is_available() false) still links: making an Environment then throws.
#include <memory>
#include <string_view>

#include "tapegrad/autograd/tensor.hpp"

namespace tg::distributed {

/// Whether tapegrad was built with MPI.
bool is_available();

/// Initializes MPI for its lifetime (or joins a program that already did, leaving MPI_Finalize
/// to it) and gives tapegrad its own communicator over all processes. One at a time per process.
/// When the Environment is destroyed by an exception in flight, it stops every rank
/// (MPI_Abort) instead of finalizing: the other ranks would otherwise wait forever for this one.
class Environment {
 public:
  /// Initializes MPI without the command line; throws when built without MPI or when one exists.
  Environment();
  /// The same with main's arguments, from which MPI may remove its own.
  Environment(int& argc, char**& argv);
  /// Frees tapegrad's communicator and finalizes MPI if it initialized it (MPI_Abort in an exception).
  ~Environment();
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;

  /// This process's rank, 0..world_size()-1.
  int rank() const;
  /// The number of processes.
  int world_size() const;
  /// Prints "tapegrad: rank R of N failed: <why>; stopping every rank" to stderr and ends every
  /// process of the job with `exit_code` (MPI_Abort).
  [[noreturn]] void abort(std::string_view why, int exit_code = 1) const;

 private:
  bool owns_mpi_ = false;
};

/// True while an Environment exists.
bool is_initialized();
/// This process's rank (0 without an Environment).
int rank();
/// The number of processes (1 without an Environment).
int world_size();
/// Returns when every rank has called it.
void barrier();

/// How all_reduce combines the ranks' values, elementwise.
enum class ReduceOp { sum, mean, min, max };

/// Replaces t (float32, float64 or int64) on every rank with the elementwise reduction over the
/// ranks; mean divides the sum by world_size() (int64: truncating). Not recorded by autograd.
void all_reduce(Tensor& t, ReduceOp op = ReduceOp::sum);
/// Replaces t on every rank with root's values; shapes and dtypes must agree (checked).
void broadcast(Tensor& t, int root = 0);
/// Every rank's t, concatenated along the first axis in rank order (a 0-d t counts as [1]). The
/// first axis may differ between ranks; the dtype and the other axes must not (checked).
Tensor all_gather(const Tensor& t);

/// A collective in flight, from all_reduce_async.
class Work {
 public:
  Work() = default;
  /// Blocks until the operation is done; then the tensor holds the result.
  void wait();
  /// Whether the operation is done (and lets MPI make progress on it).
  bool test();
  /// Whether wait() is still to be called.
  bool pending() const { return state_ != nullptr; }

  /// The request and its tensor (internal; defined in the .cpp).
  struct State;

 private:
  friend Work all_reduce_async(Tensor t, ReduceOp op);
  std::shared_ptr<State> state_;
};

/// Starts all_reduce(t, op) (sum or mean) and returns at once (MPI_Iallreduce); t must stay
/// untouched until wait(). Rank order of the calls matters as for every collective.
Work all_reduce_async(Tensor t, ReduceOp op = ReduceOp::sum);

}  // namespace tg::distributed
