// The hook protocol: message validation, reply format, and a real
// HookServer / SendHookRequest exchange over a unix socket.
#include "oci-hook/hook_protocol.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace seccomp_agent::hook {
namespace {

using ::testing::HasSubstr;

TEST(HookProtocolTest, ParsesAValidCreateRuntime) {
  auto r = ParseHookRequest(
      R"({"op":"createRuntime","id":"c1","pid":4194304,"bundle":"/b","annotations":{"a":"1"},"future":true})"
      "\n");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->op, HookOp::kCreateRuntime);
  EXPECT_EQ(r->id, "c1");
  EXPECT_EQ(r->pid, 4194304);
  EXPECT_EQ(r->bundle, "/b");
  EXPECT_EQ(r->annotations.at("a"), "1");
}

TEST(HookProtocolTest, AcceptsTheOpNameEarlierHooksSent) {
  auto r = ParseHookRequest(R"({"op":"prestart","id":"c1","pid":7})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->op, HookOp::kCreateRuntime);
  EXPECT_STREQ(HookOpName(r->op), "createRuntime");
  EXPECT_THAT(FormatHookRequest(*r), HasSubstr(R"("op":"createRuntime")"));
}

TEST(HookProtocolTest, FormatThenParseRoundTrips) {
  HookRequest r;
  r.op = HookOp::kPoststop;
  r.id = "ctr \"quoted\" \xc3\xa9";
  r.pid = 0;
  r.bundle = "/run/b";
  r.annotations = {{"x", "y"}, {"seccomp-agent.io/policy", "demo"}};
  const std::string line = FormatHookRequest(r);
  ASSERT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  auto back = ParseHookRequest(line);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->op, r.op);
  EXPECT_EQ(back->id, r.id);
  EXPECT_EQ(back->annotations, r.annotations);
}

TEST(HookProtocolTest, RefusesBadRequests) {
  struct C {
    const char* line;
    const char* want;
  };
  const C cases[] = {
      {"", "request:"},
      {"[1]", "expected a JSON object"},
      {R"({"id":"c","pid":1})", "op: required"},
      {R"({"op":"start","id":"c","pid":1})", "unknown op \"start\""},
      {R"({"op":"createRuntime","pid":1})", "id: required"},
      {R"({"op":"createRuntime","id":"","pid":1})", "id: must be 1..1024"},
      {R"({"op":"createRuntime","id":"a\u0001b","pid":1})", "without control characters"},
      {R"({"op":"createRuntime","id":"c"})", "createRuntime needs the container's host pid"},
      {R"({"op":"createRuntime","id":"c","pid":-5})", "pid: must be 0..4194304"},
      {R"({"op":"createRuntime","id":"c","pid":4194305})", "pid: must be 0..4194304"},
      {R"({"op":"createRuntime","id":"c","pid":1.5})", "pid: expected an integer"},
      {R"({"op":"poststop","id":"c","annotations":{"a":1}})",
       "annotations[\"a\"]: expected a string"},
      {R"({"op":"poststop","id":"c","id":"d"})", "duplicate key \"id\""},
      {"{\"op\":\"poststop\",\n\"id\":\"c\"}", "one line"},
  };
  for (const C& c : cases) {
    auto r = ParseHookRequest(c.line);
    ASSERT_FALSE(r.ok()) << c.line;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(c.want)) << c.line;
  }
  EXPECT_FALSE(ParseHookRequest(std::string(kMaxHookLineBytes + 1, ' ')).ok());
}

TEST(HookProtocolTest, Replies) {
  EXPECT_EQ(FormatHookReply(absl::OkStatus()), "{\"ok\":true}\n");
  EXPECT_EQ(FormatHookReply(absl::NotFoundError("no \"such\"")),
            "{\"ok\":false,\"error\":\"no \\\"such\\\"\"}\n");
  EXPECT_TRUE(ParseHookReply("{\"ok\":true}\n").ok());
  absl::Status s = ParseHookReply(FormatHookReply(absl::NotFoundError("nope")));
  EXPECT_TRUE(absl::IsFailedPrecondition(s));
  EXPECT_THAT(std::string(s.message()), HasSubstr("agent refused: nope"));
  EXPECT_FALSE(ParseHookReply("ok").ok());
  EXPECT_FALSE(ParseHookReply("{\"ok\":1}").ok());
}

TEST(HookProtocolTest, ListenerMetadata) {
  EXPECT_EQ(ListenerMetadataFor("demo"), "seccomp-agent.io/policy=demo");
  EXPECT_EQ(PolicyFromListenerMetadata("seccomp-agent.io/policy=demo"), "demo");
  EXPECT_EQ(PolicyFromListenerMetadata("seccomp-agent.io/policy="), std::nullopt);
  EXPECT_EQ(PolicyFromListenerMetadata("something else"), std::nullopt);
}

class Handler : public HookHandler {
 public:
  absl::Status Handle(const HookRequest& r, const PeerCred& peer) override {
    last = r;
    uid = peer.uid;
    pid = peer.pid;
    ++calls;
    return r.id == "refuse" ? absl::PermissionDeniedError("not today") : absl::OkStatus();
  }
  HookRequest last;
  uid_t uid = 99999;
  pid_t pid = 0;
  int calls = 0;
};

// A socket path in a fresh short directory (TEST_TMPDIR is too long for
// sun_path), removed with the directory at the end of the test.
class TempSocket {
 public:
  TempSocket() {
    char t[] = "/tmp/saadmXXXXXX";
    dir_ = mkdtemp(t);
    path_ = dir_ + "/hook.sock";
  }
  ~TempSocket() {
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }
  operator const std::string&() const { return path_; }

 private:
  std::string dir_, path_;
};

TEST(HookServerTest, ServesRequestsAndPassesPeerCredentials) {
  TempSocket tmp;
  const std::string& path = tmp;
  Handler h;
  auto server = HookServer::Start(path, &h);
  ASSERT_TRUE(server.ok()) << server.status();
  HookRequest r;
  r.op = HookOp::kCreateRuntime;
  r.id = "c1";
  r.pid = 77;
  EXPECT_TRUE(SendHookRequest(path, r, absl::Seconds(2)).ok());
  EXPECT_EQ(h.last.id, "c1");
  EXPECT_EQ(h.uid, getuid());
  EXPECT_EQ(h.pid, getpid());
  r.id = "refuse";
  absl::Status s = SendHookRequest(path, r, absl::Seconds(2));
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("not today"));
  // A malformed request gets ok:false and the server keeps serving.
  r.pid = 0;  // createRuntime without pid
  r.id = "c2";
  s = SendHookRequest(path, r, absl::Seconds(2));
  EXPECT_THAT(std::string(s.message()), HasSubstr("createRuntime needs the container's host pid"));
  EXPECT_EQ(h.calls, 2);
  server->reset();
  EXPECT_NE(access(path.c_str(), F_OK), 0);  // unlinked on stop
  // Down: kUnavailable, quickly.
  const absl::Time t0 = absl::Now();
  s = SendHookRequest(path, r, absl::Seconds(2));
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_LT(absl::Now() - t0, absl::Seconds(1));
}

TEST(HookServerTest, SilentClientIsCutOffAtTheTimeout) {
  TempSocket tmp;
  const std::string& path = tmp;
  Handler h;
  auto server = HookServer::Start(path, &h, absl::Milliseconds(200));
  ASSERT_TRUE(server.ok()) << server.status();
  UniqueFd c(socket(AF_UNIX, SOCK_STREAM, 0));
  sockaddr_un sa = {};
  sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path.c_str());
  ASSERT_EQ(connect(c.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  // Send half a line and stall: the server answers ok:false after 200 ms.
  ASSERT_EQ(write(c.get(), "{\"op\":", 6), 6);
  char buf[256] = {};
  const absl::Time t0 = absl::Now();
  ssize_t n = read(c.get(), buf, sizeof(buf) - 1);
  EXPECT_LT(absl::Now() - t0, absl::Seconds(2));
  ASSERT_GT(n, 0);
  EXPECT_THAT(std::string(buf), HasSubstr("\"ok\":false"));
  // And it still serves the next client.
  HookRequest r;
  r.op = HookOp::kPoststop;
  r.id = "after";
  EXPECT_TRUE(SendHookRequest(path, r, absl::Seconds(2)).ok());
  EXPECT_EQ(h.last.id, "after");
}

}  // namespace
}  // namespace seccomp_agent::hook
