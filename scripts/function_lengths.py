#!/usr/bin/env python3
"""Lists C++ functions longer than a limit (default 120 lines).

  scripts/function_lengths.py [--limit N] [--all]

Reads the tracked *.cc and *.h files outside kernel/. Without --all, test
code is left out: *_test.cc, integration/, agent/testing/, agent/bench/ and
agent/fuzz/. Prints `LINES FILE:LINE` per function over the limit, longest
first; exit 1 when there is one.

A function is a brace block whose head ends in `)` (with const, override,
noexcept, a trailing return type...) and that is not inside another
function (a lambda counts toward the function that holds it). Comments,
strings, raw strings and character literals are blanked first, so their
braces count for nothing. It reads text, not C++: a macro that opens a
block may mislead it, which is why it says where it looked.
"""
import argparse
import re
import subprocess
import sys

TOKENS = re.compile(
    r'R"(?P<d>[^(\s]*)\((?:.|\n)*?\)(?P=d)"'  # raw string
    r'|"(?:\\.|[^"\\\n])*"'  # string
    r"|(?<![0-9a-fA-F])'(?:\\.|[^'\\\n])*'"  # char (not a digit separator)
    r"|//[^\n]*|/\*(?:.|\n)*?\*/")  # comments
NAMESPACE = re.compile(r"(namespace[\w\s:]*|extern\s*)$")
FUNCTION_HEAD = re.compile(
    r"\)\s*(const|override|final|noexcept|mutable|->[\w:<>\s,*&]+|\s)*$")
TYPE_HEAD = re.compile(r"\b(class|struct|enum|union)\b[^()]*$")
TEST_CODE = re.compile(r"(_test\.cc$|^integration/|^agent/(testing|bench|fuzz)/)")


def blank(src):
    return TOKENS.sub(lambda m: " " + "\n" * m.group(0).count("\n"), src)


def functions(path):
    """Yields (lines, first line) for each outermost function in PATH."""
    stack, line, head = [], 1, []
    for ch in blank(open(path, encoding="utf-8").read()):
        if ch == "\n":
            line += 1
        if ch == "{":
            h = " ".join("".join(head).split())
            if all(k == "ns" for k, _ in stack) and NAMESPACE.search(h):
                kind = "ns"
            elif FUNCTION_HEAD.search(h) and not TYPE_HEAD.search(h):
                kind = "fn"
            else:
                kind = "block"
            stack.append((kind, line))
            head = []
        elif ch == "}":
            if stack:
                kind, first = stack.pop()
                if kind == "fn" and not any(k == "fn" for k, _ in stack):
                    yield line - first + 1, first
            head = []
        elif ch == ";":
            head = []
        else:
            head.append(ch)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=120)
    ap.add_argument("--all", action="store_true", help="include test code")
    args = ap.parse_args()
    files = subprocess.check_output(["git", "ls-files", "*.cc", "*.h"], text=True).split()
    long = []
    for f in files:
        if f.startswith("kernel/") or (not args.all and TEST_CODE.search(f)):
            continue
        long += [(n, f, first) for n, first in functions(f) if n > args.limit]
    for n, f, first in sorted(long, reverse=True):
        print(f"{n} {f}:{first}")
    return 1 if long else 0


if __name__ == "__main__":
    sys.exit(main())
