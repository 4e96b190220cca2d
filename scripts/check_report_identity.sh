#!/usr/bin/env bash
# Runs the same attribute / evaluate / patch commands with two builds of circuitscope on the fixtures
# in tests/data and checks that their reports and stdout are byte-identical. For refactors that must
# not change results: build the revision before the change in another folder, e.g.
#   git worktree add /tmp/cs-old <rev> && (cd /tmp/cs-old && BUILD_DIR=build bash scripts/build.sh)
#   bash scripts/check_report_identity.sh /tmp/cs-old/build/circuitscope build/circuitscope
#
# The one intended difference between builds before and after commit "--sizes replaces --sweep"
# (schema_version 2): the faithfulness-curve option was --sweep and its report key `sweep`. An old
# build is run with its spelling, and its reports (and evaluate's printout) get that key and version
# rewritten, nothing else.
# Exit 0 when every output matches; 1 with the differing files named otherwise.
set -euo pipefail

if [[ $# -lt 2 ]]; then
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
  echo "usage: $0 OLD_BIN NEW_BIN [WORKDIR]" >&2
  exit 2
fi
OLD=$(realpath "$1")
NEW=$(realpath "$2")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${3:-$(mktemp -d /tmp/cs-identity.XXXXXX)}
mkdir -p "$WORK"
cd "$ROOT"  # paths in the reports are relative to the repository, the same for both builds

QWEN=tests/data/hf-tiny/qwen2-tiny
LLAMA=tests/data/hf-tiny/llama-tiny
PAIRS=$WORK/pairs.jsonl
SEQ=$WORK/seq.jsonl
cat >"$PAIRS" <<'EOF'
{"clean_ids": [5, 17, 300, 42, 7, 99, 256, 3], "corrupted_ids": [5, 17, 301, 42, 7, 12, 256, 3], "answer_id": 300, "wrong_id": 301}
{"clean_ids": [11, 400, 23, 8, 77, 150], "corrupted_ids": [11, 402, 23, 8, 90, 150], "answer_id": 400, "wrong_id": 402}
{"clean_ids": [9, 9, 31, 200], "corrupted_ids": [9, 8, 31, 200], "answer_id": 31, "wrong_id": 30}
{"clean_ids": [14, 60, 61, 62, 63, 5, 5], "corrupted_ids": [14, 70, 61, 62, 63], "answer_id": 62, "wrong_id": 70}
EOF
cat >"$SEQ" <<'EOF'
{"clean_ids": [5, 17, 300, 42], "corrupted_ids": [5, 17, 301, 42], "clean_continuation_ids": [7, 99, 256], "corrupted_continuation_ids": [7, 12, 256]}
{"clean_ids": [11, 400, 23], "corrupted_ids": [11, 402, 23], "clean_continuation_ids": [8, 77], "corrupted_continuation_ids": [8, 90]}
EOF

# The faithfulness-curve option of a build: --sizes, or --sweep before the rename.
sizes_opt() { if "$1" attribute --help 2>/dev/null | grep -q -- '--sizes'; then echo --sizes; else echo --sweep; fi; }

# run BIN OUTDIR: every case; reports in OUTDIR/NAME.json, stdout in OUTDIR/NAME.out.
run_all() {
  local bin=$1 out=$2 sz
  sz=$(sizes_opt "$bin")
  mkdir -p "$out"
  local q="$bin -q --threads 1"
  a() { local name=$1; shift; $q attribute "$@" --out "$out/$name.json" >"$out/$name.out"; }
  a ig-topn $QWEN --data "$PAIRS" --top-n 40 $sz 40,200 --intervention mean
  a eap-threshold $QWEN --data "$PAIRS" --method eap --metric prob-diff --threshold 0.001 --intervention zero
  a igact-greedy $QWEN --data "$PAIRS" --method eap-ig-activations --ig-steps 3 --greedy 30 --kv-edges per-kv-head
  a cc-node $QWEN --data "$PAIRS" --method clean-corrupted --metric kl --loss --level node --top-n 10 \
    --intervention mean-positional --mean-source corrupted
  a sparks $LLAMA --data "$PAIRS" --selection thinking-sparks --batch-size 3
  a signed $LLAMA --data "$PAIRS" --top-n 25 --signed $sz 0,10
  a seq $QWEN --data "$SEQ" --metric seq-logprob --top-n 50
  a seqkl $LLAMA --data "$SEQ" --metric seq-kl --method eap
  a scores-only $QWEN --data "$PAIRS" --ig-steps 2
  e() { local name=$1; shift; $q evaluate "$@" --out "$out/$name.json" >"$out/$name.out"; }
  e eval-circuit $QWEN "$out/ig-topn.json" --data "$PAIRS" $sz 10,479
  e eval-new $QWEN "$out/scores-only.json" --data "$PAIRS" --top-n 20 --intervention zero
  e eval-sizes $LLAMA "$out/sparks.json" --data "$PAIRS" $sz 5 --intervention mean --mean-source corrupted
  p() { local name=$1; shift; $q patch "$@" --out "$out/$name.json" >"$out/$name.out"; }
  p patch-head $QWEN --data "$PAIRS"
  p patch-mlp $LLAMA --data "$PAIRS" --level mlp --per-position --loss
  p patch-resid $QWEN --data "$PAIRS" --level resid --metric kl
}

run_all "$OLD" "$WORK/old"
run_all "$NEW" "$WORK/new"
if [[ $(sizes_opt "$OLD") == --sweep && $(sizes_opt "$NEW") == --sizes ]]; then
  # The rename, spelled exactly as the reports write it (dump with indent 1).
  for f in "$WORK"/old/*.json; do
    [[ $(basename "$f") == patch-* ]] && continue  # patch reports have their own version, unchanged
    sed -i -e 's/^ "schema_version": 1,$/ "schema_version": 2,/' -e 's/^  "sweep": \[$/  "sizes": [/' "$f"
  done
  for f in "$WORK"/old/eval-*.out; do  # evaluate prints the faithfulness block alone
    sed -i -e 's/^ "sweep": \[$/ "sizes": [/' "$f"
  done
fi

bad=0
n=0
for f in "$WORK"/old/*; do
  n=$((n + 1))
  g="$WORK/new/$(basename "$f")"
  if ! cmp -s "$f" "$g"; then
    echo "DIFFERENT: $(basename "$f")" >&2
    diff "$f" "$g" | head -20 >&2 || true
    bad=1
  fi
done
if [[ $bad -eq 0 ]]; then
  echo "check_report_identity: $n outputs byte-identical ($WORK)"
else
  echo "check_report_identity: outputs differ ($WORK)" >&2
fi
exit $bad
