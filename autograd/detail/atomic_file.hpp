#pragma once
// Internal: files written whole or not at all, for every file tapegrad writes (models,
// checkpoints, histories, plots, downloads' verdicts). The bytes go to an unnamed file in the
// target's directory (O_TMPFILE), which a crash simply loses; only a complete, synced file gets a
// name, and it replaces the target in one rename. Where the filesystem has no unnamed files, a
// named temporary stands in; leftovers of a crashed process are removed by the next save into
// that directory. Files get the mode the process's umask leaves of 0666, like any new file.
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

namespace tg::detail {

class AtomicFile {
 public:
  /// Starts a file that will replace `path`; `who` names the caller in errors ("save").
  AtomicFile(std::filesystem::path path, std::string who);
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  /// Discards the bytes unless commit() ran.
  ~AtomicFile();

  /// Appends bytes; throws tg::Error naming the file and errno's message on failure.
  void write(const void* data, std::size_t size);
  /// Syncs the bytes and puts the file in place of `path`, durably.
  void commit();

 private:
  std::filesystem::path path_;
  std::string who_;
  std::filesystem::path named_temp_;  // set when no unnamed file could be made, or once linked
  int fd_ = -1;
};

/// `content` as the whole of `path`, atomically (AtomicFile).
void write_file_atomic(const std::filesystem::path& path, std::string_view content, const std::string& who);

}  // namespace tg::detail
