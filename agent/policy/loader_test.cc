// Decoding and load-time validation of policy files.
#include "agent/policy/loader.h"

#include <errno.h>

#include <string>

#include "agent/policy/policy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace seccomp_agent {
namespace {

using ::testing::HasSubstr;

constexpr char kExampleYaml[] = R"(version: 1
default_action: {allow: {}}
injection: {mode: emulate, strict: true, strict_errno: EACCES}
redirect_roots: [/var/lib/seccomp-agent, /srv]
plugins:
  - {name: opa, address: "unix:///run/opa.sock", timeout_ms: 50, on_error: local, error_errno: EACCES, max_in_flight: 8}
rules:
  - name: no-mkdir-in-forbidden
    match:
      containers: {annotations: {"example.com/tenant": "a"}}
      syscalls: [mkdir, mkdirat]
      args: {path: "/forbidden/**"}
    action: {deny: {errno: EPERM}}
  - name: fake-success
    match: {syscalls: [mkdir, mkdirat], args: {path: "/fake*"}}
    action: {return: {value: 0}}
  - name: audit-opens
    match: {syscalls: [openat], args: {path: "/etc/**"}}
    action: {log: {}}
  - name: hosts
    match: {syscalls: [open, openat]}
    action:
      redirect_open:
        exact: {"/etc/hosts": "/var/lib/seccomp-agent/hosts"}
        prefix: {"/data/": "/srv/data/"}
  - name: port80
    match: {syscalls: [bind]}
    action: {rewrite_bind: {map: {"0.0.0.0:80": "127.0.0.1:8080", "/run/a.sock": "/run/b.sock"}}}
  - name: redact
    match: {syscalls: [write], args: {fd: 1}}
    action: {replace_write: {redact_regex: "secret-[0-9]+", redaction: "[REDACTED]"}}
  - name: ask-opa
    match: {syscalls: [connect], args: {sockaddr: {family: inet, port: 443}}}
    action: {plugin: opa}
)";

// The same policy as JSON.
constexpr char kExampleJson[] = R"({
  "version": 1,
  "default_action": {"allow": {}},
  "injection": {"mode": "emulate", "strict": true, "strict_errno": "EACCES"},
  "redirect_roots": ["/var/lib/seccomp-agent", "/srv"],
  "plugins": [{"name": "opa", "address": "unix:///run/opa.sock", "timeout_ms": 50,
               "on_error": "local", "error_errno": "EACCES", "max_in_flight": 8}],
  "rules": [
    {"name": "no-mkdir-in-forbidden",
     "match": {"containers": {"annotations": {"example.com/tenant": "a"}},
               "syscalls": ["mkdir", "mkdirat"], "args": {"path": "/forbidden/**"}},
     "action": {"deny": {"errno": "EPERM"}}},
    {"name": "fake-success",
     "match": {"syscalls": ["mkdir", "mkdirat"], "args": {"path": "/fake*"}},
     "action": {"return": {"value": 0}}},
    {"name": "audit-opens",
     "match": {"syscalls": ["openat"], "args": {"path": "/etc/**"}},
     "action": {"log": {}}},
    {"name": "hosts", "match": {"syscalls": ["open", "openat"]},
     "action": {"redirect_open": {"exact": {"/etc/hosts": "/var/lib/seccomp-agent/hosts"},
                                  "prefix": {"/data/": "/srv/data/"}}}},
    {"name": "port80", "match": {"syscalls": ["bind"]},
     "action": {"rewrite_bind": {"map": {"0.0.0.0:80": "127.0.0.1:8080",
                                         "/run/a.sock": "/run/b.sock"}}}},
    {"name": "redact", "match": {"syscalls": ["write"], "args": {"fd": 1}},
     "action": {"replace_write": {"redact_regex": "secret-[0-9]+", "redaction": "[REDACTED]"}}},
    {"name": "ask-opa",
     "match": {"syscalls": ["connect"], "args": {"sockaddr": {"family": "inet", "port": 443}}},
     "action": {"plugin": {"name": "opa"}}}
  ]
})";

void ExpectExample(const v1::Policy& p) {
  EXPECT_EQ(p.version(), 1u);
  EXPECT_TRUE(p.default_action().has_allow());
  EXPECT_EQ(p.injection().mode(), v1::InjectionSettings::EMULATE);
  EXPECT_TRUE(p.injection().strict());
  EXPECT_EQ(p.injection().strict_errno(), EACCES);
  ASSERT_EQ(p.redirect_roots_size(), 2);
  EXPECT_EQ(p.redirect_roots(1), "/srv");
  ASSERT_EQ(p.plugins_size(), 1);
  EXPECT_EQ(p.plugins(0).address(), "unix:///run/opa.sock");
  EXPECT_EQ(p.plugins(0).timeout_ms(), 50u);
  EXPECT_EQ(p.plugins(0).on_error(), v1::PluginConfig::LOCAL);
  EXPECT_EQ(p.plugins(0).error_errno(), EACCES);
  EXPECT_EQ(p.plugins(0).max_in_flight(), 8u);
  ASSERT_EQ(p.rules_size(), 7);
  const v1::Rule& r0 = p.rules(0);
  EXPECT_EQ(r0.name(), "no-mkdir-in-forbidden");
  EXPECT_EQ(r0.match().containers().annotations().at("example.com/tenant"), "a");
  ASSERT_EQ(r0.match().syscalls_size(), 2);
  EXPECT_EQ(r0.match().syscalls(1), "mkdirat");
  EXPECT_EQ(r0.match().args().path(), "/forbidden/**");
  EXPECT_EQ(r0.action().deny().errno_code(), EPERM);
  EXPECT_TRUE(p.rules(1).action().has_return_());
  EXPECT_EQ(p.rules(1).action().return_().value(), 0);
  EXPECT_TRUE(p.rules(2).action().has_log());
  EXPECT_EQ(p.rules(3).action().redirect_open().exact().at("/etc/hosts"),
            "/var/lib/seccomp-agent/hosts");
  EXPECT_EQ(p.rules(3).action().redirect_open().prefix().at("/data/"), "/srv/data/");
  EXPECT_EQ(p.rules(4).action().rewrite_bind().map().at("/run/a.sock"), "/run/b.sock");
  EXPECT_TRUE(p.rules(5).match().args().has_fd());
  EXPECT_EQ(p.rules(5).match().args().fd(), 1);
  EXPECT_EQ(p.rules(5).action().replace_write().redact_regex(), "secret-[0-9]+");
  EXPECT_EQ(p.rules(5).action().replace_write().redaction(), "[REDACTED]");
  EXPECT_EQ(p.rules(6).match().args().sockaddr().family(), "inet");
  EXPECT_TRUE(p.rules(6).match().args().sockaddr().has_port());
  EXPECT_EQ(p.rules(6).match().args().sockaddr().port(), 443u);
  EXPECT_EQ(p.rules(6).action().plugin().name(), "opa");
}

TEST(LoaderTest, LoadsTheExampleFromYaml) {
  auto p = CompiledPolicy::LoadString(kExampleYaml, "policy.yaml");
  ASSERT_TRUE(p.ok()) << p.status();
  ExpectExample((*p)->proto());
  EXPECT_EQ((*p)->source(), "policy.yaml");
}

TEST(LoaderTest, LoadsTheExampleFromJson) {
  auto p = CompiledPolicy::LoadString(kExampleJson, "policy.json");
  ASSERT_TRUE(p.ok()) << p.status();
  ExpectExample((*p)->proto());
}

TEST(LoaderTest, YamlAndJsonGiveTheSameProto) {
  auto y = ParsePolicyText(kExampleYaml, "a");
  auto j = ParsePolicyText(kExampleJson, "b");
  ASSERT_TRUE(y.ok()) << y.status();
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ(y->DebugString(), j->DebugString());
}

TEST(LoaderTest, LoadFileReadsAndNamesTheFile) {
  const std::string path = std::string(getenv("TEST_TMPDIR")) + "/p.yaml";
  FILE* f = fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fputs(kExampleYaml, f);
  fclose(f);
  auto p = CompiledPolicy::LoadFile(path);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->source(), path);
  EXPECT_EQ((*p)->proto().rules_size(), 7);
}

TEST(LoaderTest, LoadFileMissingGivesErrno) {
  auto p = CompiledPolicy::LoadFile("/nonexistent/policy.yaml");
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(std::string(p.status().message()), HasSubstr("/nonexistent/policy.yaml"));
  EXPECT_THAT(std::string(p.status().message()), HasSubstr("ENOENT"));
}

TEST(LoaderTest, ShortFormsAndDefaults) {
  auto p = ParsePolicyText(R"(version: 1
default_action: {deny: {}}
rules:
  - name: a
    action: {plugin: opa}
  - name: b
    action:
      allow:
  - name: c
    action: {deny: {errno: 13}}
  - name: d
    action: {return: {value: -9223372036854775808}}
  - name: e
    match: {args: {fd: -1}}
    action: {return: {value: 9223372036854775807}}
)",
                           "p.yaml");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->default_action().deny().errno_code(), EPERM);  // deny: {} is EPERM
  EXPECT_EQ(p->rules(0).action().plugin().name(), "opa");
  EXPECT_TRUE(p->rules(1).action().has_allow());
  EXPECT_EQ(p->rules(2).action().deny().errno_code(), EACCES);
  EXPECT_EQ(p->rules(3).action().return_().value(), INT64_MIN);  // exact, no double
  EXPECT_EQ(p->rules(4).action().return_().value(), INT64_MAX);
}

TEST(LoaderTest, YamlFlowMappingIsNotMistakenForJson) {
  auto p = CompiledPolicy::LoadString("{version: 1, default_action: {allow: {}}}", "flow.yaml");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->proto().version(), 1u);
}

TEST(LoaderTest, SyntaxErrorsNameFileLineAndFormat) {
  auto y = ParsePolicyText("version: 1\nrules: [\n", "bad.yaml");
  ASSERT_FALSE(y.ok());
  EXPECT_THAT(std::string(y.status().message()), HasSubstr("bad.yaml:"));
  EXPECT_THAT(std::string(y.status().message()), HasSubstr("YAML syntax error"));
  auto j = ParsePolicyText("{\"version\": 1,, }", "bad.json");
  ASSERT_FALSE(j.ok());
  EXPECT_THAT(std::string(j.status().message()), HasSubstr("bad.json:1:"));
  EXPECT_THAT(std::string(j.status().message()), HasSubstr("JSON syntax error"));
}

struct BadCase {
  const char* name;
  std::string text;
  const char* want;  // a substring of the error, including file/rule/field
};

std::string WithRules(const std::string& rules) {
  return "version: 1\ndefault_action: {allow: {}}\nredirect_roots: [/var/lib/seccomp-agent]\n"
         "plugins: [{name: opa, address: \"localhost:9000\", insecure: true}]\nrules:\n" +
         rules;
}

class BadPolicyTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadPolicyTest, IsRejectedWithFileRuleAndField) {
  const BadCase& c = GetParam();
  auto p = CompiledPolicy::LoadString(c.text, "policy.yaml");
  ASSERT_FALSE(p.ok()) << "accepted:\n" << c.text;
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(p.status().message()), HasSubstr(c.want));
  RecordProperty("error", std::string(p.status().message()));
  EXPECT_THAT(std::string(p.status().message()), ::testing::StartsWith("policy.yaml:"));
}

const BadCase kBadCases[] = {
    {"UnknownSyscall",
     WithRules("  - {name: a, action: {allow: {}}}\n  - {name: b, action: {allow: {}}}\n"
               "  - name: no-mkdir\n    match: {syscalls: [mkdir, mkdri]}\n"
               "    action: {deny: {errno: EPERM}}\n"),
     "policy.yaml: rules[2] \"no-mkdir\": match.syscalls[1]: unknown syscall \"mkdri\""},
    {"UnknownTopLevelKey", "version: 1\ndefault_action: {allow: {}}\nrule: []\n",
     "policy.yaml: unknown field \"rule\""},
    {"UnknownRuleKey",
     WithRules("  - name: r\n    macth: {syscalls: [mkdir]}\n    action: {allow: {}}\n"),
     "policy.yaml: rules[0] \"r\": unknown field \"macth\""},
    {"UnknownMatchKey",
     WithRules("  - name: r\n    match: {sycalls: [mkdir]}\n    action: {allow: {}}\n"),
     "policy.yaml: rules[0] \"r\": match: unknown field \"sycalls\""},
    {"UnknownDenyKey", WithRules("  - name: r\n    action: {deny: {erno: EPERM}}\n"),
     "policy.yaml: rules[0] \"r\": action.deny: unknown field \"erno\""},
    {"DuplicateKey", WithRules("  - name: r\n    name: s\n    action: {allow: {}}\n"),
     "rules[0] \"r\": name: duplicate key"},
    {"WrongVersion", "version: 2\ndefault_action: {allow: {}}\n",
     "policy.yaml: version: must be 1, got 2"},
    {"MissingVersion", "default_action: {allow: {}}\n", "policy.yaml: version: must be 1, got 0"},
    {"MissingDefaultAction", "version: 1\nrules: []\n", "policy.yaml: default_action: required"},
    {"SubstitutionAsDefault",
     "version: 1\nredirect_roots: [/srv]\ndefault_action: {redirect_open: {exact: {\"/a\": "
     "\"/srv/a\"}}}\n",
     "policy.yaml: default_action: must be allow, deny, return or log, got redirect_open"},
    {"PluginAsDefault",
     "version: 1\nplugins: [{name: p, address: \"h:1\", insecure: true}]\ndefault_action: {plugin: "
     "p}\n",
     "policy.yaml: default_action: must be allow, deny, return or log, got plugin"},
    {"TwoActionKinds", WithRules("  - name: r\n    action: {allow: {}, deny: {errno: EPERM}}\n"),
     "policy.yaml: rules[0] \"r\": action.deny: only one of"},
    {"UnknownErrnoName", WithRules("  - name: r\n    action: {deny: {errno: EPREM}}\n"),
     "policy.yaml: rules[0] \"r\": action.deny.errno: unknown errno \"EPREM\""},
    {"ErrnoOutOfRange", WithRules("  - name: r\n    action: {deny: {errno: 4096}}\n"),
     "rules[0] \"r\": action.deny.errno: unknown errno \"4096\""},
    {"ErrnoZero", WithRules("  - name: r\n    action: {deny: {errno: 0}}\n"),
     "rules[0] \"r\": action.deny.errno: unknown errno \"0\""},
    {"EmptyRuleName", WithRules("  - name: \"\"\n    action: {allow: {}}\n"),
     "policy.yaml: rules[0]: name: required"},
    {"MissingRuleName", WithRules("  - {action: {allow: {}}}\n"),
     "policy.yaml: rules[0]: name: required"},
    {"DuplicateRuleName",
     WithRules("  - {name: same, action: {allow: {}}}\n  - {name: same, action: {log: {}}}\n"),
     "policy.yaml: rules[1] \"same\": name: duplicate rule name"},
    {"MissingAction", WithRules("  - name: r\n    match: {syscalls: [mkdir]}\n"),
     "policy.yaml: rules[0] \"r\": action: required"},
    {"RelativePathGlob",
     WithRules("  - name: r\n    match: {syscalls: [mkdir], args: {path: \"tmp/*\"}}\n"
               "    action: {allow: {}}\n"),
     "rules[0] \"r\": match.args.path: glob \"tmp/*\" must be absolute"},
    {"BadPathGlob",
     WithRules("  - name: r\n    match: {syscalls: [mkdir], args: {path: \"/tmp/**x\"}}\n"
               "    action: {allow: {}}\n"),
     "rules[0] \"r\": match.args.path: \"**\" must be a whole path component"},
    {"PathConditionOnPathlessSyscall",
     WithRules("  - name: r\n    match: {syscalls: [mkdir, getpid], args: {path: \"/x\"}}\n"
               "    action: {allow: {}}\n"),
     "rules[0] \"r\": match.args.path: syscall \"getpid\" has no path argument"},
    {"BadSockaddrFamily",
     WithRules("  - name: r\n    match: {syscalls: [bind], args: {sockaddr: {family: AF_INTE}}}\n"
               "    action: {allow: {}}\n"),
     "rules[0] \"r\": match.args.sockaddr.family: unknown family \"AF_INTE\""},
    {"SockaddrPortTooBig",
     WithRules("  - name: r\n    match: {syscalls: [bind], args: {sockaddr: {port: 70000}}}\n"
               "    action: {allow: {}}\n"),
     "rules[0] \"r\": match.args.sockaddr.port: must be 0..65535, got 70000"},
    {"RedirectOutsideRoots",
     WithRules("  - name: r\n    match: {syscalls: [openat]}\n"
               "    action: {redirect_open: {exact: {\"/etc/hosts\": \"/etc/shadow\"}}}\n"),
     "policy.yaml: rules[0] \"r\": action.redirect_open.exact[\"/etc/hosts\"]: target "
     "\"/etc/shadow\" is outside every redirect root (/var/lib/seccomp-agent)"},
    {"RedirectEscapesRootWithDotDot",
     WithRules("  - name: r\n    match: {syscalls: [openat]}\n"
               "    action: {redirect_open: {exact: {\"/etc/hosts\": "
               "\"/var/lib/seccomp-agent/../../../etc/shadow\"}}}\n"),
     "action.redirect_open.exact[\"/etc/hosts\"]: target "
     "\"/var/lib/seccomp-agent/../../../etc/shadow\" must be an absolute, normalized path"},
    {"RedirectSiblingOfRootIsOutside",
     WithRules(
         "  - name: r\n    match: {syscalls: [openat]}\n"
         "    action: {redirect_open: {prefix: {\"/data/\": \"/var/lib/seccomp-agent-evil/\"}}}\n"),
     "action.redirect_open.prefix[\"/data/\"]: target \"/var/lib/seccomp-agent-evil/\" is outside"},
    {"RedirectOnWrongSyscall",
     WithRules("  - name: r\n    match: {syscalls: [openat, mkdir]}\n"
               "    action: {redirect_open: {exact: {\"/a\": \"/var/lib/seccomp-agent/a\"}}}\n"),
     "rules[0] \"r\": match.syscalls[1]: action redirect_open cannot apply to \"mkdir\""},
    {"RedirectWithoutSyscalls",
     WithRules("  - name: r\n"
               "    action: {redirect_open: {exact: {\"/a\": \"/var/lib/seccomp-agent/a\"}}}\n"),
     "rules[0] \"r\": match.syscalls: action redirect_open needs a syscall list"},
    {"RedirectRootRelative", "version: 1\ndefault_action: {allow: {}}\nredirect_roots: [var/lib]\n",
     "policy.yaml: redirect_roots[0]: \"var/lib\" must be an absolute"},
    {"RedirectRootSlash", "version: 1\ndefault_action: {allow: {}}\nredirect_roots: [/]\n",
     "policy.yaml: redirect_roots[0]: \"/\" would allow any redirect target"},
    {"RewriteBindOnConnect",
     WithRules("  - name: r\n    match: {syscalls: [connect]}\n"
               "    action: {rewrite_bind: {map: {\"0.0.0.0:80\": \"127.0.0.1:8080\"}}}\n"),
     "rules[0] \"r\": match.syscalls[0]: action rewrite_bind cannot apply to \"connect\""},
    {"RewriteBindBadAddress",
     WithRules("  - name: r\n    match: {syscalls: [bind]}\n"
               "    action: {rewrite_bind: {map: {\"0.0.0.300:80\": \"127.0.0.1:8080\"}}}\n"),
     "rules[0] \"r\": action.rewrite_bind.map[\"0.0.0.300:80\"]: \"0.0.0.300:80\" is not "
     "ADDR:PORT"},
    {"RewriteBindMixedKinds",
     WithRules("  - name: r\n    match: {syscalls: [bind]}\n"
               "    action: {rewrite_bind: {map: {\"0.0.0.0:80\": \"/run/x.sock\"}}}\n"),
     "action.rewrite_bind.map[\"0.0.0.0:80\"]: cannot rewrite an AF_INET address to an AF_UNIX "
     "one"},
    {"RewriteBindIPv6NeedsBrackets",
     WithRules("  - name: r\n    match: {syscalls: [bind]}\n"
               "    action: {rewrite_bind: {map: {\"[::]:80\": \"::1:8080\"}}}\n"),
     "action.rewrite_bind.map[\"[::]:80\"]: target \"::1:8080\" is not ADDR:PORT"},
    {"RewriteBindNulInAnAbstractName",  // a plugin's decision was refused this already
     WithRules("  - name: r\n    match: {syscalls: [bind]}\n"
               "    action: {rewrite_bind: {map: {\"@a\": \"@b\\0c\"}}}\n"),
     "action.rewrite_bind.map[\"@a\"]: target unix socket name contains a NUL byte"},
    {"ReplaceWriteOnPwrite",
     WithRules("  - name: r\n    match: {syscalls: [pwrite64]}\n"
               "    action: {replace_write: {replace: \"x\"}}\n"),
     "rules[0] \"r\": match.syscalls[0]: action replace_write cannot apply to \"pwrite64\""},
    {"BadRedactRegex",
     WithRules("  - name: r\n    match: {syscalls: [write]}\n"
               "    action: {replace_write: {redact_regex: \"secret-[0-9\"}}\n"),
     "rules[0] \"r\": action.replace_write.redact_regex: \"secret-[0-9\" does not compile"},
    // std::regex accepted both; RE2 (the engine that runs them) cannot
    // match them in linear time and refuses them.
    {"RedactRegexBackreference",
     WithRules("  - name: r\n    match: {syscalls: [write]}\n"
               "    action: {replace_write: {redact_regex: '(a+)\\1'}}\n"),
     "policy.yaml: rules[0] \"r\": action.replace_write.redact_regex: \"(a+)\\1\" does not "
     "compile: RE2 cannot compile it"},
    {"RedactRegexLookahead",
     WithRules("  - name: r\n    match: {syscalls: [write]}\n"
               "    action: {replace_write: {redact_regex: 'token(?=:)'}}\n"),
     "policy.yaml: rules[0] \"r\": action.replace_write.redact_regex: \"token(?=:)\" does not "
     "compile"},
    {"RedactRegexMatchesEmpty",
     WithRules("  - name: r\n    match: {syscalls: [write]}\n"
               "    action: {replace_write: {redact_regex: \"x*\"}}\n"),
     "action.replace_write.redact_regex: \"x*\" matches the empty string"},
    {"ReplaceWriteWithoutMode",
     WithRules("  - name: r\n    match: {syscalls: [write]}\n    action: {replace_write: {}}\n"),
     "rules[0] \"r\": action.replace_write: needs replace or redact_regex"},
    {"SysinfoWithoutFromCgroup",
     WithRules("  - name: s\n    match: {syscalls: [sysinfo]}\n    action: {sysinfo: {}}\n"),
     "policy.yaml: rules[0] \"s\": action.sysinfo.from_cgroup: must be true"},
    {"SysinfoOnAnotherSyscall",
     WithRules("  - name: s\n    match: {syscalls: [uname]}\n"
               "    action: {sysinfo: {from_cgroup: true}}\n"),
     "rules[0] \"s\": match.syscalls[0]: action sysinfo cannot apply to \"uname\""},
    {"SysinfoWithoutSyscalls",
     WithRules("  - name: s\n    action: {sysinfo: {from_cgroup: true}}\n"),
     "rules[0] \"s\": match.syscalls: action sysinfo needs a syscall list naming only sysinfo"},
    {"MknodEmptyAllowList",
     WithRules("  - name: m\n    match: {syscalls: [mknod]}\n    action: {mknod: {}}\n"),
     "rules[0] \"m\": action.mknod.allow: needs at least one device"},
    {"MknodBadType",
     WithRules("  - name: m\n    match: {syscalls: [mknodat]}\n"
               "    action: {mknod: {allow: [{type: c, major: 1, minor: 3}, {type: p}]}}\n"),
     "rules[0] \"m\": action.mknod.allow[1].type: must be \"c\" or \"b\", got \"p\""},
    {"MknodMajorTooLarge",
     WithRules("  - name: m\n    match: {syscalls: [mknod]}\n"
               "    action: {mknod: {allow: [{type: b, major: 4096, minor: 0}]}}\n"),
     "rules[0] \"m\": action.mknod.allow[0].major: 4096 is larger than 4095"},
    {"MknodMinorTooLarge",
     WithRules("  - name: m\n    match: {syscalls: [mknod]}\n"
               "    action: {mknod: {allow: [{type: c, major: 1, minor: 1048576}]}}\n"),
     "rules[0] \"m\": action.mknod.allow[0].minor: 1048576 is larger than 1048575"},
    {"MknodOnOpen",
     WithRules("  - name: m\n    match: {syscalls: [mknod, openat]}\n"
               "    action: {mknod: {allow: [{type: c, major: 1, minor: 3}]}}\n"),
     "rules[0] \"m\": match.syscalls[1]: action mknod cannot apply to \"openat\" (only mknod, "
     "mknodat)"},
    {"MountExt4",
     WithRules("  - name: m\n    match: {syscalls: [mount]}\n"
               "    action: {mount: {allow: [{fstype: proc}, {fstype: ext4}]}}\n"),
     "rules[0] \"m\": action.mount.allow[1].fstype: \"ext4\" is not one the agent mounts"},
    {"MountOnUmount",
     WithRules("  - name: m\n    match: {syscalls: [umount2]}\n"
               "    action: {mount: {allow: [{fstype: proc}]}}\n"),
     "rules[0] \"m\": match.syscalls[0]: action mount cannot apply to \"umount2\" (only mount)"},
    {"MountEmpty",
     WithRules("  - name: m\n    match: {syscalls: [mount]}\n    action: {mount: {}}\n"),
     "rules[0] \"m\": action.mount.allow: needs at least one file system type"},
    {"SetxattrUserNamespace",
     WithRules("  - name: x\n    match: {syscalls: [setxattr]}\n"
               "    action: {setxattr: {allow_names: [\"trusted.overlay.*\", \"user.*\"]}}\n"),
     "rules[0] \"x\": action.setxattr.allow_names[1]: \"user.*\" must start with \"trusted.\""},
    {"SetxattrSecurityCapability",
     WithRules("  - name: x\n    match: {syscalls: [fsetxattr]}\n"
               "    action: {setxattr: {allow_names: [security.capability]}}\n"),
     "rules[0] \"x\": action.setxattr.allow_names[0]: \"security.capability\" must start with"},
    {"SetxattrGlobWithoutPrefix",
     WithRules("  - name: x\n    match: {syscalls: [setxattr]}\n"
               "    action: {setxattr: {allow_names: [\"*\"]}}\n"),
     "rules[0] \"x\": action.setxattr.allow_names[0]: \"*\" must start with \"trusted.\""},
    {"SetxattrBadGlob",
     WithRules("  - name: x\n    match: {syscalls: [setxattr]}\n"
               "    action: {setxattr: {allow_names: [\"trusted.[a\"]}}\n"),
     "rules[0] \"x\": action.setxattr.allow_names[0]: "},
    {"SetxattrEmpty",
     WithRules("  - name: x\n    match: {syscalls: [setxattr]}\n    action: {setxattr: {}}\n"),
     "rules[0] \"x\": action.setxattr.allow_names: needs at least one name glob"},
    {"SetxattrOnGetxattr",
     WithRules("  - name: x\n    match: {syscalls: [setxattr, getxattr]}\n"
               "    action: {setxattr: {allow_names: [trusted.overlay.opaque]}}\n"),
     "rules[0] \"x\": match.syscalls[1]: action setxattr cannot apply to \"getxattr\" (only "
     "setxattr, lsetxattr, fsetxattr)"},
    {"SetxattrAsDefault",
     "version: 1\ndefault_action: {setxattr: {allow_names: [trusted.overlay.opaque]}}\n",
     "policy.yaml: default_action: must be allow, deny, return or log, got setxattr"},
    {"MknodAsDefault", "version: 1\ndefault_action: {mknod: {allow: [{type: c, major: 1}]}}\n",
     "policy.yaml: default_action: must be allow, deny, return or log, got mknod"},
    {"UndeclaredPlugin", WithRules("  - name: r\n    action: {plugin: nope}\n"),
     "policy.yaml: rules[0] \"r\": action.plugin.name: plugin \"nope\" is not declared"},
    {"BadPluginAddress",
     "version: 1\ndefault_action: {allow: {}}\nplugins: [{name: p, address: "
     "\"unix://relative\"}]\n",
     "policy.yaml: plugins[0] \"p\": address: \"unix://relative\" is not"},
    {"PluginAddressWithoutPort",
     "version: 1\ndefault_action: {allow: {}}\nplugins: [{name: p, address: \"localhost\"}]\n",
     "policy.yaml: plugins[0] \"p\": address: \"localhost\" is not"},
    {"DuplicatePlugin",
     "version: 1\ndefault_action: {allow: {}}\n"
     "plugins: [{name: p, address: \"h:1\", insecure: true}, {name: p, address: \"h:2\"}]\n",
     "policy.yaml: plugins[1] \"p\": name: duplicate plugin name"},
    {"PlaintextTcpPlugin",
     "version: 1\ndefault_action: {allow: {}}\nplugins: [{name: p, address: \"h:1\"}]\n",
     "policy.yaml: plugins[0] \"p\": address: plaintext TCP to \"h:1\" refused: set tls.ca_file"},
    {"TlsOnAUnixSocket",
     "version: 1\ndefault_action: {allow: {}}\n"
     "plugins: [{name: p, address: \"unix:///run/p.sock\", tls: {ca_file: /etc/ca.pem}}]\n",
     "policy.yaml: plugins[0] \"p\": tls: is for host:port addresses"},
    {"TlsAndInsecure",
     "version: 1\ndefault_action: {allow: {}}\n"
     "plugins: [{name: p, address: \"h:1\", insecure: true, tls: {ca_file: /etc/ca.pem}}]\n",
     "policy.yaml: plugins[0] \"p\": insecure: tls and insecure: true exclude each other"},
    {"TlsCertWithoutKey",
     "version: 1\ndefault_action: {allow: {}}\n"
     "plugins: [{name: p, address: \"h:1\", tls: {ca_file: /etc/ca.pem, cert_file: /c.pem}}]\n",
     "policy.yaml: plugins[0] \"p\": tls: cert_file and key_file go together (mTLS)"},
    {"TlsWithoutCa",
     "version: 1\ndefault_action: {allow: {}}\n"
     "plugins: [{name: p, address: \"h:1\", tls: {server_name: x}}]\n",
     "policy.yaml: plugins[0] \"p\": tls.ca_file: required: an absolute path"},
    {"BadOnError",
     "version: 1\ndefault_action: {allow: {}}\n"
     "plugins: [{name: p, address: \"h:1\", insecure: true, on_error: ignore}]\n",
     "policy.yaml: plugins[0] \"p\": on_error: expected one of deny|allow|local, got \"ignore\""},
    {"BadInjectionMode", "version: 1\ndefault_action: {allow: {}}\ninjection: {mode: magic}\n",
     "policy.yaml: injection.mode: expected one of auto|kernel|emulate, got \"magic\""},
    {"BadBool", "version: 1\ndefault_action: {allow: {}}\ninjection: {strict: maybe}\n",
     "policy.yaml: injection.strict: expected true or false, got \"maybe\""},
    {"NotAnInteger", WithRules("  - name: r\n    action: {return: {value: 1.5}}\n"),
     "rules[0] \"r\": action.return.value: expected a 64-bit integer, got \"1.5\""},
    {"SyscallsNotAList",
     WithRules("  - name: r\n    match: {syscalls: mkdir}\n    action: {allow: {}}\n"),
     "rules[0] \"r\": match.syscalls: expected a list, got a scalar"},
    {"RulesNotAList", "version: 1\ndefault_action: {allow: {}}\nrules: {name: r}\n",
     "policy.yaml: rules: expected a list, got a mapping"},
    {"BadContainerGlob",
     WithRules("  - name: r\n    match: {containers: {id: \"abc[\"}}\n    action: {allow: {}}\n"),
     "rules[0] \"r\": match.containers.id: unterminated \"[\" in glob"},
    {"FdConditionOnMkdir",
     WithRules(
         "  - name: r\n    match: {syscalls: [mkdir], args: {fd: 3}}\n    action: {allow: {}}\n"),
     "rules[0] \"r\": match.args.fd: syscall \"mkdir\" has no fd argument"},
    {"EmptyDocument", "", "policy.yaml: empty policy"},
    {"TopLevelList", "- a\n- b\n", "policy.yaml: expected a mapping at the top level, got a list"},
    {"DuplicateSyscall",
     WithRules("  - name: r\n    match: {syscalls: [mkdir, mkdir]}\n    action: {allow: {}}\n"),
     "rules[0] \"r\": match.syscalls[1]: \"mkdir\" listed twice"},
    {"JsonDuplicateKey",
     "{\"version\": 1, \"default_action\": {\"allow\": {}}, \"rules\": [{\"name\": \"j\", "
     "\"action\": {\"deny\": {\"errno\": \"EPERM\", \"errno\": \"EIO\"}}}]}",
     "policy.yaml: rules[0] \"j\": action.deny.errno: duplicate key"},
    {"RedirectPrefixSlashMismatch",
     WithRules(
         "  - name: r\n    match: {syscalls: [open]}\n"
         "    action: {redirect_open: {prefix: {\"/data/\": \"/var/lib/seccomp-agent/d\"}}}\n"),
     "action.redirect_open.prefix[\"/data/\"]: source and target must both end in \"/\""},
    {"DefaultDenyBadErrnoNumber", "version: 1\ndefault_action: {deny: {errno: -1}}\n",
     "policy.yaml: default_action.deny.errno: unknown errno \"-1\""},
    {"ReturnLooksLikeErrno", WithRules("  - name: r\n    action: {return: {value: -13}}\n"),
     "policy.yaml: rules[0] \"r\": action.return.value: -13 would read as -errno; use deny: "
     "{errno: EACCES}"},
    {"JsonTrailingGarbage", "{\"version\": 1, \"default_action\": {\"allow\": {}}} x",
     "policy.yaml:1:"},
    {"JsonUnknownKey", "{\"version\": 1, \"default_action\": {\"allow\": {}}, \"rulez\": []}",
     "policy.yaml: unknown field \"rulez\""},
};

INSTANTIATE_TEST_SUITE_P(AllBadPolicies, BadPolicyTest, ::testing::ValuesIn(kBadCases),
                         [](const ::testing::TestParamInfo<BadCase>& i) { return i.param.name; });

// FromProto runs the same validation as files.
TEST(LoaderTest, PrivilegedActionsLoad) {
  auto p = ParsePolicyText(R"(version: 1
default_action: {deny: {errno: EPERM}}
rules:
  - name: free
    match: {syscalls: [sysinfo]}
    action: {sysinfo: {from_cgroup: true}}
  - name: devices
    match: {syscalls: [mknod, mknodat]}
    action:
      mknod:
        allow: [{type: c, major: 1, minor: 3}, {type: c, major: 10, minor: 229}]
  - name: overlay
    match: {syscalls: [setxattr, lsetxattr, fsetxattr]}
    action: {setxattr: {allow_names: ["trusted.overlay.*"]}}
)",
                           "policy.yaml");
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_TRUE(ValidatePolicy(*p, "policy.yaml").ok()) << ValidatePolicy(*p, "policy.yaml");
  EXPECT_TRUE(p->rules(0).action().sysinfo().from_cgroup());
  ASSERT_EQ(p->rules(1).action().mknod().allow_size(), 2);
  EXPECT_EQ(p->rules(1).action().mknod().allow(1).type(), "c");
  EXPECT_EQ(p->rules(1).action().mknod().allow(1).major(), 10u);
  EXPECT_EQ(p->rules(1).action().mknod().allow(1).minor(), 229u);
  ASSERT_EQ(p->rules(2).action().setxattr().allow_names_size(), 1);
  EXPECT_EQ(p->rules(2).action().setxattr().allow_names(0), "trusted.overlay.*");
}

TEST(LoaderTest, FromProtoValidatesToo) {
  v1::Policy p;
  p.set_version(1);
  p.mutable_default_action()->mutable_allow();
  v1::Rule* r = p.add_rules();
  r->set_name("x");
  r->mutable_match()->add_syscalls("nosuchcall");
  r->mutable_action()->mutable_allow();
  auto c = CompiledPolicy::FromProto(p, "api");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(),
            "api: rules[0] \"x\": match.syscalls[0]: unknown syscall \"nosuchcall\"");
  r->mutable_match()->set_syscalls(0, "mkdir");
  r->mutable_action()->mutable_deny();  // errno 0 in a proto is not defaulted
  c = CompiledPolicy::FromProto(p, "api");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(),
            "api: rules[0] \"x\": action.deny.errno: errno must be 1..4095, got 0");
}

TEST(LoaderScalarTest, DecimalHexAndBigValuesRoundTrip) {
  auto p = ParsePolicyText(R"(version: 1
default_action: {allow: {}}
rules:
  - name: s
    match:
      syscalls: [unshare]
      args: {scalars: [{index: 0, op: masked_eq, mask: 0xFFFFFFFFFFFFFFFF, value: 18446744073709551615},
                       {index: 1, op: eq, value: 0x10}]}
    action: {deny: {}}
)",
                           "s.yaml");
  ASSERT_TRUE(p.ok()) << p.status();
  const auto& sc = p->rules(0).match().args().scalars();
  ASSERT_EQ(sc.size(), 2);
  EXPECT_EQ(sc[0].op(), v1::ScalarCondition::MASKED_EQ);
  EXPECT_EQ(sc[0].mask(), ~0ull);
  EXPECT_EQ(sc[0].value(), ~0ull);
  EXPECT_EQ(sc[1].value(), 16u);
  EXPECT_TRUE(ValidatePolicy(*p, "s.yaml").ok());
}

TEST(LoaderScalarTest, BadScalarsAreRefusedWithTheField) {
  struct Case {
    const char* scalars;
    const char* want;
  };
  const Case cases[] = {
      {"[{index: 6, op: eq, value: 1}]", "match.args.scalars[0].index: must be 0..5, got 6"},
      {"[{index: 0, value: 1}]", "match.args.scalars[0].op: required"},
      {"[{index: 0, op: almost, value: 1}]", "one of eq|ne|lt|le|gt|ge|masked_eq"},
      {"[{index: 0, op: masked_eq, value: 1}]", "masked_eq needs a non-zero mask"},
      {"[{index: 0, op: masked_eq, mask: 0xf0, value: 1}]", "has bits outside mask"},
      {"[{index: 0, op: eq, mask: 3, value: 1}]", "only meaningful with op masked_eq"},
      {"[{index: 0, op: lt, value: 0}]", "lt 0 can never hold"},
      {"[{index: 0, op: eq, value: 18446744073709551616}]", "a non-negative integer"},
      {"[{index: 0, op: eq, value: 0x1ffffffffffffffff}]", "a non-negative integer"},
      {"[{index: 0, op: eq, value: -1}]", "a non-negative integer"},
      {"[{index: 0, op: eq, value: 0xzz}]", "a non-negative integer"},
  };
  for (const Case& c : cases) {
    std::string text = std::string(R"(version: 1
default_action: {allow: {}}
rules:
  - name: s
    match: {syscalls: [socket], args: {scalars: )") +
                       c.scalars + R"(}}
    action: {deny: {}}
)";
    auto p = CompiledPolicy::LoadString(text, "s.yaml");
    ASSERT_FALSE(p.ok()) << c.scalars;
    EXPECT_THAT(std::string(p.status().message()), HasSubstr(c.want)) << c.scalars;
    EXPECT_THAT(std::string(p.status().message()), HasSubstr("rules[0] \"s\"")) << c.scalars;
  }
}

}  // namespace
}  // namespace seccomp_agent
