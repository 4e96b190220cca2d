#!/usr/bin/env bash
# Submits a checkpoint sweep to SLURM: plans it (DIR/sweep.json, so every task sees the same
# checkpoints even while training adds more), submits N array tasks (one shard each), then the merge
# as a job that runs only when every task succeeded. Prints both job ids.
#   scripts/slurm/submit_sweep.sh SWEEP.json DIR N [sbatch options...]
#   e.g. scripts/slurm/submit_sweep.sh sweep.json runs/sweep-sft 16 --gres=gpu:1 --partition=gpu
# A failed task: fix the cause, then resubmit that task alone with a new merge:
#   TASKS=2 scripts/slurm/submit_sweep.sh sweep.json runs/sweep-sft 16 ...   (TASKS: an --array list)
# Finished units are never redone, so resubmitting more tasks than needed costs only their start-up.
# Environment: CS (the command; default build/circuitscope of this checkout, else circuitscope on PATH),
# TASKS (default 1-N), MERGE_TASKS (default 1: one merge job; M > 1: an M-task merge array, each
# task a block of checkpoints, then the merge job, which keeps their reports and writes the summary). Job logs: DIR/slurm/ARRAYID_TASK.out and DIR/slurm/merge-JOBID.out.
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
spec=$1 dir=$2 n=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${CS:-}" ]; then
  if [ -x "$here/../../build/circuitscope" ]; then CS=$(cd "$here/../../build" && pwd)/circuitscope; else CS=circuitscope; fi
fi
case $n in ''|*[!0-9]*|0) echo "submit_sweep: N must be a positive integer; found '$n'" >&2; exit 2 ;; esac
command -v sbatch >/dev/null || { echo "submit_sweep: sbatch not found (is this a SLURM login node?)" >&2; exit 2; }
mkdir -p "$dir/slurm"
dir=$(cd "$dir" && pwd)
if [ -n "${TASKS:-}" ] && [ -e "$dir/sweep.json" ]; then
  # A resubmission keeps the plan, so that shard I is the same block of units as before.
  echo "submit_sweep: resubmitting tasks $TASKS with the plan in $dir/sweep.json" >&2
else
  $CS sweep plan "$spec" --out "$dir" >&2
fi
tasks=${TASKS:-1-$n}
array=$(sbatch --parsable --array="$tasks" --output="$dir/slurm/%A_%a.out" \
  --export=ALL,CS="$CS",CS_SPEC="$dir/sweep.json",CS_DIR="$dir",CS_SHARDS="$n",CS_MODE=run "$@" "$here/sweep.sbatch")
array=${array%%;*}
after=$array
m=${MERGE_TASKS:-1}
case $m in ''|*[!0-9]*|0) echo "submit_sweep: MERGE_TASKS must be a positive integer; found '$m'" >&2; exit 2 ;; esac
if [ "$m" -gt 1 ]; then
  # The merge loads each checkpoint and measures its circuit: spread it too, then summarise.
  marray=$(sbatch --parsable --array="1-$m" --dependency=afterok:"$array" --kill-on-invalid-dep=yes \
    --job-name=cs-sweep-merge --output="$dir/slurm/merge-%A_%a.out" \
    --export=ALL,CS="$CS",CS_DIR="$dir",CS_MODE=merge-shard,CS_MERGE_SHARDS="$m" "$@" "$here/sweep.sbatch")
  marray=${marray%%;*}
  after=$marray
fi
merge=$(sbatch --parsable --dependency=afterok:"$after" --kill-on-invalid-dep=yes --job-name=cs-sweep-merge \
  --output="$dir/slurm/merge-%j.out" --export=ALL,CS="$CS",CS_DIR="$dir",CS_MODE=merge "$@" "$here/sweep.sbatch")
merge=${merge%%;*}
echo "array job $array (tasks $tasks of $n shards)"
echo "merge job $merge (runs after every task succeeds; cancelled if one fails)"
[ "$m" -gt 1 ] && echo "merge array job $marray ($m tasks, each a block of checkpoints; the merge job writes the summary)"
echo "watch: squeue -j $array,$merge; $CS sweep status $dir"
