#!/usr/bin/env python3
"""Print the medians of the last `cargo bench -p mancard-protocol` run (criterion estimates)."""
import glob, json, os, sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "target", "criterion")

def fmt(ns):
    if ns < 1e3:
        return f"{ns:.0f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns / 1e6:.2f} ms"

for path in sorted(glob.glob(os.path.join(root, "protocol.*", "*", "new", "estimates.json"))):
    group, bench = path.split(os.sep)[-4:-2]
    median = json.load(open(path))["median"]["point_estimate"]
    print(f"{group[len('protocol.'):]}/{bench:<28} {fmt(median):>10}")
