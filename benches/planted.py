#!/usr/bin/env python3
"""The events `flowsketch gen` planted (its truth.json) against the findings of a scan (JSON lines).

    benches/planted.py TRUTH.json FINDINGS.jsonl [LABEL]

Prints one markdown row: planted events at least 10 % above their threshold that were reported, events at least
10 % below that were reported (should be none), and those within 10 %. Exits 1 when an event 10 % above was
missed or one 10 % below was reported. Used by benches/compare.sh and benches/memory.sh.
"""
import json
import sys

truth = json.load(open(sys.argv[1]))
label = sys.argv[3] if len(sys.argv) > 3 else sys.argv[2]


def key(v):
    return (v.get("rule"), v["host"], v.get("peer"), v.get("port"))


found = set()
for line in open(sys.argv[2]):
    if line.strip():
        v = json.loads(line)
        if v.get("type", "finding") == "finding":
            found.add(key(v))
cells = {"above": [0, 0], "below": [0, 0], "near": [0, 0]}
for e in truth["events"]:
    t, c = e["threshold"], e["true_count"]
    d = float("inf") if t == 0 else (c - t) / t
    cell = cells["above" if d >= 0.1 else "below" if d <= -0.1 else "near"]
    cell[0] += key(e) in found
    cell[1] += 1


def f(c):
    return f"{c[0]} / {c[1]}"


print(f"| {label} | {f(cells['above'])} | {f(cells['below'])} | {f(cells['near'])} |")
ok = cells["above"][0] == cells["above"][1] and cells["below"][0] == 0
sys.exit(0 if ok else 1)
