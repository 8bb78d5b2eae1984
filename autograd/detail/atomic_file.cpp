#include "tapegrad/autograd/detail/atomic_file.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/error.hpp"

namespace tg::detail {
namespace {

namespace fs = std::filesystem;

fs::path directory_of(const fs::path& path) { return path.has_parent_path() ? path.parent_path() : fs::path("."); }

// ".<name>.tmp-<pid>-<random>": a temporary of this process for `path`.
std::string temp_prefix(const fs::path& path) { return "." + path.filename().string() + ".tmp-"; }

fs::path new_temp_name(const fs::path& path) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return directory_of(path) / fmt::format("{}{}-{:016x}", temp_prefix(path), ::getpid(), rng());
}

// Removes the named temporaries of `path` that a process no longer running left behind (a crash,
// a kill -9 between naming a file and renaming it). Best effort: errors are ignored.
void remove_stale_temps(const fs::path& path) {
  const std::string prefix = temp_prefix(path);
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(directory_of(path), ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with(prefix)) continue;
    const std::string rest = name.substr(prefix.size());
    const auto dash = rest.find('-');
    if (dash == std::string::npos) continue;
    char* end = nullptr;
    const long pid = std::strtol(rest.c_str(), &end, 10);
    if (end != rest.c_str() + dash || pid <= 0) continue;
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) fs::remove(entry.path(), ec);
  }
}

void sync_directory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

AtomicFile::AtomicFile(fs::path path, std::string who) : path_(std::move(path)), who_(std::move(who)) {
  const fs::path dir = directory_of(path_);
  remove_stale_temps(path_);
  fd_ = ::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
  if (fd_ >= 0) return;
  // No unnamed files here (an old kernel, some filesystems): a named one, removed on failure.
  named_temp_ = new_temp_name(path_);
  fd_ = ::open(named_temp_.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666);
  TG_CHECK(fd_ >= 0, "{}: cannot create a file in '{}' to write '{}': {}", who_, dir.string(), path_.string(),
           std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!named_temp_.empty()) ::unlink(named_temp_.c_str());
}

void AtomicFile::write(const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, size);
    if (n < 0 && errno == EINTR) continue;
    TG_CHECK(n > 0, "{}: writing '{}' failed: {}", who_, path_.string(), std::strerror(n < 0 ? errno : ENOSPC));
    p += n;
    size -= static_cast<std::size_t>(n);
  }
}

void AtomicFile::commit() {
  TG_CHECK(::fsync(fd_) == 0, "{}: writing '{}' failed: {}", who_, path_.string(), std::strerror(errno));
  if (named_temp_.empty()) {
    // An unnamed file gets a name (linkat cannot replace a file), which rename then moves over
    // the target. Only between the two can a crash leave a file behind, and the next save into
    // this directory removes it.
    named_temp_ = new_temp_name(path_);
    const std::string fd_path = fmt::format("/proc/self/fd/{}", fd_);
    TG_CHECK(::linkat(AT_FDCWD, fd_path.c_str(), AT_FDCWD, named_temp_.c_str(), AT_SYMLINK_FOLLOW) == 0,
             "{}: cannot name the file written for '{}': {}", who_, path_.string(), std::strerror(errno));
  }
  const int closed = ::close(fd_);
  fd_ = -1;
  TG_CHECK(closed == 0, "{}: writing '{}' failed: {}", who_, path_.string(), std::strerror(errno));
  TG_CHECK(::rename(named_temp_.c_str(), path_.c_str()) == 0, "{}: cannot replace '{}': {}", who_, path_.string(),
           std::strerror(errno));
  named_temp_.clear();
  sync_directory(directory_of(path_));  // makes the rename itself durable
}

void write_file_atomic(const fs::path& path, std::string_view content, const std::string& who) {
  AtomicFile file(path, who);
  file.write(content.data(), content.size());
  file.commit();
}

}  // namespace tg::detail
