#!/usr/bin/env python3
"""What a checkpoint sweep costs: time per unit, measured or given, extrapolated to a sweep.

Measured: --dir DIR reads the finished units of a sweep folder (units/*/chunk-*.json: seconds and
pairs of each) and uses their seconds per pair. Given: --per-pair S (e.g. an H200 figure from
`circuitscope bench attribute`). Then for --checkpoints C (the base included), --pairs P, --chunk K
and --shards N it prints the units, the compute on one worker, and the wall time of an N-task array
(each task gets ceil(units / N) contiguous units, plus one model load per checkpoint it touches).

--model qwen2.5-1.5b|qwen3-8b|LxDxHxKxF (layers x d_model x heads x kv_heads x d_mlp) adds the
memory of one unit on paper: bf16 weights, and EAP's largest buffer, the per-upstream-node
activation differences [U, batch, tokens, d_model] in float32 with U = 1 + layers * (heads + 1).

  scripts/sweep_cost.py --dir out/sweep --checkpoints 26 --pairs 256 --chunk 64 --shards 16
  scripts/sweep_cost.py --per-pair 0.11 --model qwen2.5-1.5b --tokens 256 --batch-size 8 \\
      --checkpoints 26 --pairs 256 --chunk 64 --shards 16 --load-seconds 20
"""
import argparse
import glob
import json
import math
import os
import statistics
import sys

# layers, d_model, heads, kv_heads, d_mlp, vocab, tied embeddings: the models' config.json values.
PRESETS = {
    "qwen2.5-1.5b": (28, 1536, 12, 2, 8960, 151936, True),
    "qwen3-8b": (36, 4096, 32, 8, 12288, 151936, False),
}


def params(layers, d, heads, kv, f, vocab, tied):
    head_dim = 128 if d == 4096 and heads == 32 else d // heads  # Qwen3-8B: head_dim 128
    attn = d * heads * head_dim + 2 * d * kv * head_dim + heads * head_dim * d
    mlp = 3 * d * f
    return layers * (attn + mlp + 2 * d) + (1 if tied else 2) * vocab * d + d


def duration(s):
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dir", help="a sweep folder with finished units")
    src.add_argument("--per-pair", type=float, help="seconds per pair (EAP-IG, one device)")
    p.add_argument("--checkpoints", type=int, required=True, help="checkpoints, the base included")
    p.add_argument("--pairs", type=int, required=True)
    p.add_argument("--chunk", type=int, default=64, help="pairs per unit (chunk_size)")
    p.add_argument("--shards", type=int, default=16)
    p.add_argument("--load-seconds", type=float, default=0.0, help="one checkpoint load (from --dir: not separated)")
    p.add_argument("--model", help="qwen2.5-1.5b, qwen3-8b, or LxDxHxKxF")
    p.add_argument("--tokens", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=8)
    a = p.parse_args()

    if a.dir:
        units = []
        for f in glob.glob(os.path.join(a.dir, "units", "*", "chunk-*.json")):
            with open(f) as fh:
                u = json.load(fh)
            if u.get("n_examples", 0) > 0:
                units.append((u["run"]["seconds"] if "run" in u else u["seconds"], u["n_examples"]))
        if not units:
            sys.exit(f"sweep_cost: no finished unit with pairs under {a.dir}/units")
        per_pair = statistics.median(s / n for s, n in units)
        print(f"measured: {len(units)} unit(s) in {a.dir}; median {per_pair:.4g} s per pair "
              f"(units {min(s for s, _ in units):.2f}-{max(s for s, _ in units):.2f} s, "
              f"model loads and pair building included)")
    else:
        per_pair = a.per_pair
        print(f"given: {per_pair:.4g} s per pair")

    chunks = math.ceil(a.pairs / a.chunk)
    n_units = a.checkpoints * chunks
    unit_s = per_pair * a.chunk
    one = a.checkpoints * a.pairs * per_pair + a.checkpoints * a.load_seconds
    per_task = math.ceil(n_units / a.shards)
    # Contiguous blocks: a task's units span at most ceil(per_task / chunks) + 1 checkpoints.
    loads = min(a.checkpoints, math.ceil(per_task / chunks) + 1)
    wall = per_task * unit_s + loads * a.load_seconds
    print(f"sweep: {a.checkpoints} checkpoints x {a.pairs} pairs, chunks of {a.chunk}: {n_units} units of "
          f"{duration(unit_s)}")
    print(f"one device: {duration(one)}")
    print(f"{a.shards}-task array: {per_task} units per task, up to {loads} model loads: {duration(wall)} wall, "
          f"{duration(wall * a.shards)} device time")

    if a.model:
        shape = PRESETS.get(a.model)
        if shape is None:
            try:
                layers, d, heads, kv, f = (int(x) for x in a.model.split("x"))
            except ValueError:
                sys.exit(f"sweep_cost: --model {a.model!r}: expected {', '.join(PRESETS)} or LxDxHxKxF")
            shape = (layers, d, heads, kv, f, 151936, False)
        layers, d, heads, kv, f, vocab, _ = shape
        w = 2 * params(*shape)
        upstream = 1 + layers * (heads + 1)
        delta = 4 * upstream * a.batch_size * a.tokens * d
        logits = 4 * a.batch_size * a.tokens * vocab
        gib = 1024 ** 3
        print(f"memory of one unit ({a.model}, batch {a.batch_size} x {a.tokens} tokens): weights {w / gib:.1f} GiB "
              f"(bf16), activation differences {delta / gib:.1f} GiB ({upstream} upstream nodes, float32), "
              f"logits {logits / gib:.1f} GiB (float32); {(w + delta + logits) / gib:.1f} GiB before the "
              f"forward/backward activations")


if __name__ == "__main__":
    main()
