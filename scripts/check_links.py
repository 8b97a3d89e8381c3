#!/usr/bin/env python3
"""Every relative link in the repository's Markdown files resolves.

Usage: check_links.py [REPO_DIR]

Reads the Markdown files git tracks (plus untracked, not ignored ones),
finds inline links and images `[text](target)` and reference definitions
`[label]: target`, skips URLs (scheme:) and in-page anchors (#...), and
checks that each relative target (without its #fragment) exists, relative
to the file's folder. Prints `PASSED: links FILE` or `FAILED: links FILE:
...` per file, then `N passed, N failed`; exit 0 when all pass.
"""
import os
import re
import subprocess
import sys

INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFDEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"`[^`]*`")


def markdown_files(repo):
    out = subprocess.run(
        ["git", "-C", repo, "ls-files", "--cached", "--others", "--exclude-standard", "*.md"],
        check=True, capture_output=True, text=True).stdout
    return sorted(p for p in out.splitlines() if os.path.exists(os.path.join(repo, p)))


def targets(text):
    in_fence = False
    for n, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        line = CODE_SPAN.sub("", line)
        for m in INLINE.finditer(line):
            yield n, m.group(1)
        m = REFDEF.match(line)
        if m:
            yield n, m.group(1)


def broken(repo, path):
    bad = []
    with open(os.path.join(repo, path), encoding="utf-8", errors="replace") as fh:
        text = fh.read()
    base = os.path.dirname(os.path.join(repo, path))
    for n, t in targets(text):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", t) or t.startswith("#"):
            continue
        target = t.split("#", 1)[0].split("?", 1)[0]
        if not target:
            continue
        resolved = os.path.normpath(os.path.join(base, target))
        inside = os.path.commonpath([os.path.realpath(repo), os.path.realpath(resolved)])
        if inside != os.path.realpath(repo):
            bad.append(f"{path}:{n}: {t} points outside the repository")
        elif not os.path.exists(resolved):
            bad.append(f"{path}:{n}: {t} does not exist")
    return bad


def main():
    repo = sys.argv[1] if len(sys.argv) > 1 else "."
    passed = failed = 0
    for path in markdown_files(repo):
        bad = broken(repo, path)
        if bad:
            failed += 1
            print(f"FAILED: links {path}: " + "; ".join(bad))
        else:
            passed += 1
            print(f"PASSED: links {path}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
