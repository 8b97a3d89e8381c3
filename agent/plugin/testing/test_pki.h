// CAs and certificates made with openssl in a temp dir, for the TLS tests
// (agent/plugin:tls_test and the mTLS end-to-end test).
#ifndef SECCOMP_AGENT_PLUGIN_TESTING_TEST_PKI_H_
#define SECCOMP_AGENT_PLUGIN_TESTING_TEST_PKI_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace seccomp_agent::plugin::testing {

class TestPki {
 public:
  // A fresh directory under /tmp; fails when openssl is missing.
  static absl::StatusOr<TestPki> Make();
  TestPki(TestPki&& o) noexcept : dir_(std::move(o.dir_)) { o.dir_.clear(); }
  ~TestPki();  // removes the directory

  // NAME.pem (self-signed CA certificate) and NAME.key.
  absl::Status MakeCa(const std::string& name);
  // NAME.pem signed by CA (NAME.key), with the x509v3 extension lines `ext`
  // (e.g. "subjectAltName=IP:127.0.0.1" or "extendedKeyUsage=clientAuth").
  absl::Status MakeCert(const std::string& name, const std::string& ca, const std::string& ext);

  // The path of FILE in the directory.
  std::string P(const std::string& file) const { return dir_ + "/" + file; }
  const std::string& dir() const { return dir_; }

 private:
  explicit TestPki(std::string dir) : dir_(std::move(dir)) {}
  absl::Status Run(const std::string& cmd);
  std::string dir_;
};

// The whole file (empty when unreadable).
std::string Slurp(const std::string& path);

// A free TCP port on 127.0.0.1 for a TLS server (bound, then released for
// the server); -1 when none.
int FreeLoopbackPort();

}  // namespace seccomp_agent::plugin::testing

#endif  // SECCOMP_AGENT_PLUGIN_TESTING_TEST_PKI_H_
