#!/usr/bin/env python3
"""scripts/study_summary.py on a hand-built study folder whose statistics are worked out by hand below.

Each seed has the same sweep: heads h0 (in every circuit), h1 (emerges at step 100 and stays), h2
(emerges at 100, gone at 200) and h3 (in the base circuit only). Worked out by hand:
  emergent per checkpoint [2, 1, 1], lost 1 at the last, retained 2 - 1 = 1;
  intervals 100->200: 0 added, 1 dropped of 3 (1/3); 200->300: 0 added, 0 dropped of 2 -> mean drop rate 1/6;
  emerged ever {h1, h2}, of which h1 is in the last circuit -> retained share 0.5;
  Pearson([2, 1, 1], [0.1, 0.2, 0.3]) = -0.1 / sqrt(6/9 * 0.02) = -0.8660.
Across the three seeds: SFT accuracy 0.2, 0.3, 0.4 -> mean 0.3, sd 0.1, 95% half-width
4.303 * 0.1 / sqrt(3) = 0.24844; for one more run 4.303 * 0.1 * sqrt(4/3) = 0.49687.
"""
import json
import math
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def close(a, b, tol=1e-4):
    return a is not None and abs(a - b) <= tol


def write(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f)


def make_seed(d, i):
    acc_sft = [0.2, 0.3, 0.4][i]
    for stage, acc in (("base", 0.1), ("sft", acc_sft), ("grpo", acc_sft + 0.1)):
        write(f"{d}/eval_{stage}.json", {"accuracy": acc})
    inc = {"h0": [1, 1, 1, 1], "h1": [0, 1, 1, 1], "h2": [0, 1, 0, 0], "h3": [1, 0, 0, 0]}
    first = {"h0": None, "h1": 100, "h2": 100, "h3": None}
    for post, diff in (("sft", [-0.1, -0.12, -0.08][i]), ("grpo", [0.05, -0.05, 0.0][i])):
        sw = f"{d}/sweep_{post}"
        steps = [{"step": s, "name": n, "report": f"{sw}/reports/{n}.json", "reward": r, "circuit_heads": c,
                  "emergent": e, "new": 0, "lost": l}
                 for s, n, r, c, e, l in ((0, "base", None, 2, 0, 0), (100, "checkpoint-100", 0.1, 3, 2, 1),
                                          (200, "checkpoint-200", 0.2, 2, 1, 1), (300, "checkpoint-300", 0.3, 2, 1, 1))]
        heads = [{"layer": 0, "head": k, "in_circuit": [bool(x) for x in inc[f"h{k}"]],
                  "first_emergence_step": first[f"h{k}"]} for k in range(4)]
        write(f"{sw}/summary.json", {"base": {"circuit_heads": 2}, "log": {"key": "mean_reward"}, "steps": steps, "heads": heads})
        write(f"{sw}/reports/base.json", {"faithfulness": {"normalized": 0.9}, "circuit": {"edges": 10}})
        write(f"{sw}/reports/checkpoint-300.json", {"faithfulness": {"normalized": 0.7}, "circuit": {"edges": 40}})
        write(f"{d}/interventions_{post}/summary.json", {
            "conditions": [{"name": "baseline", "accuracy": {"mean": 0.3, "ci95": [0.2, 0.4]}}],
            "controls": [{"accuracy": 0.1, "control_accuracy_mean": 0.1 - diff, "heads": 4,
                          "diff_vs_controls": {"mean": diff, "ci95": [diff - 0.05, diff + 0.05]}}]})
    os.makedirs(f"{d}/toy/grpo", exist_ok=True)
    with open(f"{d}/toy/grpo/rewards.jsonl", "w") as f:
        for step in range(1, 11):  # first 20%: steps 1-2 (0.3), last 20%: steps 9-10 (0.5)
            f.write(json.dumps({"step": step, "mean_reward": 0.3 if step <= 2 else 0.5 if step >= 9 else 0.4}) + "\n")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(3):
            make_seed(f"{tmp}/seed-{i + 1}", i)
        os.makedirs(f"{tmp}/seed-9")  # an unfinished seed is reported and left out
        out = subprocess.run([sys.executable, f"{ROOT}/scripts/study_summary.py", tmp, "--out", f"{tmp}/study.json",
                              "--markdown", f"{tmp}/study.md"], capture_output=True, text=True)
        check(out.returncode == 0, f"exit {out.returncode}: {out.stderr}")
        check("skipping incomplete" in out.stderr and "seed-9" in out.stderr, "the unfinished seed is named: " + out.stderr)
        r = json.load(open(f"{tmp}/study.json"))
        q = r["quantities"]
        check(r["seeds"] == [1, 2, 3], f"seeds {r['seeds']}")
        s = q["acc_sft"]
        check(close(s["mean"], 0.3) and close(s["sd"], 0.1), f"acc_sft {s}")
        check(close(s["ci95"][0], 0.3 - 0.24844) and close(s["ci95"][1], 0.3 + 0.24844), f"acc_sft ci {s['ci95']}")
        # Prediction range for one more run: 4.303 * 0.1 * sqrt(1 + 1/3) = 0.49687.
        check(close(s["pred95"][0], 0.3 - 0.49687) and close(s["pred95"][1], 0.3 + 0.49687), f"acc_sft pred {s['pred95']}")
        seed = r["per_seed"][0]["sft"]
        check(seed["emergent"] == 1 and seed["lost"] == 1 and seed["retained"] == 1, f"counts {seed}")
        check(seed["added_per_interval"] == [0, 0] and seed["dropped_per_interval"] == [1, 0], f"churn {seed}")
        check(close(seed["mean_drop_rate"], 1 / 6), f"drop rate {seed['mean_drop_rate']}")
        check(close(seed["late_drop_rate"], 0.0), f"late drop rate {seed['late_drop_rate']}")  # interval 200->300
        check(close(seed["retained_share"], 0.5), f"retained share {seed['retained_share']}")
        check(close(seed["emergent_vs_reward_pearson"], -0.1 / math.sqrt(6 / 9 * 0.02)), f"pearson {seed}")
        check(close(seed["faithfulness"], 0.7) and seed["edges"] == 40, f"final report {seed}")
        check(close(q["grpo_reward_gain"]["mean"], 0.2), f"reward gain {q['grpo_reward_gain']}")
        check(q["grpo_reward_curve_steps"] == [100, 200, 300] and
              [round(c["mean"], 6) for c in q["grpo_reward_curve"]] == [0.1, 0.2, 0.3], "reward curve")
        v = {c["claim"][0]: c for c in r["claims"]}
        # Claim 1: emergent - lost = 0 and retained share = 0.5 exactly: on the threshold, so no call.
        check(v["1"]["verdict"] == "cannot tell", f"claim 1 {v['1']}")
        # Claim 2: equal drop rates (cannot tell) and Pearson -0.866 in every seed (contradicts).
        check([t[1] for t in v["2"]["tests"]] == ["cannot tell", "contradicts"] and v["2"]["verdict"] == "contradicts",
              f"claim 2 {v['2']}")
        # Claim 3: SFT -0.1 +- 0.0497 (supports), GRPO 0 +- 0.124 (cannot tell).
        check([t[1] for t in v["3"]["tests"]] == ["supports", "cannot tell"] and v["3"]["verdict"] == "cannot tell",
              f"claim 3 {v['3']}")
        check(dict(r["grpo_effect"])["GRPO - SFT held-out greedy accuracy"] == "supports", f"grpo effect {r['grpo_effect']}")
        md = open(f"{tmp}/study.md").read()
        check("| held-out greedy accuracy (base: 0.100 ± 0.000 [0.100, 0.100]) | 0.300 ± 0.100 [0.200, 0.400] | "
              "0.400 ± 0.100 [0.300, 0.500] |" in md, "markdown accuracy row:\n" + md)
        check("| emergent - random | -0.100 ± 0.020 [-0.120, -0.080] | 0.000 ± 0.050 [-0.050, 0.050] |" in md,
              "markdown ablation row:\n" + md)
        check("| SFT: accuracy with emergent heads zeroed - with random heads zeroed < 0 | -0.100; [-0.150, -0.050] | supports |"
              in md, "markdown verdict row:\n" + md)
        # No complete seed: an error, not an empty table.
        empty = tempfile.mkdtemp(dir=tmp)
        bad = subprocess.run([sys.executable, f"{ROOT}/scripts/study_summary.py", empty], capture_output=True, text=True)
        check(bad.returncode == 1 and "no complete seed" in bad.stderr, f"empty folder: {bad.returncode} {bad.stderr}")
    for f in failures:
        print("FAILED:", f)
    print(f"test_study_summary: {'failed' if failures else 'passed'} ({len(failures)} failure(s))")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
