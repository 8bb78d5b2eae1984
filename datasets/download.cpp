#include "tapegrad/datasets/download.hpp"

#include <curl/curl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <vector>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/detail/atomic_file.hpp"
#include "tapegrad/autograd/error.hpp"
#include "tapegrad/datasets/detail/sha256.hpp"

namespace tg::datasets {
namespace {

using tg::detail::Sha256;

std::string lowercase(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

void init_curl() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

/// State of one transfer, shared with libcurl's C callbacks. Exceptions must not cross libcurl,
/// so a throwing progress callback is stored and rethrown after the transfer.
struct Transfer {
  tg::detail::AtomicFile* out = nullptr;
  Sha256 sha;
  DownloadProgress progress;
  const std::function<void(const DownloadProgress&)>* callback = nullptr;
  std::uint64_t max_bytes = 0;  // more than this and the transfer stops
  bool too_long = false;
  std::exception_ptr error;
};

std::size_t on_data(char* data, std::size_t size, std::size_t count, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  const std::size_t n = size * count;
  if (t.progress.received + n > t.max_bytes) {
    t.too_long = true;
    return 0;
  }
  try {
    t.out->write(data, n);
  } catch (...) {
    t.error = std::current_exception();
    return 0;
  }
  t.sha.update(data, n);
  t.progress.received += n;
  return n;
}

int on_progress(void* user, curl_off_t total, curl_off_t, curl_off_t, curl_off_t) {
  auto& t = *static_cast<Transfer*>(user);
  if (!*t.callback) return 0;
  t.progress.total = total > 0 ? static_cast<std::uint64_t>(total) : 0;
  try {
    (*t.callback)(t.progress);
  } catch (...) {
    t.error = std::current_exception();
    return 1;
  }
  return 0;
}

std::string join_url(const std::string& base, const std::string& name) {
  return base.empty() || base.back() == '/' ? base + name : base + '/' + name;
}

}  // namespace

std::string sha256_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  TG_CHECK(in, "sha256_file: cannot open '{}'", path);
  Sha256 sha;
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    sha.update(buf.data(), static_cast<std::size_t>(in.gcount()));
  }
  TG_CHECK(in.eof(), "sha256_file: error reading '{}'", path);
  return sha.hex();
}

std::vector<std::string> mirrors_from_env(const char* var) {
  std::vector<std::string> out;
  const char* v = std::getenv(var);
  if (!v) return out;
  std::string cur;
  for (const char* p = v;; ++p) {
    if (*p == '\0' || *p == ' ' || *p == ',' || *p == ';' || *p == '\t' || *p == '\n') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
      if (*p == '\0') break;
    } else {
      cur += *p;
    }
  }
  return out;
}

std::string cache_root() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return (std::filesystem::path(xdg) / "tapegrad").string();
  if (const char* home = std::getenv("HOME"); home && *home)
    return (std::filesystem::path(home) / ".cache" / "tapegrad").string();
  return {};
}

std::string download_file(const RemoteFile& file, const std::string& dir_name, const DownloadOptions& options) {
  const std::filesystem::path dir = dir_name;
  TG_CHECK(!file.name.empty() && file.name.find('/') == std::string::npos,
           "download_file: '{}' is not a plain file name", file.name);
  TG_CHECK(file.sha256.size() == 64, "download_file: the SHA-256 given for '{}' is not 64 hex digits: '{}'", file.name,
           file.sha256);
  TG_CHECK(!options.mirrors.empty(), "download_file: no mirror to download '{}' from", file.name);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  TG_CHECK(!ec, "download_file: cannot create the directory '{}': {}", dir.string(), ec.message());
  init_curl();

  const auto target = dir / file.name;
  const std::string expected = lowercase(file.sha256);
  const bool report = !options.progress && !options.quiet;
  std::vector<std::string> failures;
  for (const auto& mirror : options.mirrors) {
    const std::string url = join_url(mirror, file.name);
    if (report) fmt::print(stderr, "Downloading {}\n", url);
    // The bytes go to a file of this download alone (tg::detail::AtomicFile), named only once
    // they verify: concurrent downloads of one file never share it, and a crash leaves nothing.
    tg::detail::AtomicFile temp(target, "download_file");
    Transfer t;
    t.progress.url = url;
    t.callback = &options.progress;
    t.out = &temp;
    t.max_bytes = file.size ? file.size : options.max_bytes;

    std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), &curl_easy_cleanup);
    TG_CHECK(curl, "download_file: libcurl failed to start");
    char curl_error[CURL_ERROR_SIZE] = {};
    CURL* c = curl.get();
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);  // a redirect loop ends as an error of its own
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(t.max_bytes));
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "tapegrad");
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_error);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, options.connect_timeout_seconds);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, options.stall_timeout_seconds);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, &on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
    const CURLcode rc = curl_easy_perform(c);
    if (t.error) std::rethrow_exception(t.error);

    std::string why;
    if (rc == CURLE_HTTP_RETURNED_ERROR) {
      long status = 0;
      curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
      why = fmt::format("HTTP {}", status);
    } else if (t.too_long || rc == CURLE_FILESIZE_EXCEEDED) {
      why = fmt::format("the server sends more than the {} bytes the file has{} (transfer stopped)", t.max_bytes,
                        file.size ? "" : " at most");
    } else if (rc == CURLE_TOO_MANY_REDIRECTS) {
      why = "more than 10 redirects (a redirect loop?)";
    } else if (rc != CURLE_OK) {
      why = curl_error[0] ? curl_error : curl_easy_strerror(rc);
    } else if (const std::string got = t.sha.hex(); got != expected) {
      why = fmt::format("SHA-256 mismatch: got {}, expected {} ({} bytes received; file discarded)", got, expected,
                        t.progress.received);
    }
    if (!why.empty()) {
      if (report) fmt::print(stderr, "  failed: {}\n", why);
      failures.push_back(fmt::format("{}: {}", url, why));
      continue;
    }
    temp.commit();
    t.progress.done = true;
    t.progress.total = t.progress.received;
    if (options.progress) options.progress(t.progress);
    if (report) fmt::print(stderr, "  saved {} ({} bytes, SHA-256 verified)\n", target.string(), t.progress.received);
    return target.string();
  }
  detail::fail("download_file: could not download '{}' into '{}':\n  {}", file.name, dir.string(),
               fmt::join(failures, "\n  "));
}

}  // namespace tg::datasets
