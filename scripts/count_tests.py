#!/usr/bin/env python3
"""Sums test cases across Bazel's test.xml files and extra 'N passed, N failed' logs.

Usage: count_tests.py TESTLOGS_DIR [EXTRA_LOG ...]
Prints one line per failing case, then `N passed, N failed[, N skipped]`.
Exit status 0 when nothing failed.
"""
import glob
import os
import re
import sys
import xml.etree.ElementTree as ET


def count_xml(path):
    passed = failed = skipped = 0
    failures = []
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        return 0, 1, 0, [f"{path}: unreadable test.xml ({e})"]
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}.{case.get('name', '')}"
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
            failures.append(name)
        elif case.get("result") == "skipped" or case.find("skipped") is not None \
                or case.get("status") == "notrun":
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped, failures


def main():
    logs_dir = sys.argv[1]
    total_p = total_f = total_s = 0
    for path in sorted(glob.glob(os.path.join(logs_dir, "**", "test.xml"), recursive=True)):
        p, f, s, names = count_xml(path)
        total_p += p
        total_f += f
        total_s += s
        target = os.path.relpath(os.path.dirname(path), logs_dir)
        for n in names:
            print(f"FAILED: {target}: {n}")
    line = re.compile(r"^(?:\w+:\s*)?(\d+) passed, (\d+) failed(?:, (\d+) skipped)?\s*$")
    for extra in sys.argv[2:]:
        last = None
        if os.path.exists(extra):
            with open(extra, errors="replace") as fh:
                for l in fh:
                    m = line.match(l.strip())
                    if m:
                        last = m
        if last is None:
            print(f"FAILED: {extra}: no 'N passed, N failed' line (suite did not finish)")
            total_f += 1
            continue
        total_p += int(last.group(1))
        total_f += int(last.group(2))
        total_s += int(last.group(3) or 0)
        if int(last.group(2)):
            print(f"FAILED: {extra}: {last.group(2)} failed")
    summary = f"{total_p} passed, {total_f} failed"
    if total_s:
        summary += f", {total_s} skipped"
    print(summary)
    return 1 if total_f else 0


if __name__ == "__main__":
    sys.exit(main())
