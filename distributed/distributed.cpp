#include "tapegrad/distributed/distributed.hpp"

#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/dispatch.hpp"
#include "tapegrad/autograd/grad_mode.hpp"

#if TG_HAVE_MPI
#include <mpi.h>
#endif

namespace tg::distributed {
namespace {
// A copy of t's values in a new tensor of `shape` (same number of elements), outside any graph.
Tensor copy_as(const Tensor& t, const Shape& shape) {
  Tensor out = zeros(shape, t.dtype());
  if (t.numel() > 0) std::memcpy(out.mutable_data_ptr(), t.data_ptr(), t.numel() * dtype_size(t.dtype()));
  return out;
}
}  // namespace

#if TG_HAVE_MPI

namespace {

// tapegrad's own communicator (a duplicate of MPI_COMM_WORLD, so that its error handler and its
// messages are apart from the program's), valid while an Environment exists.
MPI_Comm comm = MPI_COMM_NULL;
int comm_rank = 0;
int comm_size = 1;

void check_mpi(int code, const char* call) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw Error(fmt::format("distributed: {} failed on rank {}: {}", call, comm_rank, std::string(text, length)));
}

MPI_Datatype mpi_type(Dtype d) {
  switch (d) {
    case float32:
      return MPI_FLOAT;
    case float64:
      return MPI_DOUBLE;
    case int64:
      return MPI_INT64_T;
  }
  return MPI_DATATYPE_NULL;
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
    case ReduceOp::mean:
      return MPI_SUM;
    case ReduceOp::min:
      return MPI_MIN;
    case ReduceOp::max:
      return MPI_MAX;
  }
  return MPI_OP_NULL;
}

int checked_count(std::size_t n, const char* op) {
  TG_CHECK(n <= static_cast<std::size_t>(INT_MAX), "distributed::{}: {} elements exceed MPI's count limit of {}", op, n,
           INT_MAX);
  return static_cast<int>(n);
}

// Throws on every rank, the same message, when the ranks disagree on (dtype, numel) or any rank
// passed a strided view (which has no row-major elements for MPI to write): one small collective,
// so that a mismatch is an error rather than a hang or a truncated message.
void check_same_layout(const Tensor& t, const char* op) {
  const auto dtype = static_cast<std::int64_t>(t.dtype());
  const auto numel = static_cast<std::int64_t>(t.numel());
  const std::int64_t strided = t.is_contiguous() ? 0 : 1;
  std::int64_t values[5] = {dtype, -dtype, numel, -numel, strided};
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, values, 5, MPI_INT64_T, MPI_MAX, comm), op);
  TG_CHECK(values[4] == 0,
           "distributed::{}: a rank passed a strided view (this rank: shape {}, {}); pass a contiguous() tensor "
           "and copy_ the result back into the view",
           op, shape_str(t.shape()), t.is_contiguous() ? "contiguous" : "strided");
  TG_CHECK(values[0] == -values[1] && values[2] == -values[3],
           "distributed::{}: the ranks passed different tensors (this rank, {}: {} of shape {}); every rank must pass "
           "the same dtype and number of elements",
           op, comm_rank, t.dtype(), shape_str(t.shape()));
}

void divide_by_world(Tensor& t) {
  dispatch_all(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* p = static_cast<T*>(t.mutable_data_ptr());
    const std::size_t n = t.numel();
    for (std::size_t i = 0; i < n; ++i) p[i] /= static_cast<T>(comm_size);
  });
}

}  // namespace

bool is_available() { return true; }

namespace {
// Initializes MPI unless the program did (then returns false: MPI_Finalize stays the program's)
// and makes tapegrad's communicator.
bool start(int* argc, char*** argv) {
  TG_CHECK(comm == MPI_COMM_NULL, "distributed::Environment: one already exists in this process");
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    check_mpi(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  }
  check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &comm), "MPI_Comm_dup");
  MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(comm, &comm_rank);
  MPI_Comm_size(comm, &comm_size);
  return !initialized;
}
}  // namespace

Environment::Environment() : owns_mpi_(start(nullptr, nullptr)) {}

Environment::Environment(int& argc, char**& argv) : owns_mpi_(start(&argc, &argv)) {}

Environment::~Environment() {
  if (std::uncaught_exceptions() > 0 && comm_size > 1)
    abort("an exception left the scope of tg::distributed::Environment");
  MPI_Comm_free(&comm);
  comm = MPI_COMM_NULL;
  comm_rank = 0;
  comm_size = 1;
  if (owns_mpi_) MPI_Finalize();
}

int Environment::rank() const { return comm_rank; }
int Environment::world_size() const { return comm_size; }

void Environment::abort(std::string_view why, int exit_code) const {
  std::fprintf(stderr, "tapegrad: rank %d of %d failed: %.*s; stopping every rank\n", comm_rank, comm_size,
               static_cast<int>(why.size()), why.data());
  std::fflush(stderr);
  MPI_Abort(comm == MPI_COMM_NULL ? MPI_COMM_WORLD : comm, exit_code);
  std::_Exit(exit_code);  // MPI_Abort does not return; this keeps [[noreturn]] true
}

bool is_initialized() { return comm != MPI_COMM_NULL; }
int rank() { return comm_rank; }
int world_size() { return comm_size; }

void barrier() {
  if (comm == MPI_COMM_NULL) return;
  check_mpi(MPI_Barrier(comm), "MPI_Barrier");
}

void all_reduce(Tensor& t, ReduceOp op) {
  TG_CHECK(t.defined(), "distributed::all_reduce: the tensor is undefined");
  if (comm == MPI_COMM_NULL) return;
  check_same_layout(t, "all_reduce");
  if (t.numel() > 0)
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, t.mutable_data_ptr(), checked_count(t.numel(), "all_reduce"),
                            mpi_type(t.dtype()), mpi_op(op), comm),
              "MPI_Allreduce");
  if (op == ReduceOp::mean) divide_by_world(t);
}

void broadcast(Tensor& t, int root) {
  TG_CHECK(t.defined(), "distributed::broadcast: the tensor is undefined");
  TG_CHECK(root >= 0 && root < comm_size, "distributed::broadcast: root {} is not a rank of a world of {}", root,
           comm_size);
  if (comm == MPI_COMM_NULL) return;
  check_same_layout(t, "broadcast");
  if (t.numel() > 0)
    check_mpi(MPI_Bcast(t.mutable_data_ptr(), checked_count(t.numel(), "broadcast"), mpi_type(t.dtype()), root, comm),
              "MPI_Bcast");
}

Tensor all_gather(const Tensor& t) {
  TG_CHECK(t.defined(), "distributed::all_gather: the tensor is undefined");
  Shape shape = t.ndim() == 0 ? Shape{1} : t.shape();
  if (comm == MPI_COMM_NULL) return copy_as(t, shape);
  // Every rank's dtype, rank and trailing axes, to refuse a mismatch on every rank alike.
  const std::size_t ndim = shape.size();
  std::vector<std::int64_t> mine = {static_cast<std::int64_t>(t.dtype()), static_cast<std::int64_t>(ndim),
                                    static_cast<std::int64_t>(shape[0])};
  std::int64_t row = 1;
  for (std::size_t i = 1; i < ndim; ++i) row *= static_cast<std::int64_t>(shape[i]);
  mine.push_back(row);
  std::vector<std::int64_t> all(mine.size() * static_cast<std::size_t>(comm_size));
  check_mpi(MPI_Allgather(mine.data(), 4, MPI_INT64_T, all.data(), 4, MPI_INT64_T, comm), "MPI_Allgather");
  std::vector<int> counts(static_cast<std::size_t>(comm_size)), displacements(counts.size());
  std::size_t rows = 0, total = 0;
  for (int r = 0; r < comm_size; ++r) {
    const std::int64_t* theirs = &all[4 * static_cast<std::size_t>(r)];
    TG_CHECK(theirs[0] == mine[0] && theirs[1] == mine[1] && theirs[3] == mine[3],
             "distributed::all_gather: rank {} passed a {} tensor of {} axes with {} elements per row, rank {} a {} "
             "tensor of shape {}; the dtype and every axis but the first must agree",
             r, static_cast<Dtype>(theirs[0]), theirs[1], theirs[3], comm_rank, t.dtype(), shape_str(t.shape()));
    counts[static_cast<std::size_t>(r)] = checked_count(static_cast<std::size_t>(theirs[2] * row), "all_gather");
    displacements[static_cast<std::size_t>(r)] = checked_count(total, "all_gather");
    rows += static_cast<std::size_t>(theirs[2]);
    total += static_cast<std::size_t>(theirs[2] * row);
  }
  Shape out_shape = shape;
  out_shape[0] = rows;
  Tensor out = zeros(out_shape, t.dtype());
  const Tensor input = t.detach();
  check_mpi(MPI_Allgatherv(t.numel() ? input.data_ptr() : nullptr, counts[static_cast<std::size_t>(comm_rank)],
                           mpi_type(t.dtype()), out.mutable_data_ptr(), counts.data(), displacements.data(),
                           mpi_type(t.dtype()), comm),
            "MPI_Allgatherv");
  return out;
}

struct Work::State {
  Tensor tensor;
  ReduceOp op = ReduceOp::sum;
  MPI_Request request = MPI_REQUEST_NULL;
};

Work all_reduce_async(Tensor t, ReduceOp op) {
  TG_CHECK(t.defined(), "distributed::all_reduce_async: the tensor is undefined");
  TG_CHECK(op == ReduceOp::sum || op == ReduceOp::mean, "distributed::all_reduce_async: only sum and mean");
  TG_CHECK(t.is_contiguous(),
           "distributed::all_reduce_async: the tensor of shape {} is a strided view; pass a contiguous() tensor",
           shape_str(t.shape()));
  Work work;
  work.state_ = std::make_shared<Work::State>();
  work.state_->tensor = t;
  work.state_->op = op;
  if (comm != MPI_COMM_NULL && t.numel() > 0)
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, t.mutable_data_ptr(), checked_count(t.numel(), "all_reduce_async"),
                             mpi_type(t.dtype()), mpi_op(op), comm, &work.state_->request),
              "MPI_Iallreduce");
  return work;
}

void Work::wait() {
  if (!state_) return;
  if (state_->request != MPI_REQUEST_NULL) check_mpi(MPI_Wait(&state_->request, MPI_STATUS_IGNORE), "MPI_Wait");
  if (state_->op == ReduceOp::mean && comm != MPI_COMM_NULL) divide_by_world(state_->tensor);
  state_.reset();
}

bool Work::test() {
  if (!state_) return true;
  int done = 1;
  if (state_->request != MPI_REQUEST_NULL) check_mpi(MPI_Test(&state_->request, &done, MPI_STATUS_IGNORE), "MPI_Test");
  return done != 0;
}

#else  // built without MPI: a world of one process; an Environment cannot be made.

bool is_available() { return false; }

Environment::Environment() {
  throw Error(
      "distributed::Environment: tapegrad was built without MPI; install Debian's libopenmpi-dev and openmpi-bin "
      "(scripts/install-deps.sh does) and configure again");
}
Environment::Environment(int&, char**&) : Environment() {}
Environment::~Environment() = default;
int Environment::rank() const { return 0; }
int Environment::world_size() const { return 1; }
void Environment::abort(std::string_view why, int exit_code) const {
  std::fprintf(stderr, "tapegrad: failed: %.*s\n", static_cast<int>(why.size()), why.data());
  std::_Exit(exit_code);
}
bool is_initialized() { return false; }
int rank() { return 0; }
int world_size() { return 1; }
void barrier() {}
void all_reduce(Tensor& t, ReduceOp) { TG_CHECK(t.defined(), "distributed::all_reduce: the tensor is undefined"); }
void broadcast(Tensor& t, int root) {
  TG_CHECK(t.defined(), "distributed::broadcast: the tensor is undefined");
  TG_CHECK(root == 0, "distributed::broadcast: root {} is not a rank of a world of 1", root);
}
Tensor all_gather(const Tensor& t) {
  TG_CHECK(t.defined(), "distributed::all_gather: the tensor is undefined");
  return copy_as(t, t.ndim() == 0 ? Shape{1} : t.shape());
}
struct Work::State {};
Work all_reduce_async(Tensor t, ReduceOp) {
  TG_CHECK(t.defined(), "distributed::all_reduce_async: the tensor is undefined");
  return {};
}
void Work::wait() {}
bool Work::test() { return true; }

#endif

}  // namespace tg::distributed
