#!/usr/bin/env python3
"""The multi-seed toy study's table and verdicts (scripts/study_toy.sh writes the inputs).

usage: study_summary.py OUT [--out study.json] [--markdown study.md]

Reads OUT/seed-*/ (eval_{base,sft,grpo}.json, sweep_{sft,grpo}/summary.json and reports,
toy/grpo/rewards.jsonl, interventions_{sft,grpo}/summary.json) and reports, over seeds, the mean,
sample standard deviation, range and a 95% t-interval of each quantity. A claim's verdict follows
fixed rules written next to it in the output: a statistic "supports" when its 95% interval over
seeds lies wholly on the claimed side, "contradicts" when it lies wholly on the other side, and
"cannot tell" otherwise.
"""
import argparse
import glob
import json
import math
import os
import sys

# Two-sided 95% Student t quantiles by degrees of freedom (n - 1).
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
       10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


def t95(df):
    # Between tabulated values, the next smaller df's quantile: slightly wider intervals, never narrower.
    if df in T95:
        return T95[df]
    keys = sorted(k for k in T95 if k <= df)
    return T95[keys[-1]] if keys else float("nan")


def stats(values):
    v = [x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))]
    n = len(v)
    if n == 0:
        return {"n": 0, "mean": None, "sd": None, "min": None, "max": None, "ci95": None, "pred95": None, "values": values}
    mean = sum(v) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1)) if n > 1 else None
    half = t95(n - 1) * sd / math.sqrt(n) if n > 1 else None
    # Where one more run (another seed, or this seed on another machine) should fall, 95%.
    pred = t95(n - 1) * sd * math.sqrt(1 + 1 / n) if n > 1 else None
    return {"n": n, "mean": mean, "sd": sd, "min": min(v), "max": max(v),
            "ci95": [mean - half, mean + half] if half is not None else None,
            "pred95": [mean - pred, mean + pred] if pred is not None else None, "values": values}


def verdict(s, threshold=0.0, direction=+1):
    """'supports' if the 95% interval lies beyond threshold in `direction`, 'contradicts' if wholly on the other side."""
    if not s["ci95"]:
        return "cannot tell"
    lo, hi = s["ci95"]
    if direction > 0:
        return "supports" if lo > threshold else "contradicts" if hi < threshold else "cannot tell"
    return "supports" if hi < threshold else "contradicts" if lo > threshold else "cannot tell"


def combine(verdicts):
    if all(v == "supports" for v in verdicts):
        return "supports"
    if any(v == "contradicts" for v in verdicts):
        return "contradicts"
    return "cannot tell"


def load(path):
    with open(path) as f:
        return json.load(f)


def pearson(x, y):
    n = len(x)
    if n < 3:
        return None
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return None
    return sum((a - mx) * (b - my) for a, b in zip(x, y)) / math.sqrt(sxx * syy)


def sweep_stats(summary, report_dir):
    """Per-sweep quantities: final counts, churn between consecutive checkpoints, retention, correlation."""
    steps = [s for s in summary["steps"] if s["step"] > 0]  # checkpoints, without the base
    idx = [i for i, s in enumerate(summary["steps"]) if s["step"] > 0]
    heads = summary["heads"]
    base_heads = summary["base"]["circuit_heads"]
    last = steps[-1]
    # Churn: heads that enter / leave the circuit between consecutive checkpoints, per interval,
    # relative to the circuit's size at the start of the interval.
    added, dropped, drop_rate = [], [], []
    for a, b in zip(idx, idx[1:]):
        n_add = sum(1 for h in heads if h["in_circuit"][b] and not h["in_circuit"][a])
        n_drop = sum(1 for h in heads if h["in_circuit"][a] and not h["in_circuit"][b])
        size = sum(1 for h in heads if h["in_circuit"][a])
        added.append(n_add)
        dropped.append(n_drop)
        drop_rate.append(n_drop / size if size else 0.0)
    # Retention: of the heads that emerged at some checkpoint, the share still in the last circuit.
    emerged = [h for h in heads if h["first_emergence_step"] is not None]
    retained_share = (sum(1 for h in emerged if h["in_circuit"][idx[-1]]) / len(emerged)) if emerged else None
    rewards = [s["reward"] for s in steps]
    emergent = [s["emergent"] for s in steps]
    corr = pearson(emergent, rewards) if all(r is not None for r in rewards) else None
    final_report = load(os.path.join(report_dir, os.path.basename(last["report"])))
    base_report = load(os.path.join(report_dir, "base.json"))
    faith = lambda r: (r.get("faithfulness") or {}).get("normalized")
    edges = lambda r: (r.get("circuit") or {}).get("edges")
    return {
        "checkpoints": len(steps),
        "checkpoint_steps": [s["step"] for s in steps],
        "base_heads": base_heads,
        "final_heads": last["circuit_heads"],
        "emergent": last["emergent"],
        "lost": last["lost"],
        "retained": base_heads - last["lost"],
        "emergent_per_checkpoint": emergent,
        "reward_per_checkpoint": rewards,
        "reward_key": (summary.get("log") or {}).get("key"),
        "added_per_interval": added,
        "dropped_per_interval": dropped,
        "mean_added": sum(added) / len(added) if added else None,
        "mean_dropped": sum(dropped) / len(dropped) if dropped else None,
        "mean_drop_rate": sum(drop_rate) / len(drop_rate) if drop_rate else None,
        # The second half of the intervals only: SFT's first intervals are the circuit forming, GRPO
        # starts from a trained model.
        "late_drop_rate": (sum(drop_rate[len(drop_rate) // 2:]) / len(drop_rate[len(drop_rate) // 2:])) if drop_rate else None,
        "emerged_ever": len(emerged),
        "retained_share": retained_share,
        "emergent_vs_reward_pearson": corr,
        "faithfulness": faith(final_report),
        "edges": edges(final_report),
        "base_faithfulness": faith(base_report),
    }


def seed_record(d):
    r = {"seed": int(d.rsplit("-", 1)[1]), "dir": d}
    for s in ("base", "sft", "grpo"):
        r[f"acc_{s}"] = load(os.path.join(d, f"eval_{s}.json"))["accuracy"]
    for post in ("sft", "grpo"):
        r[post] = sweep_stats(load(os.path.join(d, f"sweep_{post}", "summary.json")), os.path.join(d, f"sweep_{post}", "reports"))
        iv = load(os.path.join(d, f"interventions_{post}", "summary.json"))
        base = next(c for c in iv["conditions"] if c["name"] == "baseline")
        ctl = iv["controls"][0]
        r[post]["ablation"] = {
            "baseline": base["accuracy"]["mean"],
            "emergent": ctl["accuracy"],
            "controls_mean": ctl["control_accuracy_mean"],
            "diff_vs_controls": ctl["diff_vs_controls"]["mean"],
            "diff_vs_controls_ci95": ctl["diff_vs_controls"]["ci95"],
            "heads": ctl["heads"],
        }
    rw = [json.loads(l) for l in open(os.path.join(d, "toy", "grpo", "rewards.jsonl")) if l.strip()]
    q = max(1, len(rw) // 5)
    mean = lambda xs: sum(x["mean_reward"] for x in xs) / len(xs)
    r["grpo_reward_first"] = mean(rw[:q])
    r["grpo_reward_last"] = mean(rw[-q:])
    r["grpo_steps"] = len(rw)
    return r


def fmt(s, digits=3):
    if s["mean"] is None:
        return "n/a"
    f = lambda x: f"{x:.{digits}f}"
    out = f(s["mean"])
    if s["sd"] is not None:
        out += f" ± {f(s['sd'])} [{f(s['min'])}, {f(s['max'])}]"
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--out")
    ap.add_argument("--markdown")
    a = ap.parse_args()
    dirs = sorted(glob.glob(os.path.join(a.out_dir, "seed-*")), key=lambda p: int(p.rsplit("-", 1)[1]))
    seeds, incomplete = [], []
    for d in dirs:
        try:
            seeds.append(seed_record(d))
        except (OSError, KeyError, StopIteration, ValueError, IndexError) as e:
            incomplete.append(f"{d}: {type(e).__name__}: {e}")
    for m in incomplete:
        print(f"study_summary: skipping incomplete {m}", file=sys.stderr)
    if not seeds:
        print(f"study_summary: no complete seed under {a.out_dir}", file=sys.stderr)
        return 1

    col = lambda f: stats([f(s) for s in seeds])
    q = {
        "acc_base": col(lambda s: s["acc_base"]),
        "acc_sft": col(lambda s: s["acc_sft"]),
        "acc_grpo": col(lambda s: s["acc_grpo"]),
        "acc_grpo_minus_sft": col(lambda s: s["acc_grpo"] - s["acc_sft"]),
        "grpo_reward_first": col(lambda s: s["grpo_reward_first"]),
        "grpo_reward_last": col(lambda s: s["grpo_reward_last"]),
        "grpo_reward_gain": col(lambda s: s["grpo_reward_last"] - s["grpo_reward_first"]),
    }
    for post in ("sft", "grpo"):
        for k in ("base_heads", "final_heads", "emergent", "retained", "lost", "faithfulness", "edges", "base_faithfulness",
                  "mean_added", "mean_dropped", "mean_drop_rate", "late_drop_rate", "emerged_ever", "retained_share",
                  "emergent_vs_reward_pearson"):
            q[f"{post}_{k}"] = col(lambda s, k=k: s[post][k])
        q[f"{post}_emergent_minus_lost"] = col(lambda s: s[post]["emergent"] - s[post]["lost"])
        for k in ("baseline", "emergent", "controls_mean", "diff_vs_controls"):
            q[f"{post}_ablation_{k}"] = col(lambda s, k=k: s[post]["ablation"][k])
    q["sampled_grpo_minus_sft"] = col(lambda s: s["grpo"]["ablation"]["baseline"] - s["sft"]["ablation"]["baseline"])
    q["drop_rate_grpo_minus_sft"] = col(lambda s: s["grpo"]["mean_drop_rate"] - s["sft"]["mean_drop_rate"])

    curves = [s["grpo"]["reward_per_checkpoint"] for s in seeds]
    if all(len(c) == len(curves[0]) and None not in c for c in curves):
        q["grpo_reward_curve_steps"] = seeds[0]["grpo"]["checkpoint_steps"]
        q["grpo_reward_curve"] = [stats([c[i] for c in curves]) for i in range(len(curves[0]))]

    claims = []
    c1 = [("SFT emergent - lost heads at the last checkpoint > 0", verdict(q["sft_emergent_minus_lost"], 0, +1)),
          ("share of SFT-emerged heads still in the last circuit > 0.5", verdict(q["sft_retained_share"], 0.5, +1))]
    claims.append({"claim": "1. SFT adds heads that accumulate and stay, with few lost", "tests": c1,
                   "verdict": combine([v for _, v in c1])})
    c2 = [("GRPO's share of circuit heads dropped per checkpoint interval - SFT's > 0", verdict(q["drop_rate_grpo_minus_sft"], 0, +1)),
          ("Pearson(emergent heads, mean reward) over GRPO checkpoints > 0", verdict(q["grpo_emergent_vs_reward_pearson"], 0, +1))]
    claims.append({"claim": "2. GRPO adds and prunes heads dynamically; new heads follow the reward", "tests": c2,
                   "verdict": combine([v for _, v in c2])})
    c3 = [("SFT: accuracy with emergent heads zeroed - with random heads zeroed < 0", verdict(q["sft_ablation_diff_vs_controls"], 0, -1)),
          ("GRPO: the same < 0", verdict(q["grpo_ablation_diff_vs_controls"], 0, -1))]
    claims.append({"claim": "3. Ablating emergent heads hurts more than ablating random heads", "tests": c3,
                   "verdict": combine([v for _, v in c3])})
    grpo_effect = [("GRPO - SFT held-out greedy accuracy", verdict(q["acc_grpo_minus_sft"], 0, +1)),
                   ("GRPO - SFT held-out sampled accuracy (T 0.6)", verdict(q["sampled_grpo_minus_sft"], 0, +1)),
                   ("GRPO training reward, last 20% of steps - first 20%", verdict(q["grpo_reward_gain"], 0, +1))]

    result = {"schema_version": 1, "seeds": [s["seed"] for s in seeds], "incomplete": incomplete,
              "quantities": q, "claims": claims, "grpo_effect": grpo_effect, "per_seed": seeds}
    if a.out:
        tmp = a.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
        os.replace(tmp, a.out)

    L = []
    n = len(seeds)
    L.append(f"Seeds: {', '.join(str(s['seed']) for s in seeds)} ({n}). Cells: mean ± sample sd [min, max] over seeds.")
    L.append("")
    L.append("| quantity | SFT | GRPO |")
    L.append("|---|---|---|")
    L.append(f"| held-out greedy accuracy (base: {fmt(q['acc_base'])}) | {fmt(q['acc_sft'])} | {fmt(q['acc_grpo'])} |")
    L.append(f"| base circuit heads | {fmt(q['sft_base_heads'], 1)} | {fmt(q['grpo_base_heads'], 1)} |")
    L.append(f"| last checkpoint: circuit heads | {fmt(q['sft_final_heads'], 1)} | {fmt(q['grpo_final_heads'], 1)} |")
    for k, name in (("emergent", "emergent"), ("retained", "retained"), ("lost", "lost")):
        L.append(f"| last checkpoint: {name} heads | {fmt(q['sft_' + k], 1)} | {fmt(q['grpo_' + k], 1)} |")
    L.append(f"| last checkpoint: circuit edges | {fmt(q['sft_edges'], 1)} | {fmt(q['grpo_edges'], 1)} |")
    L.append(f"| last checkpoint: faithfulness | {fmt(q['sft_faithfulness'])} | {fmt(q['grpo_faithfulness'])} |")
    L.append(f"| heads added per checkpoint interval | {fmt(q['sft_mean_added'], 2)} | {fmt(q['grpo_mean_added'], 2)} |")
    L.append(f"| heads dropped per checkpoint interval | {fmt(q['sft_mean_dropped'], 2)} | {fmt(q['grpo_mean_dropped'], 2)} |")
    L.append(f"| share of circuit heads dropped per interval | {fmt(q['sft_mean_drop_rate'])} | {fmt(q['grpo_mean_drop_rate'])} |")
    L.append(f"| the same, second half of the intervals | {fmt(q['sft_late_drop_rate'])} | {fmt(q['grpo_late_drop_rate'])} |")
    L.append(f"| heads that ever emerged | {fmt(q['sft_emerged_ever'], 1)} | {fmt(q['grpo_emerged_ever'], 1)} |")
    L.append(f"| of those, share in the last circuit | {fmt(q['sft_retained_share'])} | {fmt(q['grpo_retained_share'])} |")
    key_sft = seeds[0]["sft"]["reward_key"] or "-"
    key_grpo = seeds[0]["grpo"]["reward_key"] or "-"
    L.append(f"| Pearson(emergent heads, log value) over checkpoints (SFT: {key_sft}, GRPO: {key_grpo}) | "
             f"{fmt(q['sft_emergent_vs_reward_pearson'])} | {fmt(q['grpo_emergent_vs_reward_pearson'])} |")
    L.append(f"| eval baseline accuracy (4 samples, T 0.6) | {fmt(q['sft_ablation_baseline'])} | {fmt(q['grpo_ablation_baseline'])} |")
    L.append(f"| 4 emergent heads zeroed | {fmt(q['sft_ablation_emergent'])} | {fmt(q['grpo_ablation_emergent'])} |")
    L.append(f"| 4 random heads zeroed (mean of 5 sets) | {fmt(q['sft_ablation_controls_mean'])} | {fmt(q['grpo_ablation_controls_mean'])} |")
    L.append(f"| emergent - random | {fmt(q['sft_ablation_diff_vs_controls'])} | {fmt(q['grpo_ablation_diff_vs_controls'])} |")
    L.append("")
    L.append(f"GRPO ({seeds[0]['grpo_steps']} steps): training reward {fmt(q['grpo_reward_first'])} in the first 20% of "
             f"steps, {fmt(q['grpo_reward_last'])} in the last 20%; gain {fmt(q['grpo_reward_gain'])}, "
             f"95% interval {ci(q['grpo_reward_gain'])}. Held-out accuracy GRPO - SFT: {fmt(q['acc_grpo_minus_sft'])}, "
             f"95% interval {ci(q['acc_grpo_minus_sft'])}; held-out sampled accuracy (T 0.6) GRPO - SFT: "
             f"{fmt(q['sampled_grpo_minus_sft'])}, 95% interval {ci(q['sampled_grpo_minus_sft'])}.")
    if "grpo_reward_curve" in q:
        L.append("")
        L.append("GRPO training reward by checkpoint (mean of the steps since the previous checkpoint; mean ± sd over seeds): " +
                 ", ".join(f"step {st}: {c['mean']:.3f}" + (f" ± {c['sd']:.3f}" if c["sd"] is not None else "")
                           for st, c in zip(q["grpo_reward_curve_steps"], q["grpo_reward_curve"])) + ".")
    L.append("")
    L.append("GRPO's effect (positive = GRPO above SFT or above its own start): " +
             "; ".join(f"{name}: {v}" for name, v in grpo_effect) + ".")
    L.append("")
    L.append("Verdicts (a test supports when its 95% t-interval over seeds lies on the claimed side, contradicts "
             "when it lies on the other side, and cannot tell otherwise; a claim is supported when all its tests are):")
    L.append("")
    L.append("| claim | test | statistic, 95% interval | verdict |")
    L.append("|---|---|---|---|")
    keys = {c1[0][0]: "sft_emergent_minus_lost", c1[1][0]: "sft_retained_share", c2[0][0]: "drop_rate_grpo_minus_sft",
            c2[1][0]: "grpo_emergent_vs_reward_pearson", c3[0][0]: "sft_ablation_diff_vs_controls",
            c3[1][0]: "grpo_ablation_diff_vs_controls"}
    for c in claims:
        for i, (test, v) in enumerate(c["tests"]):
            s = q[keys[test]]
            mean = "n/a" if s["mean"] is None else f"{s['mean']:.3f}"
            L.append(f"| {c['claim'] if i == 0 else ''} | {test} | {mean}; {ci(s)} | {v} |")
        L.append(f"| | **claim** | | **{c['verdict']}** |")
    text = "\n".join(L) + "\n"
    if a.markdown:
        tmp = a.markdown + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, a.markdown)
    else:
        sys.stdout.write(text)
    return 0


def ci(s):
    return f"[{s['ci95'][0]:.3f}, {s['ci95'][1]:.3f}]" if s["ci95"] else "n/a"


if __name__ == "__main__":
    sys.exit(main())
