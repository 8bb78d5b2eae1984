#pragma once
// Internal to datasets/: SHA-256 through OpenSSL, for downloads and for local files.
#include <fmt/format.h>
#include <openssl/evp.h>

#include <memory>
#include <string>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/error.hpp"

namespace tg::detail {

/// A running SHA-256: update() with the bytes, then hex() once.
class Sha256 {
 public:
  Sha256() {
    TG_CHECK(ctx_ && EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) == 1,
             "sha256: OpenSSL cannot start a digest");
  }
  void update(const void* p, std::size_t n) { EVP_DigestUpdate(ctx_.get(), p, n); }
  /// 64 lowercase hex digits.
  std::string hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_.get(), md, &len);
    std::string out;
    for (unsigned i = 0; i < len; ++i) out += fmt::format("{:02x}", md[i]);
    return out;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx_{EVP_MD_CTX_new(), &EVP_MD_CTX_free};
};

}  // namespace tg::detail
