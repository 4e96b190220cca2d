#!/usr/bin/env bash
# Checkpoint sweeps end to end, on toy-lab checkpoints (issue #14):
#  1. train a small base model and SFT it with a checkpoint every 40 steps (4 checkpoints);
#  2. a single-process sweep (the Thinking Sparks construction: pairs built per checkpoint), merged;
#  3. the same sweep as 3 shards in separate processes, merged: reports and summary equal (2)'s;
#  4. each merged report against a direct `circuitscope attribute` run on the same checkpoint and pairs;
#     the report page (`circuitscope report`) of the sweep in a real browser (scripts/report/test_browser.sh);
#  5. faults: a run killed with SIGKILL mid-unit, then rerun; two processes on the same shard;
#  6. with --slurm: a real single-node SLURM (slurm-wlm + munge, scripts/slurm/local_cluster.sh):
#     the sweep as a 3-task array plus a dependent merge; then one array task failing, its merge
#     never running, and the task resubmitted alone with a new merge; an eval (scripts/slurm/eval.sbatch)
#     as a 2-task array plus merge, byte-equal to a local run. Daemons are stopped at the end.
# Every merged result is compared with (2)'s. Prints each phase's time. Exit status 0 = all passed.
#   bash scripts/test_sweep.sh [--slurm]      (WORK=dir keeps the files; default a temporary folder)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SLURM=0
[ "${1:-}" = "--slurm" ] && SLURM=1
WORK=${WORK:-$(mktemp -d /tmp/cs-sweep-test.XXXXXX)}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
T0=$SECONDS
phase() { printf '\n== [%4ds] %s\n' $((SECONDS - T0)) "$*"; }
fail() { echo "test_sweep: FAIL: $*" >&2; exit 1; }

[ -x build/circuitscope ] || BUILD_TARGET=circuitscope bash scripts/build.sh
# One thread everywhere: every run computes each unit with the same kernels, so results of different
# runs can be compared exactly.
CS="$ROOT/build/circuitscope --threads 1"
cd "$WORK"

phase "train toy checkpoints (base, then SFT saving every 40 steps)"
SHAPE="--layers 3 --d-model 64 --heads 4 --kv-heads 2 --d-mlp 256"
$CS toy train --stage base --out toy/base --steps 200 $SHAPE --no-progress --seed 1 >/dev/null
$CS toy train --stage sft --init toy/base/final --out toy/sft --steps 160 --save-every 40 --no-progress --seed 1 >/dev/null
$CS toy problems toy/base/final --n 24 --out problems.jsonl 2>/dev/null
cat > sweep.json <<EOF
// The Thinking Sparks construction on the toy lab: each checkpoint's opening against the base's.
{
  "base": "toy/base/final",
  "checkpoints": "toy/sft/checkpoint-*",
  "data": {"prompts": "problems.jsonl", "generation": {"think": "on", "max_new_tokens": 24}},
  "chunk_size": 8,
  "attribute": {"config": "$ROOT/configs/thinking-sparks.json", "chat": true, "think": "on",
                "metric": "seq-logprob", "simplify": 0.02, "batch_size": 4},
  "log": "toy/sft/train_log.jsonl"
}
EOF
ls -d toy/sft/checkpoint-* | wc -l | grep -qx 4 || fail "expected 4 SFT checkpoints"

compare_dir() {  # compare_dir DIR REF: every report and summary.json, exactly (paths aside)
  local d=$1 ref=$2 f
  for f in "$ref"/reports/*.json "$ref/summary.json"; do
    python3 "$ROOT/scripts/compare_json.py" "$d/${f#$ref/}" "$f" --ignore path --ignore report --ignore tool >/dev/null ||
      { python3 "$ROOT/scripts/compare_json.py" "$d/${f#$ref/}" "$f" --ignore path --ignore report; fail "$d differs from $ref"; }
  done
  echo "$d: $(ls "$ref"/reports | wc -l) reports and summary.json equal to $ref's"
}

merge() {  # merge DIR: quiet unless it fails
  $CS sweep merge "$1" > "$1.merge.log" 2>&1 || { cat "$1.merge.log"; fail "sweep merge $1"; }
}

phase "reference: one process, all units, then merge"
$CS sweep run sweep.json --out ref 2> ref.log || { cat ref.log; fail "reference run"; }
merge ref
cat ref.merge.log | grep -v '\] info '
grep -q "15 units" ref.log || fail "expected 15 units (5 checkpoints x 3 chunks)"

phase "3 shards in separate processes, then merge"
pids=()
for i in 1 2 3; do $CS sweep run sweep.json --out sharded --shard $i/3 2> shard$i.log & pids+=($!); done
for i in 0 1 2; do wait "${pids[$i]}" || { cat shard$((i + 1)).log; fail "shard $((i + 1))/3"; }; done
merge sharded
compare_dir sharded ref

phase "each merged report against a direct attribute run"
ATTR="--config $ROOT/configs/thinking-sparks.json --chat --think on --metric seq-logprob --simplify 0.02 --batch-size 4"
for ck in base checkpoint-40 checkpoint-80 checkpoint-120 checkpoint-160; do
  path=$(python3 -c "import json,sys; s=json.load(open('ref/sweep.json')); print(next(c['path'] for c in [dict(s['base'], name=s['base']['name'])] + s['checkpoints'] if c['name']=='$ck'))")
  $CS attribute "$path" --data "ref/pairs/$ck.jsonl" $ATTR --out "direct-$ck.json" > /dev/null 2>&1
  python3 "$ROOT/scripts/compare_json.py" "ref/reports/$ck.json" "direct-$ck.json" --atol 1e-6 --rtol 1e-5 ||
    fail "merged report of $ck differs from a direct attribute run"
done

phase "the report page of the sweep, a checkpoint and a comparison, in a real browser"
$CS compare ref/reports/base.json ref/reports/checkpoint-160.json --out compare-160.json > /dev/null 2>&1
bash "$ROOT/scripts/report/test_browser.sh" "$WORK/page" ref ref/reports/checkpoint-160.json compare-160.json
$CS sweep merge ref --html merged.html > /dev/null 2>&1 || fail "sweep merge --html"
grep -q 'id="fig-s1-cohorts"' merged.html && grep -q 'id="fig-s2-graph"' merged.html ||
  fail "sweep merge --html: the page lacks the cohort plot or the last checkpoint's graph"
echo "sweep merge --html: merged.html has the sweep's figures and the last checkpoint's circuit graph"

phase "fault: sweep run killed with SIGKILL mid-unit, then rerun"
# The process sends itself SIGKILL once the third unit has scored its first batch (of two): past
# its claim and its pairs, before its result. A fault injection point, so the test races nothing.
set +e
CS_SWEEP_FAILPOINT=kill:base/chunk-2:1 $CS sweep run sweep.json --out killed 2> killed-1.log
rc=$?
set -e
[ $rc = 137 ] || { cat killed-1.log; fail "expected the run to die of SIGKILL (status 137); found $rc"; }
grep "CS_SWEEP_FAILPOINT" killed-1.log
$CS sweep status killed --json > killed-status.json
python3 - <<'PY' || fail "status after the kill"
import json
s = json.load(open("killed-status.json"))
base = s["checkpoints"][0]["units"]
assert [u["state"] for u in base] == ["done", "done", "missing"], base
assert base[2]["reason"].startswith("interrupted (pid "), base[2]
assert s["units"]["done"] == 2 and s["units"]["missing"] == 13, s["units"]
PY
$CS sweep status killed | sed -n '1,4p'
$CS sweep run sweep.json --out killed 2> killed-2.log
grep -q "base/chunk-2: a previous run was interrupted in it" killed-2.log || fail "the rerun did not say it redid the unit"
grep "shard 1/1" killed-2.log
grep -q "12 computed, 0 recomputed (stale), 1 redone (interrupted or failed before), 2 already done" killed-2.log ||
  fail "rerun counts"
merge killed
compare_dir killed ref

phase "fault: two processes started on the same shard"
# A third party holds one unit's claim for 4 s, so that both processes meet a busy unit whatever
# their timing; each must leave it to the other or wait for it, and every unit is computed once.
mkdir -p dup/units/checkpoint-80
cp ref/sweep.json dup/sweep.json
flock dup/units/checkpoint-80/chunk-1.lock sleep 4 &
holder=$!
sleep 0.2
$CS sweep run sweep.json --out dup --shard 1/1 2> dup-a.log &
a=$!
$CS sweep run sweep.json --out dup --shard 1/1 2> dup-b.log &
b=$!
wait $a || fail "process A failed"
wait $b || fail "process B failed"
wait $holder
computed=$(cat dup-a.log dup-b.log | grep -o '[0-9]* computed, [0-9]* recomputed' | awk '{s += $1 + $3} END {print s}')
grep "shard 1/1" dup-a.log dup-b.log
[ "$computed" = 15 ] || fail "units computed by the two processes: $computed (expected 15, each once)"
grep -q "another process holds it" dup-a.log dup-b.log || fail "neither process reported a unit held by another"
merge dup
compare_dir dup ref

if [ $SLURM = 1 ]; then
  STATE=$WORK/slurm
  phase "SLURM: start munged, slurmctld and slurmd (scripts/slurm/local_cluster.sh)"
  eval "$(bash "$ROOT/scripts/slurm/local_cluster.sh" start "$STATE")"
  trap 'bash "$ROOT/scripts/slurm/local_cluster.sh" stop "$STATE" >/dev/null 2>&1 || true' EXIT
  export CS="$ROOT/build/circuitscope --threads 1"
  wait_jobs() {  # wait_jobs ID...: until none is queued or running
    local t=0
    while [ -n "$(squeue -h -j "$(IFS=,; echo "$*")" 2>/dev/null)" ]; do
      sleep 1; t=$((t + 1))
      [ $t -lt 600 ] || { squeue; fail "jobs $* still queued after 600 s"; }
    done
  }
  job_state() { scontrol show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | head -1 | cut -d= -f2; }

  phase "SLURM: the sweep as a 3-task array plus a dependent merge"
  out=$(MERGE_TASKS=2 bash "$ROOT/scripts/slurm/submit_sweep.sh" sweep.json slurm-run 3)
  echo "$out"
  ids=$(echo "$out" | grep -o 'job [0-9]*' | awk '{print $2}')
  array=$(echo "$ids" | sed -n 1p) merge=$(echo "$ids" | sed -n 2p)
  wait_jobs $array $merge
  [ "$(job_state $merge)" = COMPLETED ] || { cat slurm-run/slurm/*.out; fail "merge job $merge: $(job_state $merge)"; }
  grep -h "merge shard" slurm-run/slurm/merge-*_*.out
  grep -h "kept as current), .*summary.json" slurm-run/slurm/merge-*.out
  grep -q "5 report(s) under .* (5 kept as current), .*summary.json" slurm-run/slurm/merge-*.out ||
    fail "the final merge redid the merge array's reports"
  compare_dir slurm-run ref

  phase "SLURM: one array task fails; its merge never runs; the task is resubmitted alone"
  # Shard 2 of 3 holds checkpoint-80's units: hide its weights so that task 2 fails.
  mv toy/sft/checkpoint-80/model.safetensors toy/sft/checkpoint-80/model.hidden
  out=$(bash "$ROOT/scripts/slurm/submit_sweep.sh" sweep.json slurm-fail 3)
  ids=$(echo "$out" | grep -o 'job [0-9]*' | awk '{print $2}')
  array=$(echo "$ids" | sed -n 1p) merge=$(echo "$ids" | sed -n 2p)
  wait_jobs $array $merge
  for t in 1 2 3; do echo "task $t: $(job_state ${array}_$t)"; done
  [ "$(job_state ${array}_2)" = FAILED ] || fail "task 2 should have failed"
  [ "$(job_state ${array}_1)" = COMPLETED ] && [ "$(job_state ${array}_3)" = COMPLETED ] || fail "tasks 1 and 3 should have completed"
  [ ! -e slurm-fail/summary.json ] || fail "the merge ran although a task failed"
  echo "merge job $merge: $(job_state $merge) (never ran)"
  grep -h "checkpoint-80" slurm-fail/slurm/*_2.out | grep -i error | head -2
  mv toy/sft/checkpoint-80/model.hidden toy/sft/checkpoint-80/model.safetensors
  out=$(TASKS=2 bash "$ROOT/scripts/slurm/submit_sweep.sh" sweep.json slurm-fail 3)
  echo "$out"
  ids=$(echo "$out" | grep -o 'job [0-9]*' | awk '{print $2}')
  array=$(echo "$ids" | sed -n 1p) merge=$(echo "$ids" | sed -n 2p)
  wait_jobs $array $merge
  [ "$(job_state $merge)" = COMPLETED ] || fail "merge after the resubmission: $(job_state $merge)"
  grep -h "shard 2/3" slurm-fail/slurm/*_2.out | tail -1
  compare_dir slurm-fail ref

  phase "SLURM: eval of the SFT model as a 2-task array plus a dependent merge, against one local run"
  EVAL_ARGS="--prompt-template {problem}= --chat --think on --ablate-heads 1.0,2.3 --random-control 1 --samples 2 --temperature 0.8 --max-new-tokens 24 --batch-size 2 --k 1,2 --seed 5"
  # shellcheck disable=SC2086
  $CS eval toy/sft/final --benchmark problems.jsonl --out eval-local $EVAL_ARGS > /dev/null 2>eval-local.log
  mkdir -p eval-slurm/slurm  # sbatch does not create the folders of --output
  # CS_EVAL_ARGS holds commas, which --export would split: it travels in the environment (ALL).
  earray=$(CS_EVAL_ARGS="$EVAL_ARGS" sbatch --parsable --array=1-2 --output=eval-slurm/slurm/%A_%a.out \
    --export=ALL,CS="$CS",CS_MODEL=toy/sft/final,CS_BENCH=problems.jsonl,CS_DIR=eval-slurm,CS_SHARDS=2 \
    "$ROOT/scripts/slurm/eval.sbatch")
  emerge=$(sbatch --parsable --dependency=afterok:"$earray" --kill-on-invalid-dep=yes --output=eval-slurm/slurm/merge-%j.out \
    --export=ALL,CS="$CS",CS_DIR=eval-slurm,CS_MODE=merge "$ROOT/scripts/slurm/eval.sbatch")
  echo "eval array $earray, merge $emerge"
  wait_jobs $earray $emerge
  [ "$(job_state $emerge)" = COMPLETED ] || { cat eval-slurm/slurm/*.out; fail "eval merge job $emerge: $(job_state $emerge)"; }
  cmp eval-slurm/samples.jsonl eval-local/samples.jsonl || fail "eval: SLURM shards merged differ from the local run (samples)"
  cmp eval-slurm/summary.json eval-local/summary.json || fail "eval: SLURM shards merged differ from the local run (summary)"
  grep -h "shard" eval-slurm/slurm/*_*.out | grep -h wrote
  head -3 eval-slurm/slurm/merge-*.out

  phase "SLURM: stop the daemons"
  bash "$ROOT/scripts/slurm/local_cluster.sh" stop "$STATE"
  trap - EXIT
fi

phase "all sweep checks passed (files in $WORK)"
