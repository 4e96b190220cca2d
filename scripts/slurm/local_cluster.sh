#!/usr/bin/env bash
# A real single-node SLURM cluster on localhost (CPU only) for CI, from Debian 12's slurm-wlm 22.05
# and munge 0.5.15. Needs root; no systemd, no /etc edits, no cgroups: everything lives in STATE_DIR.
#
#   eval "$(bash scripts/slurm/local_cluster.sh start STATE_DIR)"   # prints: export SLURM_CONF=...
#   bash scripts/slurm/local_cluster.sh status STATE_DIR             # sinfo + squeue
#   bash scripts/slurm/local_cluster.sh stop STATE_DIR               # safe to repeat
#
# Every start is a fresh cluster (slurmctld -c): jobs from an earlier run never come back.
# A job whose afterok dependency failed stays PENDING (DependencyNeverSatisfied), as on most real
# clusters; cancel it with `scancel JOBID`, or submit with `--kill-on-invalid-dep=yes`. `stop`
# cancels whatever is still queued or running. `sbatch --wait` polls at growing intervals capped
# at 10 s, so even a trivial job takes 2-10 s to return; poll squeue where that matters.
# Env overrides: LOCAL_SLURM_CTLD_PORT (16817), LOCAL_SLURM_SLURMD_PORT (16818),
# LOCAL_SLURM_TIMEOUT (60 s to wait for the node to be idle).
set -euo pipefail

PKGS=(slurmctld slurmd slurm-client munge)   # what the slurm-wlm metapackage brings, plus munge
CTLD_PORT=${LOCAL_SLURM_CTLD_PORT:-16817}
SLURMD_PORT=${LOCAL_SLURM_SLURMD_PORT:-16818}
TIMEOUT=${LOCAL_SLURM_TIMEOUT:-60}
DAEMONS=(slurmd slurmctld munged)            # stop order: the reverse of start

log() { echo "local_cluster: $*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  echo "usage: $0 {start|stop|status} STATE_DIR" >&2
  exit 2
}

# Where invoke-rc.d may start services, the packages' own munged/slurmd come up on the default socket
# and /etc/slurm; ours use other sockets, ports and files, so they do not collide. stdout is the
# caller's eval, so setup's messages go to stderr.
install_missing() {
  bash "$(dirname "${BASH_SOURCE[0]}")/../setup.sh" --only "${PKGS[@]}" >&2
}

pid_file() { echo "$STATE/run/$1.pid"; }

# Prints the pid from NAME's pid file if that process is alive and really is our daemon: the
# command line must name STATE, so a reused pid or another cluster's daemon is never touched.
live_pid() {
  local f pid
  f=$(pid_file "$1")
  [ -s "$f" ] || return 1
  pid=$(tr -dc '0-9' < "$f")
  [ -n "$pid" ] && alive "$pid" || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$STATE/" || return 1
  echo "$pid"
}

# A zombie counts as gone: our daemons are reparented to PID 1, which in a container may reap
# late or never.
alive() {
  local st
  st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
  [ "${st:0:1}" != Z ]
}

# NAME.out is what a foreground daemon printed: a copy of NAME.log once that is open, so it is
# only shown when the log is empty (errors from before the log file was opened).
log_tails() {
  local f
  for f in "$STATE"/log/*; do
    [ -s "$f" ] || continue
    [[ $f == *.out && -s ${f%.out}.log ]] && continue
    echo "----- last 25 lines of $f -----" >&2
    tail -n 25 "$f" >&2
  done
}

fail_start() {
  log "error: $*"
  log_tails
  # Half-started daemons would hold the ports and make a retry fail for a different reason.
  log "stopping what did start"
  cmd_stop
  exit 1
}

write_config() {
  local node hw
  node=$(hostname -s)
  # slurmd -C reports this machine's topology; configuring more than it finds marks the node
  # INVALID, so take its CPUs/sockets/cores/threads/memory as they are.
  hw=$(slurmd -C | sed -n 's/^NodeName=[^ ]* //p')
  [ -n "$hw" ] || die "slurmd -C printed no 'NodeName=... CPUs=...' line; found: $(slurmd -C 2>&1 | head -3)"
  cat > "$STATE/slurm.conf" <<EOF
# Written by scripts/slurm/local_cluster.sh; rewritten on every start.
ClusterName=localci
# slurmctld only runs where SlurmctldHost matches \`hostname -s\`; 127.0.0.1 so no DNS is needed.
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$STATE/munge/munge.socket
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups in a container: track processes through /proc and bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
# No mail in CI; the default /usr/bin/mail is not installed and slurmctld logs an error.
MailProg=/bin/true
SchedulerType=sched/backfill
# CPUs are the only consumable, so array tasks share the node one CPU each.
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
NodeName=$node NodeAddr=127.0.0.1 $hw State=UNKNOWN
PartitionName=local Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munged() {
  local key=$STATE/munge/munge.key
  [ -s "$key" ] || mungekey --create --keyfile="$key"
  chmod 0600 "$key"
  # -F logs to stderr (log/munged.out); --log-file only keeps munged away from /var/log.
  # --force: the key is a throwaway test key, and CI workspaces often have a group-writable
  # ancestor directory, which munged otherwise refuses.
  launch munged munged -F --force --socket="$STATE/munge/munge.socket" --key-file="$key" \
    --pid-file="$(pid_file munged)" --log-file="$STATE/log/munged.log" \
    --seed-file="$STATE/munge/munged.seed"
  # A munge/unmunge round trip on our socket proves slurm's daemons will be able to authenticate.
  for _ in $(seq 50); do
    munge -n -S "$STATE/munge/munge.socket" 2>/dev/null | unmunge -S "$STATE/munge/munge.socket" >/dev/null 2>&1 && return 0
    check_alive munged
    sleep 0.1
  done
  fail_start "expected munged to answer on $STATE/munge/munge.socket within 5 s; it is running but silent"
}

# Foreground mode (-F/-D) under setsid: $! is the daemon itself (a non-interactive bash does not
# make background jobs group leaders, so setsid does not fork), its pid file exists before it can
# fail, and an early exit (bad config, port in use) shows at once instead of after the timeout.
# The daemons write the same pid into the same files themselves.
launch() {
  local name=$1
  shift
  setsid "$@" </dev/null >"$STATE/log/$name.out" 2>&1 &
  echo $! > "$(pid_file "$name")"
}

check_alive() {
  live_pid "$1" >/dev/null || fail_start "$1 exited during start (expected it to keep running)"
}

node_state() { sinfo -h -N -n "$(hostname -s)" -o '%T' 2>/dev/null | head -1; }

cmd_start() {
  [ "$(id -u)" -eq 0 ] || die "start must run as root (SlurmUser=root, SlurmdUser=root); found uid $(id -u)"
  local d
  for d in "${DAEMONS[@]}"; do
    if pid=$(live_pid "$d"); then die "$d from $STATE is already running (pid $pid); run: bash $0 stop $STATE"; fi
  done
  # sun_path holds 108 bytes; munged fails with an unhelpful message past that.
  [ ${#STATE} -le 80 ] || die "STATE_DIR must be at most 80 characters (munge socket path limit); found ${#STATE}: $STATE"
  install_missing
  mkdir -p "$STATE"/{run,log,ctld,spool}
  install -d -m 0755 "$STATE/munge"   # munged refuses a writable one; clients need +x
  rm -f "$STATE"/run/*.pid "$STATE"/log/*
  write_config
  export SLURM_CONF=$STATE/slurm.conf

  start_munged
  launch slurmctld slurmctld -D -c -f "$SLURM_CONF"
  launch slurmd slurmd -D -f "$SLURM_CONF"

  local t0=$SECONDS state=""
  while [ $((SECONDS - t0)) -lt "$TIMEOUT" ]; do
    state=$(node_state || true)
    [ "$state" = idle ] && break
    for d in "${DAEMONS[@]}"; do check_alive "$d"; done
    sleep 0.5
  done
  [ "$state" = idle ] || fail_start "expected node $(hostname -s) to be 'idle' in sinfo within ${TIMEOUT}s; found '${state:-no answer}'"
  log "cluster up in $((SECONDS - t0))s after launch (node $(hostname -s), ports $CTLD_PORT/$SLURMD_PORT)"
  echo "export SLURM_CONF=$SLURM_CONF"
}

# wait_exit PID TENTHS: waits up to TENTHS/10 s for PID to exit.
wait_exit() {
  for _ in $(seq "$2"); do
    alive "$1" || return 0
    sleep 0.1
  done
  ! alive "$1"
}

cmd_stop() {
  export SLURM_CONF=$STATE/slurm.conf
  # slurmstepd processes outlive slurmd, so cancel jobs while slurmctld can still do it.
  if live_pid slurmctld >/dev/null && [ -f "$SLURM_CONF" ]; then
    local jobs=()
    mapfile -t jobs < <(squeue -h -o '%A' 2>/dev/null || true)
    if [ ${#jobs[@]} -gt 0 ]; then
      log "cancelling jobs still queued or running: ${jobs[*]}"
      scancel "${jobs[@]}" 2>/dev/null || true
      for _ in $(seq 20); do
        [ -z "$(squeue -h -t RUNNING,COMPLETING -o '%A' 2>/dev/null)" ] && break
        sleep 0.5
      done
    fi
  fi
  local d pid
  for d in "${DAEMONS[@]}"; do
    pid=$(live_pid "$d") || continue
    kill -TERM "$pid" 2>/dev/null || true
    wait_exit "$pid" 100 && { log "stopped $d (pid $pid)"; continue; }
    log "$d (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_exit "$pid" 50 || die "expected $d (pid $pid) to exit after SIGKILL; it is still running"
    log "killed $d (pid $pid)"
  done
  rm -f "$STATE"/run/*.pid
}

cmd_status() {
  [ -f "$STATE/slurm.conf" ] || die "expected $STATE/slurm.conf from a start; found none"
  live_pid slurmctld >/dev/null || die "expected slurmctld from $STATE to be running; found no live pid in $(pid_file slurmctld)"
  export SLURM_CONF=$STATE/slurm.conf
  sinfo
  squeue
}

[ $# -eq 2 ] || usage
STATE=$(realpath -m -- "$2")
case "$1" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) usage ;;
esac
