#!/usr/bin/env python3
"""Sums test cases across Bazel's test.xml files and extra 'N passed, N failed' logs.

Usage: count_tests.py [--bazel-log LOG] TESTLOGS_DIR [EXTRA_LOG ...]

With --bazel-log, only the targets that `bazel test` reported in LOG are
counted (no stale test.xml from earlier runs), and a target that did not run
(NO STATUS, FAILED TO BUILD) counts as one failed case.
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


TARGET_LINE = re.compile(
    r"^(//[^\s:]*:[^\s]+)\s+(?:\(cached\)\s+)?(PASSED|FAILED|TIMEOUT|FLAKY|NO STATUS|FAILED TO BUILD|SKIPPED)")


def xml_paths(logs_dir, bazel_log):
    """test.xml files to count, plus targets that produced none."""
    if bazel_log is None:
        return sorted(glob.glob(os.path.join(logs_dir, "**", "test.xml"), recursive=True)), []
    paths, missing = [], []
    with open(bazel_log, errors="replace") as fh:
        for line in fh:
            m = TARGET_LINE.match(line.strip())
            if not m:
                continue
            label, status = m.group(1), m.group(2)
            pkg, name = label[2:].split(":", 1)
            xml = os.path.join(logs_dir, pkg, name, "test.xml")
            if status in ("NO STATUS", "FAILED TO BUILD") or not os.path.exists(xml):
                missing.append(f"{label} ({status})")
            elif xml not in paths:
                paths.append(xml)
                if status in ("FAILED", "TIMEOUT") and count_xml(xml)[1] == 0:
                    # Failed outside any test case (a sanitizer report at
                    # exit, a crash after the last case, a timeout).
                    missing.append(f"{label} ({status} outside any test case)")
    return paths, missing


def main():
    args = sys.argv[1:]
    bazel_log = None
    if args and args[0] == "--bazel-log":
        bazel_log = args[1]
        args = args[2:]
    logs_dir = args[0]
    sys.argv = [sys.argv[0]] + args
    total_p = total_f = total_s = 0
    paths, missing = xml_paths(logs_dir, bazel_log)
    for m in missing:
        print(f"FAILED: {m}: did not run")
        total_f += 1
    for path in paths:
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
