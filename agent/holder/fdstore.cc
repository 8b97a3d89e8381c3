#include "agent/holder/fdstore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstdint>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/common/log.h"
#include "agent/common/status.h"
#include "agent/holder/holder.h"
#include "agent/seccomp/unotify.h"
#include "nlohmann/json.hpp"

namespace seccomp_agent::holder {
namespace {

constexpr size_t kMaxMetadataBytes = 1 << 20;
constexpr int kSeals = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;

uint64_t Fnv1a64(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

}  // namespace

std::vector<NamedFd> TakeListenFds() {
  std::vector<NamedFd> out;
  char** names = nullptr;
  int n = sd_listen_fds_with_names(/*unset_environment=*/1, &names);
  if (n < 0) {
    spdlog::warn("sd_listen_fds_with_names: {}", strerror(-n));
    return out;
  }
  for (int i = 0; i < n; ++i) {
    const char* name = names != nullptr && names[i] != nullptr ? names[i] : "unknown";
    out.push_back(NamedFd{name, UniqueFd(SD_LISTEN_FDS_START + i)});
  }
  if (names != nullptr) {
    for (int i = 0; names[i] != nullptr; ++i) free(names[i]);
    free(names);
  }
  return out;
}

std::vector<NamedFd> SplitFdStoreEntries(std::vector<NamedFd>* fds) {
  std::vector<NamedFd> ours, rest;
  for (auto& f : *fds) {
    (absl::StartsWith(f.name, kFdStoreNamePrefix) ? ours : rest).push_back(std::move(f));
  }
  *fds = std::move(rest);
  return ours;
}

bool FdNameIsValid(const std::string& name) {
  if (name.empty() || name.size() > 255) return false;
  for (unsigned char c : name) {
    if (c < ' ' || c >= 127 || c == ':') return false;
  }
  return true;
}

std::string FdStoreName(const ContainerInfo& info) {
  std::string id = info.id.substr(0, 200);
  for (char& c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) c = '_';
  }
  return absl::StrFormat("%s%s.%d.%016x", kFdStoreNamePrefix, id, info.init_pid,
                         Fnv1a64(HolderKey(info)));
}

absl::StatusOr<UniqueFd> SealedMemfd(const std::string& text) {
  UniqueFd fd(memfd_create("seccomp-agent-container", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) return ErrnoStatus(errno, "memfd_create");
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = write(fd.get(), text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return ErrnoStatus(errno, "memfd write");
    off += n;
  }
  if (fcntl(fd.get(), F_ADD_SEALS, kSeals) != 0) return ErrnoStatus(errno, "memfd F_ADD_SEALS");
  return fd;
}

absl::StatusOr<std::string> ReadSealedMemfd(int fd) {
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0) return ErrnoStatus(errno, "not a memfd (F_GET_SEALS)");
  if ((seals & F_SEAL_WRITE) == 0) return absl::FailedPreconditionError("memfd is not sealed");
  struct stat st;
  if (fstat(fd, &st) != 0) return ErrnoStatus(errno, "fstat memfd");
  if (st.st_size <= 0 || static_cast<size_t>(st.st_size) > kMaxMetadataBytes) {
    return absl::InvalidArgumentError(absl::StrCat("memfd of ", st.st_size, " bytes"));
  }
  std::string text(st.st_size, '\0');
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = pread(fd, text.data() + off, text.size() - off, off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return ErrnoStatus(n < 0 ? errno : EIO, "memfd pread");
    off += n;
  }
  return text;
}

SystemdFdStore::SystemdFdStore(std::vector<NamedFd> passed) : passed_(std::move(passed)) {
  const char* ns = getenv("NOTIFY_SOCKET");
  if (ns == nullptr || *ns == '\0') {
    alive_ = false;
    spdlog::warn(
        "systemd fd store unavailable: restarts will lose containers (NOTIFY_SOCKET is not set)");
    return;
  }
  spdlog::info(
      "holder: systemd fd store via NOTIFY_SOCKET={} ({} fds passed back at start; the unit needs "
      "FileDescriptorStoreMax=)",
      ns, passed_.size());
}

absl::Status SystemdFdStore::Notify(const std::string& state, const int* fds, unsigned n) {
  if (!alive_) return absl::UnavailableError("systemd fd store unavailable");
  int r = sd_pid_notify_with_fds(0, /*unset_environment=*/0, state.c_str(), fds, n);
  if (r > 0) return absl::OkStatus();
  absl::Status s = r == 0 ? absl::UnavailableError("NOTIFY_SOCKET is not set")
                          : ErrnoStatus(-r, "sd_pid_notify_with_fds");
  if (alive_.exchange(false)) {
    spdlog::warn("systemd fd store unavailable: restarts will lose containers ({})",
                 std::string(s.message()));
  }
  return s;
}

void SystemdFdStore::Remove(const std::string& fdname) {
  (void)Notify(absl::StrCat("FDSTOREREMOVE=1\nFDNAME=", fdname), nullptr, 0);
}

absl::StatusOr<std::vector<StoredListener>> SystemdFdStore::List() {
  std::lock_guard<std::mutex> l(mu_);
  std::map<std::string, std::vector<UniqueFd>> by_name;
  for (auto& f : passed_) by_name[f.name].push_back(std::move(f.fd));
  passed_.clear();
  std::vector<StoredListener> out;
  for (auto& [fdname, fds] : by_name) {
    UniqueFd listener, meta;
    for (auto& fd : fds) {
      if (CheckIsListener(fd.get()).ok()) {
        if (!listener) listener = std::move(fd);
      } else if (!meta && fcntl(fd.get(), F_GET_SEALS) >= 0) {
        meta = std::move(fd);
      }
    }
    absl::StatusOr<ContainerInfo> info = absl::NotFoundError("no metadata memfd");
    if (meta) {
      auto text = ReadSealedMemfd(meta.get());
      if (!text.ok()) {
        info = text.status();
      } else {
        nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
        if (j.is_discarded() || !j.is_object() || !j.contains("info")) {
          info = absl::InvalidArgumentError("metadata is not {\"info\":{...}}");
        } else {
          info = InfoFromJson(j["info"].dump());
        }
      }
    }
    if (!listener) {
      // systemd drops a stored fd on POLLHUP: the container exited while no
      // agent ran. Only its metadata is left.
      spdlog::info("systemd fd store: {}: container gone (no listener left); removed", fdname);
      Remove(fdname);
      continue;
    }
    if (!info.ok()) {
      spdlog::error(
          "systemd fd store: {}: listener without usable metadata ({}); removed, its container "
          "gets ENOSYS",
          fdname, std::string(info.status().message()));
      Remove(fdname);
      continue;
    }
    names_[HolderKey(*info)] = fdname;
    out.push_back(StoredListener{fdname, *std::move(info), std::move(listener)});
  }
  return out;
}

absl::Status SystemdFdStore::Put(const ContainerInfo& info, int listener) {
  std::lock_guard<std::mutex> l(mu_);
  if (!alive_) return absl::UnavailableError("systemd fd store unavailable");
  const std::string key = HolderKey(info);
  const std::string fdname = FdStoreName(info);
  if (auto it = names_.find(key); it != names_.end()) {
    Remove(it->second);  // a new listener for the same container replaces the old one
    names_.erase(it);
  }
  nlohmann::json meta = {{"v", 1}, {"key", key}, {"info", nlohmann::json::parse(InfoToJson(info))}};
  SA_ASSIGN_OR_RETURN(UniqueFd memfd, SealedMemfd(meta.dump()));
  const int fds[2] = {memfd.get(), listener};
  SA_RETURN_IF_ERROR(Notify(absl::StrCat("FDSTORE=1\nFDNAME=", fdname), fds, 2));
  names_[key] = fdname;
  return absl::OkStatus();
}

void SystemdFdStore::Del(const ContainerInfo& info) {
  std::lock_guard<std::mutex> l(mu_);
  const std::string key = HolderKey(info);
  auto it = names_.find(key);
  if (it == names_.end()) return;  // never stored (or already removed)
  Remove(it->second);
  names_.erase(it);
}

int DiscardFdStoreEntries(std::vector<NamedFd> entries) {
  std::map<std::string, int> names;
  for (const auto& f : entries) names[f.name]++;
  for (const auto& [fdname, n] : names) {
    std::string state = absl::StrCat("FDSTOREREMOVE=1\nFDNAME=", fdname);
    (void)sd_pid_notify_with_fds(0, /*unset_environment=*/0, state.c_str(), nullptr, 0);
  }
  return static_cast<int>(names.size());
}

}  // namespace seccomp_agent::holder
