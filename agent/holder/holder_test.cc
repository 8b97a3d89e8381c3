// The holder protocol against real seccomp listeners, and what the kernel
// does with notifications while no supervisor is reading.
#include "agent/holder/holder.h"

#include <linux/seccomp.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <atomic>
#include <map>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "agent/common/fd.h"
#include "agent/seccomp/unotify.h"
#include "agent/testing/trapped_child.h"
#include "agent/testing/wait.h"
#include "gtest/gtest.h"

namespace seccomp_agent::holder {
namespace {

using seccomp_agent::testing::TrappedChild;
using seccomp_agent::testing::WaitFor;

constexpr long kAnswer = 42;

// The child's body: getppid must return kAnswer (the supervisor's spoofed
// value), never ENOSYS.
int GetppidIsAnswer() {
  long r = syscall(SYS_getppid);
  if (r == kAnswer) return 0;
  if (r < 0 && errno == ENOSYS) return 38;
  return 1;
}

bool WaitReadable(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, ms) > 0 && (p.revents & POLLIN);
}

absl::StatusOr<seccomp_notif> Recv(int listener) {
  seccomp_notif n{};
  if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &n) != 0)
    return absl::InternalError(strerror(errno));
  return n;
}

int Answer(int listener, uint64_t id, long val) {
  seccomp_notif_resp r{};
  r.id = id;
  r.val = val;
  return ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &r) == 0 ? 0 : errno;
}

int IdValid(int listener, uint64_t id) {
  return ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0 ? 0 : errno;
}

class HolderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sa-holder-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/holder.sock";
    auto s = HolderServer::Bind(path_);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
    stop_.reset(eventfd(0, EFD_CLOEXEC));
    thread_ = std::thread([this] { serve_result_ = server_->Serve(stop_.get()); });
  }
  void TearDown() override {
    if (thread_.joinable()) StopServer();
    server_.reset();
    std::system(("rm -rf " + dir_).c_str());
  }
  void StopServer() {
    uint64_t one = 1;
    ASSERT_EQ(write(stop_.get(), &one, sizeof(one)), 8);
    thread_.join();
  }
  ContainerInfo Info(const std::string& id, pid_t pid) {
    ContainerInfo i;
    i.id = id;
    i.init_pid = pid;
    i.bundle = "/b/" + id;
    i.annotations = {{"a", "1"}, {"io.kubernetes.pod.name", "p"}};
    i.metadata = "meta";
    i.runtime = "runc";
    i.pod_name = "p";
    return i;
  }

  std::string dir_, path_;
  std::string serve_result_;  // what Serve returned (after thread_ ends)
  std::unique_ptr<HolderServer> server_;
  UniqueFd stop_;
  std::thread thread_;
};

// Orphan recovery finds waiting tasks by the function wchan names; on a
// kernel with kallsyms (this host's) a sleeping thread names one, and
// WchanNamesFunctions says so (without it the agent warns after a restore).
TEST(Wchan, ASleepingThreadNamesItsFunction) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  std::atomic<pid_t> tid{0};
  std::thread sleeper([&] {
    tid = static_cast<pid_t>(syscall(SYS_gettid));
    char c;
    (void)read(p[0], &c, 1);
  });
  ASSERT_TRUE(WaitFor([&] {
    return tid.load() != 0 && !WchanOf(tid).empty() && WchanOf(tid) != "0";
  })) << "wchan of a thread blocked in read(2): \""
      << WchanOf(tid) << "\"";
  EXPECT_TRUE(WchanNamesFunctions());
  ASSERT_EQ(write(p[1], "x", 1), 1);
  sleeper.join();
  close(p[0]);
  close(p[1]);
}

TEST_F(HolderTest, InfoRoundTripsThroughJson) {
  ContainerInfo i = Info("c1", 77);
  auto back = InfoFromJson(InfoToJson(i));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->id, "c1");
  EXPECT_EQ(back->init_pid, 77);
  EXPECT_EQ(back->bundle, "/b/c1");
  EXPECT_EQ(back->annotations, i.annotations);
  EXPECT_EQ(back->metadata, "meta");
  EXPECT_EQ(back->runtime, "runc");
  EXPECT_EQ(back->pod_name, "p");
  EXPECT_FALSE(InfoFromJson("{}").ok());
  EXPECT_FALSE(InfoFromJson("[").ok());
  EXPECT_EQ(HolderKey(i), "c1/77");
}

TEST_F(HolderTest, SecondHolderOnTheSamePathIsRefused) {
  auto again = HolderServer::Bind(path_);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists) << again.status();
}

TEST_F(HolderTest, PutListDelAndAPutWithoutAListenerIsRefused) {
  auto child = TrappedChild::Spawn({"getppid"}, GetppidIsAnswer);
  ASSERT_TRUE(child.ok()) << child.status();
  auto client = HolderClient::Connect(path_);
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE((*client)->Put(Info("c1", child->pid()), child->listener()).ok());
  // A pipe is not a listener.
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  UniqueFd r(p[0]), w(p[1]);
  EXPECT_FALSE((*client)->Put(Info("bad", 1), r.get()).ok());

  auto list = (*client)->List();
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].key, absl::StrCat("c1/", child->pid()));
  EXPECT_EQ((*list)[0].info.bundle, "/b/c1");
  EXPECT_TRUE(CheckIsListener((*list)[0].listener.get()).ok());

  // The copy from LIST is the same listener: it receives the child's call.
  child->Start();
  ASSERT_TRUE(WaitReadable((*list)[0].listener.get(), 30000));
  auto n = Recv((*list)[0].listener.get());
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(Answer((*list)[0].listener.get(), n->id, kAnswer), 0);
  EXPECT_EQ(child->Wait(), 0);

  (*client)->Del(Info("c1", child->pid()));
  auto empty = (*client)->List();
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

// The agent's clean stop: a holder that keeps a container stays (and says
// how many and its pid); an empty one exits, and the client does not call
// that "gone".
TEST_F(HolderTest, CleanStopEndsOnlyAnEmptyHolder) {
  auto child = TrappedChild::Spawn({"getppid"}, [] { return 0; });
  ASSERT_TRUE(child.ok()) << child.status();
  auto client = HolderClient::Connect(path_);
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE((*client)->Put(Info("c1", child->pid()), child->listener()).ok());
  auto kept = (*client)->QuitIfEmpty();
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_FALSE(kept->quit);
  EXPECT_EQ(kept->entries, 1u);
  EXPECT_EQ(kept->pid, getpid()) << "the holder runs in this process's thread";
  EXPECT_TRUE((*client)->alive());
  auto list = (*client)->List();
  ASSERT_TRUE(list.ok()) << "a holder that keeps containers serves on";

  (*client)->Del(Info("c1", child->pid()));
  auto quit = (*client)->QuitIfEmpty();
  ASSERT_TRUE(quit.ok()) << quit.status();
  EXPECT_TRUE(quit->quit);
  EXPECT_EQ(quit->entries, 0u);
  thread_.join();  // Serve returned by itself
  EXPECT_EQ(serve_result_, "the agent stopped with no containers left");
  EXPECT_FALSE((*client)->alive());
}

TEST_F(HolderTest, HolderDropsAnEntryWhenTheTasksAreGone) {
  auto child = TrappedChild::Spawn({"getppid"}, [] { return 0; });
  ASSERT_TRUE(child.ok()) << child.status();
  auto client = HolderClient::Connect(path_);
  ASSERT_TRUE(client.ok());
  UniqueFd mine = child->TakeListener();
  ASSERT_TRUE((*client)->Put(Info("gone", child->pid()), mine.get()).ok());
  mine.reset();
  child->Start();
  EXPECT_EQ(child->Wait(), 0);
  size_t left = 1;
  EXPECT_TRUE(WaitFor([&] {
    auto l = (*client)->List();
    left = l.ok() ? l->size() : left;
    return left == 0;
  })) << "holder kept a listener whose tasks exited";
}

// The core property: the supervisor dies (its copy closes) while the
// holder keeps one; the task waits instead of getting ENOSYS, and a new
// supervisor answers it after LIST.
TEST_F(HolderTest, TaskWaitsWhileNoSupervisorAndTheNextOneAnswers) {
  auto child = TrappedChild::Spawn({"getppid"}, GetppidIsAnswer);
  ASSERT_TRUE(child.ok()) << child.status();
  {
    auto old_agent = HolderClient::Connect(path_);
    ASSERT_TRUE(old_agent.ok());
    UniqueFd mine = child->TakeListener();
    ASSERT_TRUE((*old_agent)->Put(Info("c", child->pid()), mine.get()).ok());
  }  // the "agent" is gone: its listener copy and connection closed
  child->Start();
  // Trapped with no supervisor: it waits in the kernel (no ENOSYS).
  EXPECT_TRUE(WaitFor([&] { return WchanOf(child->pid()).find("seccomp") != std::string::npos; }))
      << "wchan: " << WchanOf(child->pid());
  int st;
  EXPECT_EQ(waitpid(child->pid(), &st, WNOHANG), 0) << "task did not wait for a supervisor";
  auto new_agent = HolderClient::Connect(path_);
  ASSERT_TRUE(new_agent.ok());
  auto list = (*new_agent)->List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  int l = (*list)[0].listener.get();
  ASSERT_TRUE(WaitReadable(l, 30000));
  auto n = Recv(l);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(Answer(l, n->id, kAnswer), 0);
  EXPECT_EQ(child->Wait(), 0);
}

// A notification the old supervisor RECV'd but never answered stays in the
// kernel in SENT state: NOTIF_RECV never returns it again (the listener is
// not even readable for it), but it is still answerable BY ID: ID_VALID says
// yes and SEND with that id completes the syscall. Ids are sequential per
// filter (random start), so the next notification's id is old + 1.
TEST_F(HolderTest, ReceivedButUnansweredNotificationIsOnlyReachableById) {
  // Two tasks in one filter: the first traps at once, the second when the
  // test writes `second_go`.
  UniqueFd second_go(eventfd(0, EFD_CLOEXEC));
  ASSERT_TRUE(second_go);
  auto child = TrappedChild::Spawn({"getppid"}, [go = second_go.get()] {
    pid_t g = fork();
    if (g == 0) {
      uint64_t v;
      while (read(go, &v, sizeof(v)) < 0 && errno == EINTR) {
      }
      _exit(GetppidIsAnswer());
    }
    int mine = GetppidIsAnswer();
    int st = 0;
    waitpid(g, &st, 0);
    int theirs = WIFEXITED(st) ? WEXITSTATUS(st) : 100;
    return mine * 10 + theirs;
  });
  ASSERT_TRUE(child.ok()) << child.status();
  uint64_t lost_id = 0;
  {
    auto old_agent = HolderClient::Connect(path_);
    ASSERT_TRUE(old_agent.ok());
    UniqueFd mine = child->TakeListener();
    ASSERT_TRUE((*old_agent)->Put(Info("c", child->pid()), mine.get()).ok());
    child->Start();
    ASSERT_TRUE(WaitReadable(mine.get(), 30000));
    auto n = Recv(mine.get());
    ASSERT_TRUE(n.ok());
    lost_id = n->id;
    // ... and the supervisor "dies" before answering.
  }
  auto new_agent = HolderClient::Connect(path_);
  ASSERT_TRUE(new_agent.ok());
  auto list = (*new_agent)->List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  int l = (*list)[0].listener.get();
  // Re-RECV does not return the SENT notification: only the second task's
  // makes the listener readable.
  EXPECT_FALSE(WaitReadable(l, 0)) << "the received notification came back";
  EXPECT_EQ(IdValid(l, lost_id), 0) << "SENT notification no longer valid";
  uint64_t one = 1;
  ASSERT_EQ(write(second_go.get(), &one, sizeof(one)), static_cast<ssize_t>(sizeof(one)));
  ASSERT_TRUE(WaitReadable(l, 30000));
  auto second = Recv(l);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->id, lost_id + 1) << "ids are not sequential";
  RecordProperty("next_id_minus_lost_id", std::to_string(second->id - lost_id));
  EXPECT_EQ(Answer(l, second->id, kAnswer), 0);
  // The lost one, answered by its id (known here; a restarted agent only
  // knows it if it probes below the first id it sees).
  EXPECT_EQ(Answer(l, lost_id, kAnswer), 0);
  EXPECT_EQ(IdValid(l, lost_id), ENOENT);
  EXPECT_EQ(child->Wait(), 0);
}

// The way out for such an orphan: SIGSTOP + SIGCONT interrupts the task's
// wait (-ERESTARTSYS, no handler runs), the syscall restarts and traps
// again with a NEW id that any supervisor RECVs. Found by wchan.
TEST_F(HolderTest, StopContRestartsAnOrphanedNotificationWithANewId) {
  auto child = TrappedChild::Spawn({"getppid"}, GetppidIsAnswer);
  ASSERT_TRUE(child.ok()) << child.status();
  uint64_t lost_id = 0;
  {
    auto old_agent = HolderClient::Connect(path_);
    ASSERT_TRUE(old_agent.ok());
    UniqueFd mine = child->TakeListener();
    ASSERT_TRUE((*old_agent)->Put(Info("c", child->pid()), mine.get()).ok());
    child->Start();
    ASSERT_TRUE(WaitReadable(mine.get(), 30000));
    auto n = Recv(mine.get());
    ASSERT_TRUE(n.ok());
    lost_id = n->id;
  }
  auto new_agent = HolderClient::Connect(path_);
  ASSERT_TRUE(new_agent.ok());
  auto list = (*new_agent)->List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  int l = (*list)[0].listener.get();
  EXPECT_FALSE(WaitReadable(l, 0)) << "the received notification came back";
  // The RECV may come before the task is asleep in its wait (wchan "0"
  // while it still runs on the other CPU): wait until it is.
  std::vector<pid_t> waiting;
  WaitFor([&] {
    waiting = TasksWaitingOnSeccompNotification(child->pid());
    return !waiting.empty();
  });
  RecordProperty("wchan_of_orphan", WchanOf(child->pid()));
  ASSERT_EQ(waiting.size(), 1u) << "wchan: " << WchanOf(child->pid());
  // An orphan never wakes: a later look sees the same switch count.
  const std::map<pid_t, uint64_t> waits = SeccompWaits(child->pid());
  ASSERT_EQ(waits.size(), 1u);
  EXPECT_EQ(SeccompWaits(child->pid()), waits);
  EXPECT_EQ(RestartWaitingSyscalls(child->pid()), 1);
  ASSERT_TRUE(WaitReadable(l, 30000)) << "the syscall did not trap again";
  auto again = Recv(l);
  ASSERT_TRUE(again.ok());
  EXPECT_NE(again->id, lost_id);
  EXPECT_EQ(IdValid(l, lost_id), ENOENT);
  // The restarted syscall waits anew: another switch count.
  std::map<pid_t, uint64_t> anew;
  EXPECT_TRUE(WaitFor([&] {
    anew = SeccompWaits(child->pid());
    return anew.size() == 1;
  }));
  EXPECT_NE(anew, waits);
  EXPECT_EQ(Answer(l, again->id, kAnswer), 0);
  EXPECT_EQ(child->Wait(), 0);
}

TEST_F(HolderTest, ClientNoticesTheHolderDying) {
  auto client = HolderClient::Connect(path_);
  ASSERT_TRUE(client.ok());
  EXPECT_TRUE((*client)->alive());
  StopServer();
  server_.reset();  // closes the listening socket; the connection is closed by the thread's exit
  EXPECT_TRUE(WaitFor([&] { return !(*client)->alive(); }));
  EXPECT_FALSE((*client)->List().ok());
}

}  // namespace
}  // namespace seccomp_agent::holder
