#!/usr/bin/env bash
# Checks scripts/slurm/local_cluster.sh against a real slurmctld/slurmd: array job, afterok
# dependency with --wait, a failing array task whose dependents never run, stop, start again.
#   bash scripts/slurm/test_local_cluster.sh [STATE_DIR]      # needs root
set -euo pipefail

LC="$(cd "$(dirname "$0")" && pwd)/local_cluster.sh"
STATE=${1:-$(mktemp -d /tmp/slurm-ci.XXXXXX)}
WORK=$(mktemp -d /tmp/slurm-ci-jobs.XXXXXX)   # the submit directory jobs must write into
trap 'bash "$LC" stop "$STATE" >/dev/null 2>&1 || true' EXIT

fail() { echo "test_local_cluster: FAIL: $*" >&2; exit 1; }
phase() { PHASE=$1; T0=$EPOCHREALTIME; }
done_phase() { awk -v p="$PHASE" -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "test_local_cluster: %-28s %6.1f s\n", p, b - a }'; }

# Waits until none of the given jobs is pending or running (squeue lists only those).
wait_gone() {
  for _ in $(seq 240); do
    [ -z "$(squeue -h -j "$1" -t PENDING,RUNNING,COMPLETING -o %i 2>/dev/null)" ] && return 0
    sleep 0.5
  done
  fail "jobs $1 still queued after 120 s: $(squeue -j "$1" 2>&1)"
}

# scontrol keeps finished jobs for MinJobAge (300 s); prints FIELD of job $1, e.g. JobState.
job_field() { scontrol show job -o "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }

start_cluster() {
  local env
  env=$(bash "$LC" start "$STATE") || fail "start exited non-zero"
  [[ $env == "export SLURM_CONF=$STATE/slurm.conf" ]] || fail "expected 'export SLURM_CONF=$STATE/slurm.conf' from start; found '$env'"
  eval "$env"
}

stop_cluster() {
  local pids
  pids=$(cat "$STATE"/run/*.pid 2>/dev/null || true)
  bash "$LC" stop "$STATE" || fail "stop exited non-zero"
  for p in $pids; do
    [[ ! -d /proc/$p || $(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null) == Z* ]] || fail "daemon pid $p still alive after stop"
  done
}

phase "start (first)"; start_cluster; done_phase
cd "$WORK"

phase "array 1-3 + afterok --wait"
arr=$(sbatch --parsable --array=1-3 \
  --wrap='echo "$SLURM_ARRAY_TASK_ID $SLURM_ARRAY_TASK_COUNT" > task.$SLURM_ARRAY_TASK_ID')
sbatch --parsable --wait --dependency="afterok:$arr" --wrap='cat task.1 task.2 task.3 > all' >/dev/null \
  || fail "dependent job of array $arr failed or never ran"
[ "$(cat all 2>/dev/null)" = $'1 3\n2 3\n3 3' ] || fail "expected task files '1 3','2 3','3 3' in $WORK; found: $(cat all task.* 2>&1)"
done_phase

phase "failing task + dependents"
bad=$(sbatch --parsable --array=1-3 --wrap='[ "$SLURM_ARRAY_TASK_ID" != 2 ]')
dep=$(sbatch --parsable --dependency="afterok:$bad" --wrap='touch ran.dep')
kill_dep=$(sbatch --parsable --dependency="afterok:$bad" --kill-on-invalid-dep=yes --wrap='touch ran.kill')
wait_gone "$bad"
[ "$(job_field "${bad}_2" ExitCode)" = 1:0 ] || fail "expected task ${bad}_2 ExitCode=1:0; found '$(job_field "${bad}_2" ExitCode)'"
for _ in $(seq 60); do
  reason=$(squeue -h -j "$dep" -o '%T %r')
  [ "$reason" = "PENDING DependencyNeverSatisfied" ] && break
  sleep 0.5
done
[ "$reason" = "PENDING DependencyNeverSatisfied" ] || fail "expected job $dep 'PENDING DependencyNeverSatisfied'; found '$reason'"
wait_gone "$kill_dep"
[ "$(job_field "$kill_dep" JobState)" = CANCELLED ] || fail "expected --kill-on-invalid-dep job $kill_dep CANCELLED; found '$(job_field "$kill_dep" JobState)'"
scancel "$dep"; wait_gone "$dep"
[ ! -e ran.dep ] && [ ! -e ran.kill ] || fail "a job depending on a failed task ran: $(ls ran.*)"
done_phase

phase "stop"; stop_cluster; done_phase
phase "start (second)"; start_cluster; done_phase
phase "job after restart (--wait)"
sbatch --wait --wrap='touch again' >/dev/null && [ -e again ] || fail "job after restart did not run"
done_phase
phase "stop twice"; stop_cluster; stop_cluster; done_phase
rm -rf "$WORK"
[ $# -gt 0 ] || rm -rf "$STATE"   # a STATE_DIR we made ourselves; kept on failure for its logs
echo "test_local_cluster: all checks passed"
