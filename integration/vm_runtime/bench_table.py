#!/usr/bin/env python3
"""The openat benchmark table of integration/vm_runtime from its console log.

Usage: bench_table.py CONSOLE_LOG

Reads the guest's "BENCH-<case> path=P calls=N median_ns=M ..." lines (one
per round), takes each row's median of round medians and prints a markdown
table with ratios against CONTINUE, all measured in the same VM run.
Exit status 1 if a row is missing.
"""
import re
import statistics
import sys

# (label, guest case, path): the case names the agent (or none), the path
# the rule (/bench/in is redirected to /bench/out, /bench/plain has none).
ROWS = [
    ("no seccomp trap", "bench-none", "/bench/plain"),
    ("CONTINUE (trapped, allowed)", "bench-kernel", "/bench/plain"),
    ("redirect_open, INJECT (kernel backend)", "bench-kernel", "/bench/in"),
    ("redirect_open, emulation (`injection: {mode: emulate}`)", "bench-emulate", "/bench/in"),
]
LINE = re.compile(r"^BENCH-(\S+) path=(\S+) calls=(\d+) median_ns=(\d+)")


def main():
    medians = {}
    calls = set()
    with open(sys.argv[1], errors="replace") as fh:
        for line in fh:
            m = LINE.match(line.strip())
            if m:
                medians.setdefault((m.group(1), m.group(2)), []).append(int(m.group(4)))
                calls.add(m.group(3))
    rows = []
    for label, case, path in ROWS:
        got = medians.get((case, path))
        if not got:
            print(f"bench_table: no BENCH line for {case} {path}", file=sys.stderr)
            return 1
        rows.append((label, statistics.median(got), len(got)))
    cont = rows[1][1]
    inject = rows[2][1]
    print(f"\nopenat + close in a runc container, {'/'.join(sorted(calls))} calls per round, "
          "median of the rounds' medians (TCG: compare ratios only)\n")
    print("| path | median ns/call | rounds | vs CONTINUE | vs INJECT |")
    print("| --- | --- | --- | --- | --- |")
    for label, med, n in rows:
        print(f"| {label} | {med:.0f} | {n} | {med / cont:.3g}x | {med / inject:.3g}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
