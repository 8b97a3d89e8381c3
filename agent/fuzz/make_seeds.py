#!/usr/bin/env python3
"""Regenerates the seed corpora in agent/fuzz/corpus/ (checked in).

Sources: the JSON samples in agent/handoff/message_test.cc, the policies
in agent/policy/README.md and the policy tests, hand-written decisions and
substitutes (below), plus edge cases. Run from the repository root:
    python3 agent/fuzz/make_seeds.py
Existing seed files are replaced; files named by hand (x-*) are kept.
"""
import hashlib
import os
import re
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "agent", "fuzz", "corpus")

# A C++ string literal: raw R"(...)" or ordinary "..." (escapes kept simple).
LIT = re.compile(r'R"\((.*?)\)"|"((?:[^"\\\n]|\\.)*)"', re.S)


def unescape(s):
    return bytes(s, "utf-8").decode("unicode_escape").encode("latin-1")


def literals(path):
    """Adjacent literals concatenated, as the C++ compiler does."""
    text = open(os.path.join(ROOT, path), encoding="utf-8").read()
    out, cur, last_end = [], None, -1
    for m in LIT.finditer(text):
        val = m.group(1).encode() if m.group(1) is not None else unescape(m.group(2))
        if cur is not None and text[last_end:m.start()].strip() == "":
            cur += val
        else:
            if cur is not None:
                out.append(cur)
            cur = val
        last_end = m.end()
    if cur is not None:
        out.append(cur)
    return out


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def clean(target):
    d = os.path.join(CORPUS, target)
    if os.path.isdir(d):
        for n in os.listdir(d):
            if not n.startswith("x-"):
                os.remove(os.path.join(d, n))


def h(data):
    return hashlib.sha1(data).hexdigest()[:12]


# --- handoff_message_fuzzer: control byte '=' (1 fd, 16-byte chunks) + bytes.
def handoff():
    clean("handoff_message")
    seen = set()
    for lit in literals("agent/handoff/message_test.cc"):
        s = lit.lstrip()
        if s.startswith(b"{") and b"ociVersion" in s and lit not in seen:
            seen.add(lit)
            write("handoff_message", "test-" + h(lit), b"=" + lit)
    runc = (b'{"ociVersion":"1.0.2-dev","fds":["seccompFd"],"pid":4321,"metadata":"m",'
            b'"state":{"ociVersion":"1.0.2-dev","id":"ctr","status":"creating","pid":4321,'
            b'"bundle":"/run/bundle","annotations":{"a":"b"}}}')
    write("handoff_message", "runc", b"=" + runc)
    write("handoff_message", "runc-0fds", b"<" + runc)  # 0x3c: 0 fds
    write("handoff_message", "runc-2msgs", b"A" + runc + runc)
    write("handoff_message", "escapes",
          b'=' + runc.replace(b'"ctr"', b'"c\\"t\\\\r\\u00e9}]"'))
    write("handoff_message", "deep", b"=" + b'{"a":' + b"[" * 40 + b"]" * 40 + b"}")
    write("handoff_message", "dupkey", b"=" + runc.replace(b'"pid":4321,"metadata"', b'"pid":1,"pid":4321,"metadata"'))
    write("handoff_message", "bigpid", b"=" + runc.replace(b'"pid":4321,"m', b'"pid":18446744073709551615,"m'))
    write("handoff_message", "floatpid", b"=" + runc.replace(b'"pid":4321,"m', b'"pid":4321.0,"m'))
    write("handoff_message", "ws-then-garbage", b"=  \n\t x")


# --- policy_fuzzer: policy text, optionally "\n#%EVENT%\n" + event bytes.
README_BLOCK = re.compile(r"```yaml\n(.*?)```", re.S)


def policy():
    clean("policy")
    seen = set()
    readme = open(os.path.join(ROOT, "agent/policy/README.md"), encoding="utf-8").read()
    for m in README_BLOCK.finditer(readme):
        seen.add(m.group(1).encode())
    for src in ["agent/policy/loader_test.cc", "agent/policy/policy_test.cc",
                "agent/policy/compiler_test.cc"]:
        for lit in literals(src):
            s = lit.lstrip()
            if (s.startswith(b"version") or s.startswith(b"{")) and len(lit) > 20:
                seen.add(lit)
    for lit in sorted(seen):
        write("policy", "test-" + h(lit), lit)
        # The same policy with an event (bytes for FuzzedDataProvider).
        write("policy", "ev-" + h(lit), lit + b"\n#%EVENT%\n" + bytes(range(0, 256, 7)) * 2)


# --- plugin_decision_fuzzer: header line + Decision in text format.
DECISIONS = {
    "allow": (b"openat 257 0xc000003e -100 0 0", b"allow {}\ncache { scope: SCOPE_EXACT_ARGS ttl_ms: 1000 }"),
    "noop": (b"mkdir 83 0xc000003e 0 0 0", b"no_opinion {}\nreason: \"not mine\""),
    "deny": (b"mkdir 83 0xc000003e 0 0 0", b"deny { errno_code: 13 }"),
    "deny-0": (b"mkdir 83 0xc000003e 0 0 0", b"deny { errno_code: 0 }"),
    "return": (b"write 1 0xc000003e 1 0x7ffe0000 5", b"return { value: 5 }"),
    "return-errno": (b"getpid 39 0xc000003e 0 0 0", b"return { value: -1 }"),
    "inject-openat": (b"openat 257 0xc000003e -100 0 0",
                      b'inject { nr: 257 args: 18446744073709551516 args: 0 args: 0 args: 0 '
                      b'args: 0 args: 0 args_in_buf_mask: 2 buf: "/srv/redirect/x\\000" }'),
    "inject-write": (b"write 1 0xc000003e 1 0x7ffe0000 5",
                     b'inject { nr: 1 args: 1 args: 0 args: 3 args: 0 args: 0 args: 0 '
                     b'args_in_buf_mask: 2 buf: "abc" }'),
    "inject-bind": (b"bind 49 0xc000003e 3 0x7ffe0000 16",
                    b'inject { nr: 49 args: 3 args: 0 args: 16 args: 0 args: 0 args: 0 '
                    b'args_in_buf_mask: 2 buf: "\\002\\000\\037\\220\\177\\000\\000\\001\\000\\000\\000\\000\\000\\000\\000\\000" }'),
    "inject-i386": (b"write 4 0x40000003 1 0 1",
                    b'inject { nr: 4 args: 1 args: 0 args: 1 args: 0 args: 0 args: 0 '
                    b'args_in_buf_mask: 2 buf: "a" }'),
    "redirect": (b"openat 257 0xc000003e -100 0 0",
                 b'redirect_open { exact { key: "/etc/hosts" value: "/srv/redirect/hosts" } '
                 b'prefix { key: "/data/" value: "/var/lib/seccomp-agent/data/" } }'),
    "redirect-escape": (b"open 2 0xc000003e 0 0 0",
                        b'redirect_open { exact { key: "/etc/x" value: "/srv/redirect/../etc" } }'),
    "rewrite-bind": (b"bind 49 0xc000003e 3 0 16",
                     b'rewrite_bind { map { key: "0.0.0.0:80" value: "127.0.0.1:8080" } '
                     b'map { key: "[::]:80" value: "[::1]:8080" } map { key: "/run/a.sock" value: "@abs" } }'),
    "replace-write": (b"write 1 0xc000003e 1 0 5", b'replace_write { replace: "HELLO" }'),
    "replace-regex": (b"write 1 0xc000003e 1 0 5", b'replace_write { redact_regex: "[0-9]+" redaction: "#" }'),
    "bad-scope": (b"write 1 0xc000003e 1 0 5", b"allow {}\ncache { scope: 7 }"),
    "empty": (b"", b""),
}


def decision():
    clean("plugin_decision")
    for name, (hdr, body) in DECISIONS.items():
        write("plugin_decision", name, hdr + b"\n" + body + b"\n")


# --- injector_substitute_fuzzer: 82-byte header + buf.
X86_64 = 0xC000003E
I386 = 0x40000003


def sub(flags, nr, args, mask, trapped_nr, arch, task_count, builder, buf):
    args = [a & 0xFFFFFFFFFFFFFFFF for a in args]
    return (struct.pack("<Bq6QIqIQB", flags, nr, *args, mask, trapped_nr, arch, task_count, builder)
            + buf)


def substitute():
    clean("injector_substitute")
    sin = bytes([2, 0, 0x1F, 0x90, 127, 0, 0, 1]) + bytes(8)
    seeds = {
        "openat": sub(0, 257, [-100, 0, 0o2000000, 0, 0, 0], 2, 257, X86_64, 0, 0, b"/etc/hosts\0"),
        "open-emul": sub(1, 2, [0, 0, 0, 0, 0, 0], 1, 2, X86_64, 0, 1, b"/a\0"),
        "open-kernel": sub(0, 2, [0, 0, 0, 0, 0, 0], 1, 2, X86_64, 0, 1, b"/a\0"),
        "bind": sub(0, 49, [3, 0, 16, 0, 0, 0], 2, 49, X86_64, 0, 2, sin),
        "bind-long": sub(0, 49, [3, 0, 129, 0, 0, 0], 2, 49, X86_64, 0, 2, bytes(200)),
        "write": sub(2, 1, [1, 0, 3, 0, 0, 0], 2, 1, X86_64, 5, 3, b"abc"),
        "write-past": sub(0, 1, [1, 1, 3, 0, 0, 0], 2, 1, X86_64, 0, 3, b"abc"),
        "write-i386": sub(0, 1, [1, 0, 1, 0, 0, 0], 2, 4, I386, 0, 3, b"a"),
        "mask-wide": sub(0, 257, [-100, 0, 0, 0, 0, 0], 0x42, 257, X86_64, 0, 0, b"/x\0"),
        "offset-end": sub(0, 257, [-100, 3, 0, 0, 0, 0], 2, 257, X86_64, 0, 0, b"/x\0"),
        "no-nul": sub(0, 257, [-100, 0, 0, 0, 0, 0], 2, 257, X86_64, 0, 0, b"/xyz"),
        "other-nr": sub(0, 59, [0, 0, 0, 0, 0, 0], 1, 59, X86_64, 0, 0, b""),
        "nr-mismatch": sub(0, 1, [1, 0, 1, 0, 0, 0], 2, 257, X86_64, 0, 3, b"a"),
    }
    for name, data in seeds.items():
        write("injector_substitute", name, data)


def main():
    handoff()
    policy()
    decision()
    substitute()
    for t in sorted(os.listdir(CORPUS)):
        print(t, len(os.listdir(os.path.join(CORPUS, t))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
