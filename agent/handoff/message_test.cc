#include "agent/handoff/message.h"

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace seccomp_agent {
namespace {

using nlohmann::json;

// runc 1.1.5 (Go encoding/json): compact, no trailing newline, ociVersion
// "1.0.2-dev"; containerd's CRI annotations.
constexpr char kRuncSample[] =
    R"({"ociVersion":"1.0.2-dev","fds":["seccompFd"],"pid":31337,"metadata":"profile=web",)"
    R"("state":{"ociVersion":"1.0.2-dev","id":"f3a1c0de","status":"creating","pid":31337,)"
    R"("bundle":"/run/containerd/io.containerd.runtime.v2.task/k8s.io/f3a1c0de",)"
    R"("annotations":{"io.kubernetes.cri.container-type":"container",)"
    R"("io.kubernetes.cri.sandbox-namespace":"shop","io.kubernetes.cri.sandbox-name":"web-7d9f",)"
    R"("io.kubernetes.cri.container-name":"nginx"}}})";

// crun 1.8.1 (yajl, beautified): pretty-printed, trailing newline, ociVersion
// "0.2.0"; CRI-O's annotations.
constexpr char kCrunSample[] = R"({
    "ociVersion": "0.2.0",
    "fds": [
        "seccompFd"
    ],
    "pid": 4242,
    "metadata": "crun-meta",
    "state": {
        "ociVersion": "0.2.0",
        "id": "crun-ctr-1",
        "status": "creating",
        "pid": 4242,
        "bundle": "/var/lib/containers/storage/overlay-containers/crun-ctr-1/userdata",
        "annotations": {
            "io.kubernetes.pod.namespace": "kube-system",
            "io.kubernetes.pod.name": "coredns-5d78c9869d-abcde",
            "io.kubernetes.container.name": "coredns"
        }
    }
}
)";

// A plain runc run with no listenerMetadata and no annotations: both absent.
constexpr char kRuncMinimal[] =
    R"({"ociVersion":"1.0.2-dev","fds":["seccompFd"],"pid":77,)"
    R"("state":{"ociVersion":"1.0.2-dev","id":"plain","status":"creating","pid":77,"bundle":"/b"}})";

RejectReason ReasonOf(const std::string& text, size_t fds) {
  RejectReason r = RejectReason::kCount;
  auto info = ParseRuntimeMessage(text, fds, &r);
  EXPECT_FALSE(info.ok()) << text;
  return r;
}

TEST(ParseRuntimeMessageTest, RuncCompactSample) {
  auto info = ParseRuntimeMessage(kRuncSample, 1);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->id, "f3a1c0de");
  EXPECT_EQ(info->init_pid, 31337);
  EXPECT_EQ(info->bundle, "/run/containerd/io.containerd.runtime.v2.task/k8s.io/f3a1c0de");
  EXPECT_EQ(info->metadata, "profile=web");
  EXPECT_EQ(info->runtime, "runc");
  EXPECT_EQ(info->pod_namespace, "shop");
  EXPECT_EQ(info->pod_name, "web-7d9f");
  EXPECT_EQ(info->container_name, "nginx");
  EXPECT_EQ(info->annotations.size(), 4u);
  EXPECT_EQ(info->annotations.at("io.kubernetes.cri.container-type"), "container");
}

TEST(ParseRuntimeMessageTest, CrunPrettySampleWithTrailingNewline) {
  auto info = ParseRuntimeMessage(kCrunSample, 1);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->id, "crun-ctr-1");
  EXPECT_EQ(info->init_pid, 4242);
  EXPECT_EQ(info->bundle, "/var/lib/containers/storage/overlay-containers/crun-ctr-1/userdata");
  EXPECT_EQ(info->metadata, "crun-meta");
  EXPECT_EQ(info->runtime, "crun");
  EXPECT_EQ(info->pod_namespace, "kube-system");
  EXPECT_EQ(info->pod_name, "coredns-5d78c9869d-abcde");
  EXPECT_EQ(info->container_name, "coredns");
}

TEST(ParseRuntimeMessageTest, OptionalFieldsAbsent) {
  auto info = ParseRuntimeMessage(kRuncMinimal, 1);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->id, "plain");
  EXPECT_EQ(info->metadata, "");
  EXPECT_TRUE(info->annotations.empty());
  EXPECT_EQ(info->pod_namespace, "");
  EXPECT_EQ(info->pod_name, "");
  EXPECT_EQ(info->container_name, "");
  EXPECT_EQ(info->runtime, "runc");
}

TEST(ParseRuntimeMessageTest, CrioAnnotationsWinOverContainerd) {
  json j = json::parse(kRuncSample);
  j["state"]["annotations"]["io.kubernetes.pod.namespace"] = "crio-ns";
  auto info = ParseRuntimeMessage(j.dump(), 1);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->pod_namespace, "crio-ns");
  EXPECT_EQ(info->pod_name, "web-7d9f");  // only containerd's is present
}

TEST(ParseRuntimeMessageTest, RuntimeHeuristicNeedsBothSignals) {
  EXPECT_EQ(GuessRuntime("0.2.0", true), "crun");
  EXPECT_EQ(GuessRuntime("1.0.2-dev", false), "runc");
  EXPECT_EQ(GuessRuntime("0.2.0", false), "unknown");
  EXPECT_EQ(GuessRuntime("1.0.2-dev", true), "unknown");
  EXPECT_EQ(GuessRuntime("1.2.0", false), "unknown");
  // A compact message claiming crun's version.
  json j = json::parse(kRuncSample);
  j["ociVersion"] = "0.2.0";
  auto info = ParseRuntimeMessage(j.dump(), 1);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->runtime, "unknown");
  // The crun sample re-serialised compactly.
  info = ParseRuntimeMessage(json::parse(kCrunSample).dump(), 1);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->runtime, "unknown");
}

TEST(ParseRuntimeMessageTest, MissingRequiredFieldsAreRefused) {
  const std::vector<std::vector<std::string>> paths = {
      {"ociVersion"},
      {"fds"},
      {"pid"},
      {"state"},
      {"state", "id"},
      {"state", "pid"},
      {"state", "bundle"},
      {"state", "status"},
  };
  for (const auto& path : paths) {
    json j = json::parse(kRuncSample);
    if (path.size() == 1) {
      j.erase(path[0]);
    } else {
      j[path[0]].erase(path[1]);
    }
    RejectReason r = RejectReason::kCount;
    auto info = ParseRuntimeMessage(j.dump(), 1, &r);
    ASSERT_FALSE(info.ok()) << path.back();
    EXPECT_EQ(r, RejectReason::kInvalidMessage) << path.back();
    EXPECT_NE(info.status().message().find("missing field"), absl::string_view::npos)
        << info.status();
    EXPECT_NE(info.status().message().find(path.back()), absl::string_view::npos) << info.status();
  }
}

TEST(ParseRuntimeMessageTest, WrongTypesAreRefused) {
  struct Case {
    const char* what;
    std::function<void(json&)> mutate;
  };
  const std::vector<Case> cases = {
      {"ociVersion number", [](json& j) { j["ociVersion"] = 1; }},
      {"fds string", [](json& j) { j["fds"] = "seccompFd"; }},
      {"fds holds number", [](json& j) { j["fds"] = json::array({3}); }},
      {"pid string", [](json& j) { j["pid"] = "31337"; }},
      {"pid float", [](json& j) { j["pid"] = 31337.5; }},
      {"pid zero", [](json& j) { j["pid"] = 0; }},
      {"pid negative", [](json& j) { j["pid"] = -5; }},
      {"pid huge", [](json& j) { j["pid"] = 1ULL << 40; }},
      {"metadata object", [](json& j) { j["metadata"] = json::object(); }},
      {"state array", [](json& j) { j["state"] = json::array(); }},
      {"state.id number", [](json& j) { j["state"]["id"] = 7; }},
      {"state.id empty", [](json& j) { j["state"]["id"] = ""; }},
      {"state.id newline", [](json& j) { j["state"]["id"] = "a\nhandoff rejected: forged"; }},
      {"state.id too long", [](json& j) { j["state"]["id"] = std::string(1025, 'a'); }},
      {"state.pid string", [](json& j) { j["state"]["pid"] = "1"; }},
      {"state.bundle null", [](json& j) { j["state"]["bundle"] = nullptr; }},
      {"state.status bool", [](json& j) { j["state"]["status"] = true; }},
      {"state.ociVersion number", [](json& j) { j["state"]["ociVersion"] = 2; }},
      {"annotations array", [](json& j) { j["state"]["annotations"] = json::array(); }},
      {"annotation value number", [](json& j) { j["state"]["annotations"]["x"] = 1; }},
  };
  for (const auto& c : cases) {
    json j = json::parse(kRuncSample);
    c.mutate(j);
    EXPECT_EQ(ReasonOf(j.dump(), 1), RejectReason::kInvalidMessage) << c.what;
  }
}

TEST(ParseRuntimeMessageTest, FdCountMustBeOne) {
  EXPECT_EQ(ReasonOf(kRuncSample, 0), RejectReason::kFdCount);
  EXPECT_EQ(ReasonOf(kRuncSample, 2), RejectReason::kFdCount);
  auto info = ParseRuntimeMessage(kRuncSample, 0);
  EXPECT_NE(info.status().message().find("received 0"), absl::string_view::npos) << info.status();
}

TEST(ParseRuntimeMessageTest, FdNamesMustMatchReceivedFds) {
  const std::vector<json> bad = {
      json::array(),
      json::array({"otherFd"}),
      json::array({"seccompFd", "seccompFd"}),
      json::array({"seccompFd", "extraFd"}),
  };
  for (const json& fds : bad) {
    json j = json::parse(kRuncSample);
    j["fds"] = fds;
    EXPECT_EQ(ReasonOf(j.dump(), 1), RejectReason::kFdNames) << fds.dump();
  }
}

TEST(ParseRuntimeMessageTest, MalformedJsonIsRefused) {
  EXPECT_EQ(ReasonOf("hello", 1), RejectReason::kMalformedJson);
  EXPECT_EQ(ReasonOf(R"({"ociVersion":)", 1), RejectReason::kMalformedJson);
  EXPECT_EQ(ReasonOf(R"(["seccompFd"])", 1), RejectReason::kMalformedJson);
  EXPECT_EQ(ReasonOf(std::string(kRuncMinimal) + "{}", 1), RejectReason::kMalformedJson);
  EXPECT_EQ(ReasonOf("{\"a\":\"\xff\xfe\"}", 1), RejectReason::kMalformedJson);  // bad UTF-8
}

TEST(ParseRuntimeMessageTest, DuplicateKeysAreRefused) {
  const std::string twice =
      R"({"ociVersion":"1.0.2-dev","fds":["seccompFd"],"pid":77,"pid":78,)"
      R"("state":{"ociVersion":"1.0.2-dev","id":"a","status":"creating","pid":77,"bundle":"/b"}})";
  RejectReason r = RejectReason::kCount;
  auto info = ParseRuntimeMessage(twice, 1, &r);
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(r, RejectReason::kInvalidMessage);
  EXPECT_NE(info.status().message().find("duplicate key \"pid\""), absl::string_view::npos);
  // Same key in different objects is fine ("pid" at top level and in state).
  EXPECT_TRUE(ParseRuntimeMessage(kRuncMinimal, 1).ok());
}

TEST(JsonFramerTest, FindsEndOfCompactAndPrettyMessages) {
  JsonFramer compact;
  EXPECT_EQ(compact.Scan(kRuncSample), JsonFramer::State::kComplete);
  EXPECT_EQ(compact.end(), std::string(kRuncSample).size());

  JsonFramer pretty;
  const std::string crun = kCrunSample;
  EXPECT_EQ(pretty.Scan(crun), JsonFramer::State::kComplete);
  EXPECT_EQ(pretty.end(), crun.size() - 1);  // the trailing newline is after the value
}

TEST(JsonFramerTest, ByteByByteNeedsMoreUntilTheLastBrace) {
  const std::string msg = kCrunSample;
  JsonFramer f;
  std::string buf;
  for (size_t i = 0; i < msg.size(); ++i) {
    buf.push_back(msg[i]);
    JsonFramer::State s = f.Scan(buf);
    if (i + 2 < msg.size()) {
      ASSERT_EQ(s, JsonFramer::State::kNeedMore) << "at byte " << i;
    } else if (i + 2 == msg.size()) {
      ASSERT_EQ(s, JsonFramer::State::kComplete);
      EXPECT_EQ(f.end(), msg.size() - 1);
    }
  }
}

TEST(JsonFramerTest, BracketsInsideStringsDoNotCount) {
  const std::string msg = R"({"a":"}}]]{\"\\","b":["}"]})";
  JsonFramer f;
  EXPECT_EQ(f.Scan(msg.substr(0, msg.size() - 1)), JsonFramer::State::kNeedMore);
  EXPECT_EQ(f.Scan(msg), JsonFramer::State::kComplete);
  EXPECT_EQ(f.end(), msg.size());
  EXPECT_TRUE(json::accept(msg));
}

TEST(JsonFramerTest, RejectsNonObjectStartAndDeepNesting) {
  JsonFramer f;
  EXPECT_EQ(f.Scan("  \n GET / HTTP/1.0"), JsonFramer::State::kError);
  EXPECT_NE(f.error().find("does not start with a JSON object"), std::string::npos);

  JsonFramer deep;
  std::string nested = "{\"a\":" + std::string(100, '[');
  EXPECT_EQ(deep.Scan(nested), JsonFramer::State::kError);
  EXPECT_NE(deep.error().find("nested deeper"), std::string::npos);

  JsonFramer ws;
  EXPECT_EQ(ws.Scan("\n  "), JsonFramer::State::kNeedMore);
}

TEST(RejectReasonTest, NamesAreDistinct) {
  std::set<std::string> names;
  for (int i = 0; i < kRejectReasonCount; ++i) {
    names.insert(RejectReasonName(static_cast<RejectReason>(i)));
  }
  EXPECT_EQ(names.size(), static_cast<size_t>(kRejectReasonCount));
  EXPECT_EQ(names.count("unknown"), 0u);
}

}  // namespace
}  // namespace seccomp_agent
