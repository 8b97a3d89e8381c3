// Fuzzes the plugin decision validator (agent/plugin/decision.h,
// ValidateDecision): a plugin is a separate process, so every Decision it
// returns is untrusted input.
//
// Input: one header line describing the trapped syscall,
//   "<syscall> <nr> <arch> <a0> <a1> <a2>\n"   (numbers in C syntax)
// then the Decision in protobuf text format; when that does not parse, the
// same bytes are tried as the binary wire format (what gRPC delivers).
// A header that does not parse leaves the defaults (openat, x86_64).
//
// Properties checked (besides ASan/UBSan):
//  * A valid `inject` converted the way agent/engine/action_router.cc does
//    also passes the injector's own validator (injector::Validate, kernel
//    rule set): the plugin validator never lets through what the injector
//    would refuse.
//  * A valid decision of any other kind obeys its documented limits (deny
//    errno 1..4095; return not -4095..-1; substitutions only for their
//    syscalls; known cache scope).
//  * BuildNotification and the cache keys do not crash on the same event.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "agent/injector/substitute.h"
#include "agent/plugin/decision.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace {

namespace v1 = ::seccompagent::v1;

void Check(bool ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "plugin_decision_fuzzer: property violated: %s\n", what);
    abort();
  }
}

// Silences protobuf's parse-error logging (one line per bad input).
class QuietErrors : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int, int, const std::string&) override {}
  void AddWarning(int, int, const std::string&) override {}
};

bool ParseU64(absl::string_view s, uint64_t* out) {
  int64_t i;
  if (absl::SimpleAtoi(s, &i)) {
    *out = static_cast<uint64_t>(i);
    return true;
  }
  return absl::SimpleHexAtoi(s, out) || absl::SimpleAtoi(s, out);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nl = input.find('\n');
  absl::string_view header =
      nl == absl::string_view::npos ? absl::string_view() : input.substr(0, nl);
  absl::string_view body = nl == absl::string_view::npos ? input : input.substr(nl + 1);

  std::string syscall = "openat";
  seccomp_agent::SyscallEvent ev;
  ev.nr = 257;
  ev.arch = seccomp_agent::plugin::NativeAuditArch();
  std::vector<absl::string_view> f = absl::StrSplit(header, ' ', absl::SkipEmpty());
  if (!f.empty()) syscall = std::string(f[0]);
  uint64_t v;
  if (f.size() > 1 && ParseU64(f[1], &v)) ev.nr = static_cast<int>(v);
  if (f.size() > 2 && ParseU64(f[2], &v)) ev.arch = static_cast<uint32_t>(v);
  for (size_t i = 3; i < f.size() && i < 9; ++i) {
    if (ParseU64(f[i], &v)) ev.args[i - 3] = v;
  }
  ev.syscall = syscall;

  v1::Decision d;
  {
    google::protobuf::TextFormat::Parser parser;
    QuietErrors quiet;
    parser.RecordErrorsTo(&quiet);
    if (!parser.ParseFromString(std::string(body), &d)) {
      d.Clear();
      if (!d.ParseFromArray(body.data(), static_cast<int>(body.size()))) return 0;
    }
  }

  static const std::vector<std::string> kRoots = {"/var/lib/seccomp-agent", "/srv/redirect"};
  const seccomp_agent::plugin::ValidationContext ctx =
      seccomp_agent::plugin::ContextFor(ev, &kRoots);
  const absl::Status st = seccomp_agent::plugin::ValidateDecision(d, ctx);
  if (!st.ok()) {
    Check(st.code() == absl::StatusCode::kInvalidArgument, "error is not InvalidArgument");
    Check(!st.message().empty(), "error without text");
  } else {
    Check(v1::CacheHint::Scope_IsValid(d.cache().scope()), "unknown cache scope accepted");
    switch (d.kind_case()) {
      case v1::Decision::KIND_NOT_SET:
        Check(false, "decision without kind accepted");
        break;
      case v1::Decision::kDeny:
        Check(d.deny().errno_code() >= 1 && d.deny().errno_code() <= 4095, "deny errno range");
        break;
      case v1::Decision::kReturn:
        Check(d.return_().value() < -4095 || d.return_().value() > -1, "return of an errno");
        Check(seccomp_agent::plugin::ReturnAllowedFor(syscall), "return for a refused syscall");
        break;
      case v1::Decision::kRedirectOpen:
        Check(syscall == "open" || syscall == "openat", "redirect_open on another syscall");
        break;
      case v1::Decision::kRewriteBind:
        Check(syscall == "bind", "rewrite_bind on another syscall");
        break;
      case v1::Decision::kReplaceWrite:
        Check(syscall == "write", "replace_write on another syscall");
        break;
      case v1::Decision::kInject: {
        // As agent/engine/action_router.cc builds the substitute.
        seccomp_agent::injector::Substitute sub;
        sub.nr = static_cast<int64_t>(d.inject().nr());
        for (int i = 0; i < 6 && i < d.inject().args_size(); ++i) sub.args[i] = d.inject().args(i);
        sub.args_in_buf_mask = d.inject().args_in_buf_mask();
        sub.buf = d.inject().buf();
        const absl::Status inj = seccomp_agent::injector::Validate(
            sub, ev.nr, ev.arch, seccomp_agent::injector::Ruleset::kKernel);
        if (!inj.ok()) {
          fprintf(stderr, "plugin-valid inject refused by the injector: %s\n",
                  std::string(inj.message()).c_str());
        }
        Check(inj.ok(), "plugin validator accepted an inject the injector refuses");
        break;
      }
      default:
        break;
    }
  }

  // The request side and the cache keys on the same event.
  seccomp_agent::ContainerInfo c;
  c.id = "fuzz";
  ev.container = &c;
  ev.path = std::string(body.substr(0, 64));
  (void)seccomp_agent::plugin::BuildNotification(ev, 16);
  (void)seccomp_agent::plugin::SyscallContainerKey("p", ev);
  (void)seccomp_agent::plugin::ExactArgsKey("p", ev);
  return 0;
}
