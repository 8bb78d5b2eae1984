#pragma once
// Fetching data files into a local directory over HTTP(S) (libcurl), each verified by SHA-256.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace tg::datasets {

/// A file to fetch: its name under each mirror's base URL and the SHA-256 of its bytes (hex).
struct RemoteFile {
  /// File name, appended to each mirror's base URL.
  std::string name{};
  /// SHA-256 of the bytes served, as 64 lowercase hex digits.
  std::string sha256{};
  /// The SHA-256 of the file's content, decompressed when the file is gzip'd: local copies (raw,
  /// or gzip'd by another tool) are checked against it. Empty: local copies are not checked.
  std::string content_sha256{};
  std::uint64_t size = 0;  ///< its size in bytes; 0: unknown (DownloadOptions::max_bytes caps it)
};

/// Progress of one transfer, as reported to DownloadOptions::progress.
struct DownloadProgress {
  /// The URL being fetched.
  std::string url{};
  std::uint64_t received = 0;  ///< bytes so far
  std::uint64_t total = 0;     ///< 0 while the server has not said
  bool done = false;           ///< set once, after the file was verified and saved
};

/// Options of download_file.
struct DownloadOptions {
  std::vector<std::string> mirrors{};  ///< base URLs tried in order; the file name is appended
  /// Called as bytes arrive; when empty, one line per file goes to stderr unless `quiet`.
  std::function<void(const DownloadProgress&)> progress{};
  /// No lines on stderr when progress is empty.
  bool quiet = false;
  /// A mirror that does not connect within this is abandoned.
  long connect_timeout_seconds = 30;
  long stall_timeout_seconds = 60;                   ///< a transfer that moves no byte for this long is abandoned
  std::uint64_t max_bytes = std::uint64_t{1} << 30;  ///< a file of unknown size stops beyond this
};

/// Fetches `file` into `dir` (created if needed) from the first mirror that serves bytes with the
/// right SHA-256, and returns its path. The bytes go to a temporary file renamed into place only
/// after they verify, so nothing unverified is ever kept. Throws a tg::Error listing every
/// mirror's failure (HTTP status, network error or hash mismatch).
std::string download_file(const RemoteFile& file, const std::string& dir, const DownloadOptions& options);

/// SHA-256 of a file's bytes, as 64 lowercase hex digits.
std::string sha256_file(const std::string& path);

/// Base URLs listed in an environment variable, separated by spaces, commas or semicolons;
/// empty when it is unset.
std::vector<std::string> mirrors_from_env(const char* var);

/// Where downloaded data is cached: $XDG_CACHE_HOME/tapegrad, else $HOME/.cache/tapegrad;
/// empty when neither variable is set.
std::string cache_root();

}  // namespace tg::datasets
