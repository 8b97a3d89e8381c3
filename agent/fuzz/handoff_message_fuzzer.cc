// Fuzzes the runtime handoff's pure parts (agent/handoff/message.h): the
// JsonFramer and ParseRuntimeMessage, on bytes a local peer controls.
//
// Input: the bytes a peer sends. The first byte also picks how many fds
// "came" with the message (0..3; the real agent needs exactly 1) and how the
// stream is cut into chunks for the framer.
//
// Properties checked (besides ASan/UBSan):
//  * Framing is chunking-independent: scanning the stream in pieces gives the
//    same state and end as scanning it at once, and end() <= the buffer.
//  * A kComplete frame parses or is refused with a reason; never throws.
//  * An accepted message satisfies the documented contract (id non-empty,
//    <= 1024 bytes, no control chars; 0 < pid <= 4194304; runtime is one of
//    runc/crun/unknown; exactly one fd).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "agent/handoff/message.h"

namespace {

using seccomp_agent::JsonFramer;
using seccomp_agent::RejectReason;

void Check(bool ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "handoff_message_fuzzer: property violated: %s\n", what);
    abort();
  }
}

void CheckAccepted(const seccomp_agent::ContainerInfo& info, size_t fds) {
  Check(fds == 1, "accepted with fds != 1");
  Check(!info.id.empty() && info.id.size() <= 1024, "id size out of contract");
  for (unsigned char c : info.id) Check(c >= 0x20 && c != 0x7f, "id holds a control char");
  Check(info.init_pid > 0 && info.init_pid <= 4194304, "pid out of range");
  Check(info.runtime == "runc" || info.runtime == "crun" || info.runtime == "unknown",
        "runtime not runc/crun/unknown");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t ctl = data[0];
  const size_t fds = ctl & 3;
  const size_t chunk = 1 + (ctl >> 2);  // 1..64 bytes per recv
  absl::string_view stream(reinterpret_cast<const char*>(data) + 1, size - 1);

  // The whole stream at once.
  JsonFramer whole;
  const JsonFramer::State ws = whole.Scan(stream);

  // The same stream as a growing buffer, `chunk` bytes at a time, as the
  // server feeds it from recvmsg.
  JsonFramer parts;
  JsonFramer::State ps = JsonFramer::State::kNeedMore;
  for (size_t n = 0; n < stream.size() && ps == JsonFramer::State::kNeedMore;) {
    n = std::min(stream.size(), n + chunk);
    ps = parts.Scan(stream.substr(0, n));
  }
  Check(ps == ws, "chunked framing differs from whole framing");
  if (ws == JsonFramer::State::kComplete) {
    Check(whole.end() == parts.end(), "chunked frame end differs");
    Check(whole.end() >= 2 && whole.end() <= stream.size(), "frame end outside the buffer");
    Check(stream[whole.end() - 1] == '}' || stream[whole.end() - 1] == ']',
          "frame does not end on a bracket");
  }
  if (ws == JsonFramer::State::kError) Check(!whole.error().empty(), "error without text");

  // The parser on the framed value (what the server does) and on the raw
  // bytes (the parser must hold on its own, e.g. for trailing data).
  absl::string_view candidates[2] = {stream, stream.substr(0, whole.end())};
  const int n_candidates = ws == JsonFramer::State::kComplete ? 2 : 1;
  for (int i = 0; i < n_candidates; ++i) {
    RejectReason reason = RejectReason::kCount;
    auto info = seccomp_agent::ParseRuntimeMessage(candidates[i], fds, &reason);
    if (info.ok()) {
      CheckAccepted(*info, fds);
    } else {
      Check(reason != RejectReason::kCount, "refused without a reason");
      Check(!info.status().message().empty(), "refused without a message");
      Check(seccomp_agent::RejectReasonName(reason) != absl::string_view("unknown"),
            "reason has no name");
    }
  }
  return 0;
}
