#!/usr/bin/env python3
"""Summarize a chrome trace written by `circuitscope bench attribute --profile FILE`.

Prints the total time of each circuitscope phase (cs::*), and within each phase (or, with no
phases, the whole trace) the ops that took the most time, counting only top-level ops (an op
nested in another op is part of its parent's time).
usage: profile_summary.py TRACE [--top N]
"""
import collections
import json
import sys


def main():
    args = sys.argv[1:]
    top = 12
    if "--top" in args:
        i = args.index("--top")
        top = int(args[i + 1])
        del args[i:i + 2]
    if len(args) != 1:
        sys.exit(__doc__)
    with open(args[0]) as f:
        data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    ev = [e for e in events if e.get("ph") == "X" and "dur" in e]
    by_tid = collections.defaultdict(list)
    for e in ev:
        by_tid[e.get("tid")].append(e)
    phase_total = collections.Counter()
    phase_count = collections.Counter()
    ops = collections.defaultdict(collections.Counter)
    for tid, es in by_tid.items():
        es.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack = []  # open events: (end, name, is_phase)
        for e in es:
            t0, t1 = e["ts"], e["ts"] + e["dur"]
            while stack and stack[-1][0] <= t0:
                stack.pop()
            name = e["name"]
            phase = next((s[1] for s in reversed(stack) if s[2]), "(outside phases)")
            is_phase = name.startswith("cs::")
            if is_phase:
                phase_total[name] += e["dur"]
                phase_count[name] += 1
            elif not any(not s[2] for s in stack):  # a top-level op
                ops[phase][name] += e["dur"]
            stack.append((t1, name, is_phase))
    total = sum(ops[p][n] for p in ops for n in ops[p])
    print(f"top-level op time {total / 1e6:.3f} s")
    for p, t in sorted(phase_total.items(), key=lambda x: -x[1]):
        print(f"{p:24s} {t / 1e6:8.3f} s  ({phase_count[p]} times)")
    for p in sorted(ops, key=lambda p: -sum(ops[p].values())):
        s = sum(ops[p].values())
        print(f"\n[{p}] ops {s / 1e6:.3f} s")
        for n, t in ops[p].most_common(top):
            print(f"  {n:40s} {t / 1e6:8.3f} s")


if __name__ == "__main__":
    main()
