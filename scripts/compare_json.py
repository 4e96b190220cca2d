#!/usr/bin/env python3
"""Compares two JSON files value by value: keys, lengths, strings and booleans exactly; numbers
within |a-b| <= atol + rtol*|b| (b: the reference, the second file). Keys named with --ignore are
skipped wherever they occur (e.g. paths that name different folders). Prints the worst numeric
difference and every mismatch (up to 20); exits 1 on any mismatch, 2 on bad usage."""
import argparse
import json
import sys


def walk(a, b, path, opts, out):
    if isinstance(a, dict) and isinstance(b, dict):
        keys_a = {k for k in a if k not in opts.ignore}
        keys_b = {k for k in b if k not in opts.ignore}
        for k in sorted(keys_a ^ keys_b):
            out["bad"].append(f"{path}.{k}: only in {'first' if k in keys_a else 'second'}")
        for k in sorted(keys_a & keys_b):
            walk(a[k], b[k], f"{path}.{k}", opts, out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out["bad"].append(f"{path}: length {len(a)} vs {len(b)}")
            return
        for i, (x, y) in enumerate(zip(a, b)):
            walk(x, y, f"{path}[{i}]", opts, out)
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        d = abs(a - b)
        if d > out["worst"][0]:
            out["worst"] = (d, path)
        if d > opts.atol + opts.rtol * abs(b):
            out["bad"].append(f"{path}: {a!r} vs {b!r} (|diff| {d:.3g})")
    elif a != b:
        out["bad"].append(f"{path}: {json.dumps(a)[:60]} vs {json.dumps(b)[:60]}")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("first")
    p.add_argument("reference")
    p.add_argument("--atol", type=float, default=0.0)
    p.add_argument("--rtol", type=float, default=0.0)
    p.add_argument("--ignore", action="append", default=[], help="a key name to skip (repeatable)")
    opts = p.parse_args()
    with open(opts.first) as f:
        a = json.load(f)
    with open(opts.reference) as f:
        b = json.load(f)
    out = {"bad": [], "worst": (0.0, "")}
    walk(a, b, "$", opts, out)
    worst = f"max |diff| {out['worst'][0]:.3g}" + (f" at {out['worst'][1]}" if out["worst"][1] else "")
    if out["bad"]:
        print(f"{opts.first} vs {opts.reference}: {len(out['bad'])} mismatch(es); {worst}")
        for line in out["bad"][:20]:
            print("  " + line)
        sys.exit(1)
    print(f"{opts.first} vs {opts.reference}: equal (atol {opts.atol:g}, rtol {opts.rtol:g}); {worst}")


if __name__ == "__main__":
    main()
