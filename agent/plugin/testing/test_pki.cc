#include "agent/plugin/testing/test_pki.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace seccomp_agent::plugin::testing {

absl::StatusOr<TestPki> TestPki::Make() {
  if (system("command -v openssl >/dev/null") != 0) {
    return absl::FailedPreconditionError("openssl is needed (Debian package openssl)");
  }
  char tmpl[] = "/tmp/sa-pki-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return absl::InternalError("mkdtemp failed");
  return TestPki(tmpl);
}

TestPki::~TestPki() {
  if (dir_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

absl::Status TestPki::Run(const std::string& cmd) {
  const std::string full = absl::StrCat("cd ", dir_, " && ", cmd, " >>openssl.log 2>&1");
  if (system(full.c_str()) == 0) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("failed: ", cmd, "\n", Slurp(P("openssl.log"))));
}

absl::Status TestPki::MakeCa(const std::string& name) {
  return Run(absl::StrCat("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=", name,
                          " -keyout ", name, ".key -out ", name, ".pem"));
}

absl::Status TestPki::MakeCert(const std::string& name, const std::string& ca,
                               const std::string& ext) {
  {
    std::ofstream f(P(name + ".ext"));  // closed before openssl reads it
    f << ext << "\n";
    if (!f) return absl::InternalError(absl::StrCat("cannot write ", P(name + ".ext")));
  }
  if (absl::Status s = Run(absl::StrCat("openssl req -newkey rsa:2048 -nodes -subj /CN=", name,
                                        " -keyout ", name, ".key -out ", name, ".csr"));
      !s.ok()) {
    return s;
  }
  return Run(absl::StrCat("openssl x509 -req -in ", name, ".csr -CA ", ca, ".pem -CAkey ", ca,
                          ".key -CAcreateserial -days 2 -extfile ", name, ".ext -out ", name,
                          ".pem"));
}

std::string Slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  close(fd);
  return ok ? ntohs(a.sin_port) : -1;
}

}  // namespace seccomp_agent::plugin::testing
