// Keeps containers' seccomp listener fds alive across agent restarts.
//
// A holder is a tiny process (`seccomp-agent --holder`) that owns a copy of
// every listener the agent serves. While it holds a copy, the filter's
// listener stays open, so when the agent dies (kill -9 included) trapped
// syscalls wait in the kernel instead of failing with ENOSYS; the restarted
// agent takes the copies back (LIST) and answers them.
//
// Protocol: AF_UNIX SOCK_SEQPACKET at the holder socket (mode 0600; peers
// other than uid 0 or the holder's own euid are refused via SO_PEERCRED).
// Every message is one datagram of JSON (at most kMaxMessageBytes):
//   agent -> holder  {"op":"PUT","key":K,"info":{ContainerInfo}} + 1 fd
//                    (SCM_RIGHTS, must be "anon_inode:seccomp notify")
//                    reply {"ok":true} or {"ok":false,"error":"..."}
//   agent -> holder  {"op":"DEL","key":K}             no reply (fire and forget)
//   agent -> holder  {"op":"LIST"}                    replies: one
//                    {"op":"ENTRY","key":K,"info":{...}} + 1 fd per entry,
//                    then {"op":"END","count":N}
//   agent -> holder  {"op":"PING"}                    reply {"ok":true,"entries":N}
//   agent -> holder  {"op":"QUIT_IF_EMPTY"}           reply {"ok":true,"quit":B,
//                    "entries":N,"pid":P}; with no entries the holder exits
//                    (the agent's clean stop: nothing to keep)
// K is "<container id>/<init pid>" (HolderKey). PUT of an existing key
// replaces it. The holder drops an entry by itself when its listener hangs
// up (every task of the filter is gone), and it exits when its socket path
// is unlinked or replaced (nobody can reach it any more).
#ifndef SECCOMP_AGENT_HOLDER_HOLDER_H_
#define SECCOMP_AGENT_HOLDER_HOLDER_H_

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/common/fd.h"
#include "agent/common/unix_socket.h"
#include "agent/holder/listener_store.h"
#include "agent/model/event.h"
#include "nlohmann/json.hpp"

namespace seccomp_agent::holder {

inline constexpr size_t kMaxMessageBytes = 64 * 1024;

// "<id>/<init pid>": unique per registration of a container.
std::string HolderKey(const ContainerInfo& info);

// ContainerInfo <-> JSON text (all fields).
std::string InfoToJson(const ContainerInfo& info);
absl::StatusOr<ContainerInfo> InfoFromJson(const std::string& json_object_text);

// One datagram with at most one fd. RecvMessage returns an empty string and
// no error on EOF (peer closed); a received fd is MSG_CMSG_CLOEXEC.
absl::Status SendMessage(int sock, const std::string& text, int fd = -1, int flags = 0);
absl::StatusOr<std::pair<std::string, UniqueFd>> RecvMessage(int sock);

// /proc/<tid>/wchan ("" if unreadable).
std::string WchanOf(pid_t tid);
// Whether wchan names functions on this kernel: false when there is no
// /proc/PID/wchan or a sleeping thread of this process reads "0" (a kernel
// without CONFIG_KALLSYMS), where no task waiting on a notification can be
// recognised.
bool WchanNamesFunctions();
// Threads in the pid namespace of `init_pid` (the container) that sleep in
// seccomp_do_user_notification: waiting for a supervisor's answer.
std::vector<pid_t> TasksWaitingOnSeccompNotification(pid_t init_pid);
// The same threads, each with its voluntary context switch count: a thread
// that shows the same count at a later look has not slept anew in between,
// so it still waits on the same notification.
std::map<pid_t, uint64_t> SeccompWaits(pid_t init_pid);
// A notification the previous agent RECV'd but never answered stays SENT:
// NOTIF_RECV never returns it again and nothing can answer it without its
// id. This interrupts the waits of such threads' processes with SIGSTOP +
// SIGCONT: the wait ends with -ERESTARTSYS, no handler runs, so the syscall
// restarts and traps again with a new id. Returns the processes nudged.
// Caveats: the stop/continue is visible (a parent waiting with WUNTRACED /
// WCONTINUED sees it), and a side effect the old agent already carried out
// for that notification (an emulated write) may happen twice.
int RestartWaitingSyscalls(pid_t init_pid);
// The same for the processes of threads `tids` of that container only. The
// processes are signalled through pidfds opened and then checked to be in
// the container's pid namespace, so a recycled pid is never signalled.
int RestartSyscalls(pid_t init_pid, const std::vector<pid_t>& tids);

// The holder itself. Single-threaded poll loop.
class HolderServer {
 public:
  // Binds `path` (parent created 0755, socket 0600). A live holder already
  // answering there: AlreadyExists. A stale socket file is replaced.
  static absl::StatusOr<std::unique_ptr<HolderServer>> Bind(const std::string& path);

  // Serves until `stop_fd` (an eventfd, may be -1) is readable or the socket
  // path stops being ours. Returns the reason.
  std::string Serve(int stop_fd);

  size_t entry_count() const { return entry_count_.load(); }

 private:
  struct Entry {
    std::string info_json;
    UniqueFd listener;
  };
  HolderServer() = default;
  void HandleClient(int fd, bool* close_it);

  UnixListener listener_;  // unlinks the path on destruction while still ours
  std::map<std::string, Entry> entries_;
  std::atomic<size_t> entry_count_{0};
  bool quit_requested_ = false;
};

// `seccomp-agent --holder`: binds `path`, logs to stderr, serves forever.
// Exit code 0 when the socket path went away, 1 on bind failure.
int RunHolderMain(const std::string& path);

// Makes sure a holder answers at `path`: connects, and if nothing answers,
// starts `self_exe --holder --holder_socket=path` detached (double fork,
// setsid, stdin/stdout to /dev/null, stderr to `path`.log) and waits up to
// `timeout` for it to answer.
absl::Status EnsureHolderRunning(const std::string& path, const std::string& self_exe,
                                 absl::Duration timeout = absl::Seconds(3));

// The agent's side: one persistent connection; thread-safe.
class HolderClient : public ListenerStore {
 public:
  static absl::StatusOr<std::unique_ptr<HolderClient>> Connect(const std::string& path);
  ~HolderClient() override;

  using Stored = StoredListener;
  const char* name() const override { return "holder"; }
  // Every entry the holder keeps, each with a fresh copy of its listener.
  absl::StatusOr<std::vector<Stored>> List() override;
  // Stores a copy of `listener` (the holder receives its own reference).
  absl::Status Put(const ContainerInfo& info, int listener) override;
  // Forgets HolderKey(info); never blocks.
  void Del(const ContainerInfo& info) override;
  // The agent stops cleanly: a holder with no entries exits; one with
  // entries stays and the log says how to release them.
  void OnCleanStop() override;

  struct QuitReply {
    bool quit = false;   // the holder had no entries and exits
    size_t entries = 0;  // what it keeps otherwise
    int pid = 0;         // the holder's pid
  };
  absl::StatusOr<QuitReply> QuitIfEmpty();

  // False once the holder hung up (logged once:
  // "holder gone: restarts will lose containers").
  bool alive() const override { return alive_.load(); }

 private:
  using Message = std::pair<std::string, UniqueFd>;
  HolderClient() = default;
  void MarkGone(const std::string& why);  // mu_ held
  // The next message from the holder; EOF or an error marks it gone. mu_ held.
  absl::StatusOr<Message> Receive(const char* op);
  // Sends one request (with `fd` if >= 0) and returns the first reply. mu_ held.
  absl::StatusOr<Message> Exchange(const char* op, const std::string& text, int fd = -1);
  // Exchange whose reply must be a JSON object with "ok":true. mu_ held.
  absl::StatusOr<nlohmann::json> Request(const char* op, const std::string& text, int fd = -1);
  void Watch();

  std::string path_;
  std::mutex mu_;  // one request at a time
  UniqueFd sock_;
  std::atomic<bool> alive_{true};
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
  std::thread watcher_;
};

}  // namespace seccomp_agent::holder

#endif  // SECCOMP_AGENT_HOLDER_HOLDER_H_
