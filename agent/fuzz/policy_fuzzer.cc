// Fuzzes the policy file loader and the evaluator (agent/policy): the text
// goes through ParsePolicyText + ValidatePolicy, CompiledPolicy::LoadString,
// the kernel/agent split (Compile), then Evaluate and Needs on events.
//
// Input: policy text (YAML or JSON), optionally followed by the marker
// "\n#%EVENT%\n" and bytes that describe one event (FuzzedDataProvider).
// Every accepted policy is also evaluated on a fixed set of events.
//
// Properties checked (besides ASan/UBSan):
//  * LoadString accepts exactly what ParsePolicyText + ValidatePolicy accept
//    (the compile step after validation must not find new errors).
//  * Evaluate returns a non-null action; rule_index is -2 (runtime-init),
//    -1 (default) or a rule index whose name is the verdict's rule; with
//    first_rule = k it never returns a rule below k.
//  * Needs(syscall) only asks for what ArgLayoutFor(syscall) can supply.
//
// Finding 1 (README.md; fixed in agent/policy/loader.cc): yaml-cpp 0.7.0's
// LoadAll never returned on a stray top-level ','; its inputs are replayed
// from regressions/policy/ and tested by regressions/.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "agent/policy/compiler.h"
#include "agent/model/event.h"
#include "agent/policy/loader.h"
#include "agent/policy/policy.h"
#include "agent/model/syscall_args.h"

namespace {

using seccomp_agent::CompiledPolicy;
using seccomp_agent::SyscallEvent;

constexpr absl::string_view kEventMarker = "\n#%EVENT%\n";

void Check(bool ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "policy_fuzzer: property violated: %s\n", what);
    abort();
  }
}

void CheckVerdict(const CompiledPolicy& p, const SyscallEvent& ev, int first_rule) {
  CompiledPolicy::Verdict v = p.Evaluate(ev, first_rule);
  Check(v.action != nullptr, "null action");
  if (v.rule_index == -1) {
    Check(v.rule == "default", "index -1 is not \"default\"");
  } else if (v.rule_index == -2) {
    Check(v.rule == "runtime-init", "index -2 is not \"runtime-init\"");
    Check(ev.runtime_phase, "runtime-init outside the runtime phase");
  } else {
    Check(v.rule_index >= 0 && v.rule_index < p.proto().rules_size(), "rule_index out of range");
    Check(v.rule_index >= first_rule, "rule before first_rule");
    Check(v.rule == p.proto().rules(v.rule_index).name(), "rule name mismatch");
  }
  const uint32_t needs = p.Needs(ev.syscall);
  const seccomp_agent::SyscallArgLayout* l = seccomp_agent::ArgLayoutFor(ev.syscall);
  const uint32_t provides = l == nullptr ? 0 : l->Provides();
  Check((needs & ~provides) == 0, "Needs() asks for what the syscall cannot supply");
}

void EvaluateAll(const CompiledPolicy& p, const SyscallEvent& ev) {
  CheckVerdict(p, ev, 0);
  CompiledPolicy::Verdict v = p.Evaluate(ev);
  // A plugin rule that defers continues after its own index.
  if (v.rule_index >= 0) CheckVerdict(p, ev, v.rule_index + 1);
  CheckVerdict(p, ev, p.proto().rules_size());
}

std::vector<SyscallEvent> FixedEvents(const seccomp_agent::ContainerInfo* c) {
  std::vector<SyscallEvent> evs;
  SyscallEvent mkdir;
  mkdir.container = c;
  mkdir.syscall = "mkdirat";
  mkdir.nr = 258;
  mkdir.path = "/forbidden/x";
  mkdir.dirfd = -100;
  evs.push_back(mkdir);
  SyscallEvent rel = mkdir;
  rel.path = "x/../y";
  rel.abs_path = "/forbidden/x/../y";
  evs.push_back(rel);
  SyscallEvent open;
  open.container = c;
  open.syscall = "openat";
  open.nr = 257;
  open.path = "/etc/passwd";
  evs.push_back(open);
  SyscallEvent bind;
  bind.container = c;
  bind.syscall = "bind";
  bind.nr = 49;
  bind.fd = 3;
  bind.sockaddr = seccomp_agent::Sockaddr{2, "127.0.0.1", 8080, {2, 0, 0x1f, 0x90, 127, 0, 0, 1}};
  evs.push_back(bind);
  SyscallEvent write;
  write.container = c;
  write.syscall = "write";
  write.nr = 1;
  write.fd = 1;
  write.args[0] = 1;
  write.args[2] = 5;
  write.write_bytes = "hello";
  write.write_count = 5;
  evs.push_back(write);
  SyscallEvent getpid;
  getpid.container = c;
  getpid.syscall = "getpid";
  getpid.nr = 39;
  getpid.runtime_phase = true;
  evs.push_back(getpid);
  SyscallEvent failed = open;
  failed.path.reset();
  failed.decode_error = "EFAULT";
  evs.push_back(failed);
  return evs;
}

std::string PickSyscall(FuzzedDataProvider& fdp, const CompiledPolicy& p) {
  static const char* const kNames[] = {"openat",  "open",     "mkdir",     "mkdirat", "bind",
                                       "connect", "write",    "renameat2", "symlink", "getpid",
                                       "socket",  "unlinkat", "linkat",    ""};
  std::vector<std::string> names(std::begin(kNames), std::end(kNames));
  for (const auto& r : p.proto().rules()) {
    for (const auto& s : r.match().syscalls()) names.push_back(s);
  }
  if (fdp.ConsumeBool()) return fdp.ConsumeRandomLengthString(32);
  return names[fdp.ConsumeIntegralInRange<size_t>(0, names.size() - 1)];
}

SyscallEvent FuzzedEvent(FuzzedDataProvider& fdp, const CompiledPolicy& p,
                         seccomp_agent::ContainerInfo* c) {
  c->id = fdp.ConsumeRandomLengthString(64);
  c->metadata = fdp.ConsumeRandomLengthString(64);
  const int n_ann = fdp.ConsumeIntegralInRange(0, 4);
  for (int i = 0; i < n_ann; ++i) {
    std::string k = fdp.ConsumeRandomLengthString(32);
    c->annotations[k] = fdp.ConsumeRandomLengthString(32);
  }
  SyscallEvent ev;
  ev.container = c;
  ev.syscall = PickSyscall(fdp, p);
  ev.nr = fdp.ConsumeIntegral<int>();
  ev.arch = fdp.ConsumeIntegral<uint32_t>();
  for (uint64_t& a : ev.args) a = fdp.ConsumeIntegral<uint64_t>();
  ev.runtime_phase = fdp.ConsumeBool();
  if (fdp.ConsumeBool()) ev.path = fdp.ConsumeRandomLengthString(128);
  if (fdp.ConsumeBool()) ev.path2 = fdp.ConsumeRandomLengthString(128);
  if (fdp.ConsumeBool()) ev.abs_path = fdp.ConsumeRandomLengthString(128);
  if (fdp.ConsumeBool()) ev.abs_path2 = fdp.ConsumeRandomLengthString(128);
  if (fdp.ConsumeBool()) ev.dirfd = fdp.ConsumeIntegral<int32_t>();
  if (fdp.ConsumeBool()) ev.fd = fdp.ConsumeIntegral<int64_t>();
  if (fdp.ConsumeBool()) {
    seccomp_agent::Sockaddr sa;
    sa.family = fdp.ConsumeIntegralInRange(0, 45);
    sa.address = fdp.ConsumeRandomLengthString(64);
    if (fdp.ConsumeBool()) sa.port = fdp.ConsumeIntegral<uint16_t>();
    std::string raw = fdp.ConsumeRandomLengthString(128);
    sa.raw.assign(raw.begin(), raw.end());
    ev.sockaddr = std::move(sa);
  }
  if (fdp.ConsumeBool()) {
    ev.write_bytes = fdp.ConsumeRandomLengthString(256);
    ev.write_count = fdp.ConsumeIntegral<uint64_t>();
  }
  if (fdp.ConsumeBool()) ev.decode_error = fdp.ConsumeRandomLengthString(16);
  return ev;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view input(reinterpret_cast<const char*>(data), size);
  absl::string_view text = input;
  absl::string_view event_bytes;
  const size_t marker = input.find(kEventMarker);
  if (marker != absl::string_view::npos) {
    text = input.substr(0, marker);
    event_bytes = input.substr(marker + kEventMarker.size());
  }

  auto parsed = seccomp_agent::ParsePolicyText(text, "fuzz.yaml");
  bool valid = false;
  if (parsed.ok()) valid = seccomp_agent::ValidatePolicy(*parsed, "fuzz.yaml").ok();

  auto loaded = CompiledPolicy::LoadString(text, "fuzz.yaml");
  Check(loaded.ok() == valid, "LoadString disagrees with ParsePolicyText + ValidatePolicy");
  if (!loaded.ok()) return 0;
  const CompiledPolicy& p = **loaded;

  seccomp_agent::ContainerInfo fixed;
  fixed.id = "web-1";
  fixed.metadata = "profile=web";
  fixed.annotations = {{"example.com/tenant", "a"}, {"io.kubernetes.pod.name", "web"}};
  for (const SyscallEvent& ev : FixedEvents(&fixed)) EvaluateAll(p, ev);

  if (marker != absl::string_view::npos) {
    FuzzedDataProvider fdp(reinterpret_cast<const uint8_t*>(event_bytes.data()),
                           event_bytes.size());
    seccomp_agent::ContainerInfo c;
    SyscallEvent ev = FuzzedEvent(fdp, p, &c);
    EvaluateAll(p, ev);
  }

  // The split the OCI hook writes into config.json: must not crash either.
  seccomp_agent::CompileResult split = seccomp_agent::Compile(p);
  for (const auto& rule : split.KernelRules()) (void)rule.ToJson().dump();
  seccomp_agent::CompileOptions no_compile;
  no_compile.compile = false;
  (void)seccomp_agent::Compile(p, no_compile);
  return 0;
}
