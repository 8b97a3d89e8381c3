// systemd fd-store mode: systemd itself keeps a copy of every served
// listener across agent restarts (sd_notify(3) FDSTORE=1, handed back at the
// next start through LISTEN_FDS / LISTEN_FDNAMES, sd_listen_fds_with_names(3)).
//
// Per container, ONE notify datagram carries TWO fds under one name:
//   "FDSTORE=1\nFDNAME=sa-ctr-<id>.<pid>.<hash>"  + [metadata memfd, listener]
// The memfd holds {"v":1,"key":"<id>/<pid>","info":{ContainerInfo}} and is
// sealed (no write, grow, shrink, or further seals) before it is sent. One
// datagram means a kill can never leave a listener stored without its
// metadata (or the reverse) because of the agent; removal is one
// "FDSTOREREMOVE=1\nFDNAME=<same name>", which drops both.
//
// At start, entries come back by name; the two fds are told apart by kind
// (`anon_inode:seccomp notify` vs a sealed memfd). systemd keeps the fds it
// passed at start in its store (they are not consumed), so a restored entry
// is NOT sent again. Half entries are removed from the store: a memfd alone
// (systemd dropped the listener on POLLHUP: the container exited while no
// agent ran) silently; a listener without readable metadata with an error
// (its container then gets ENOSYS: nothing can serve it correctly).
#ifndef SECCOMP_AGENT_HOLDER_FDSTORE_H_
#define SECCOMP_AGENT_HOLDER_FDSTORE_H_

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/common/fd.h"
#include "agent/holder/listener_store.h"
#include "agent/model/event.h"

namespace seccomp_agent::holder {

// Prefix of every FDNAME this agent stores.
inline constexpr char kFdStoreNamePrefix[] = "sa-ctr-";

// An fd passed at start with its LISTEN_FDNAMES name.
struct NamedFd {
  std::string name;
  UniqueFd fd;
};

// Takes every fd the service manager passed (sd_listen_fds_with_names,
// unsetting LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES; the fds get FD_CLOEXEC),
// in fd order. Fds without a name are named "unknown" (as systemd does).
std::vector<NamedFd> TakeListenFds();

// Moves the fds whose names carry kFdStoreNamePrefix out of `fds`.
std::vector<NamedFd> SplitFdStoreEntries(std::vector<NamedFd>* fds);

// The FDNAME of a container: kFdStoreNamePrefix, the id reduced to
// [A-Za-z0-9._-] (others become '_', at most 200 chars), ".<init pid>" and
// ".<16 hex digits of a hash of HolderKey>" (ids that sanitize alike stay
// apart). Always a valid systemd fd name (printable ASCII, no ':', <= 255).
std::string FdStoreName(const ContainerInfo& info);
// systemd's fdname_is_valid().
bool FdNameIsValid(const std::string& name);

// A sealed memfd with `text`, and reading one back (fails unless sealed
// against writes).
absl::StatusOr<UniqueFd> SealedMemfd(const std::string& text);
absl::StatusOr<std::string> ReadSealedMemfd(int fd);

// Removes `entries` from systemd's store unrestored (FDSTOREREMOVE=1 per
// name; for a mode that does not use the store) and closes them. Returns
// how many names.
int DiscardFdStoreEntries(std::vector<NamedFd> entries);

class SystemdFdStore : public ListenerStore {
 public:
  // `passed`: this agent's entries from LISTEN_FDS (SplitFdStoreEntries).
  // Without NOTIFY_SOCKET the store is not alive (logged once); entries
  // passed in are still listed.
  explicit SystemdFdStore(std::vector<NamedFd> passed);

  const char* name() const override { return "systemd fd store"; }
  // The entries passed at start (once). Half entries are removed from the
  // store and logged.
  absl::StatusOr<std::vector<StoredListener>> List() override;
  // FDSTORE=1 of [sealed metadata memfd, listener] under FdStoreName(info).
  absl::Status Put(const ContainerInfo& info, int listener) override;
  // FDSTOREREMOVE=1 of the container's name.
  void Del(const ContainerInfo& info) override;
  bool alive() const override { return alive_.load(); }

 private:
  // sd_pid_notify_with_fds(0, 0, state, fds, n); the first failure marks the
  // store gone: "systemd fd store unavailable: restarts will lose containers".
  absl::Status Notify(const std::string& state, const int* fds, unsigned n);  // mu_ held
  void Remove(const std::string& fdname);                                     // mu_ held

  std::mutex mu_;
  std::vector<NamedFd> passed_;
  std::map<std::string, std::string> names_;  // HolderKey -> FDNAME in the store
  std::atomic<bool> alive_{true};
};

}  // namespace seccomp_agent::holder

#endif  // SECCOMP_AGENT_HOLDER_FDSTORE_H_
