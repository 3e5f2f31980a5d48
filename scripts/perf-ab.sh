#!/usr/bin/env bash
# scripts/perf-ab.sh: the perf harness's scenarios against several builds
# of jwtnotes in one run, to measure what a change buys.
#
# The harness (the perf folder of the project's shared material) compares
# jwtnotes with Django and a bare net/http ceiling. To decide whether a piece
# of tuning earns its place, we compare jwtnotes with itself instead: the
# same scenarios, loadgen and CPU accounting, run against two or more
# builds back to back in each round, the order rotated from round to round,
# so that every ratio is formed between runs of the same round.
#
#   PERF_DIR=path/to/perf scripts/perf-ab.sh \
#       'tuned=/tmp/ab/tuned -addr 127.0.0.1:$PORT -data $DATA -ip-limit 0 -write-limit 0' \
#       'plain=/tmp/ab/plain -addr 127.0.0.1:$PORT -data $DATA -ip-limit 0 -write-limit 0'
#
# (Add -max-notes 0 -max-notes-mb 0 for long runs: the note quota's 403s
# would otherwise answer create-note once an account holds 10,000 notes.)
#
# Each argument is NAME=COMMAND; COMMAND runs under bash (exec'd: put
# environment in front with env, as in 'env GOGC=100 ...') with PORT and DATA
# set (a free port and a fresh data folder). The first target is the one
# the others are compared with. Env: ROUNDS (2), DUR (5s), CONC (32),
# SCENARIOS ("notes-list refresh create-note mixed"), OUT (a temp folder).
# It prints loadgen's report: per scenario, req/s and CPU per request of
# each target, and each target's ratios to the first.
set -euo pipefail
: "${PERF_DIR:?set PERF_DIR to the perf harness folder (it holds loadgen/)}"
ROUNDS="${ROUNDS:-2}" DUR="${DUR:-5s}" CONC="${CONC:-32}"
SCENARIOS="${SCENARIOS:-notes-list refresh create-note mixed}"
OUT="${OUT:-$(mktemp -d /tmp/perf-ab.XXXXXX)}"
mkdir -p "$OUT"
(cd "$PERF_DIR/loadgen" && go build -o "$OUT/loadgen" .)

names=() pgids=() ports=()
cleanup() {
    for pg in "${pgids[@]}"; do kill -TERM -- "-$pg" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

port=18100
for spec in "$@"; do
    name="${spec%%=*}" cmd="${spec#*=}"
    port=$((port + 1))
    mkdir -p "$OUT/data-$name"
    PORT=$port DATA="$OUT/data-$name" setsid bash -c "exec $cmd" >"$OUT/$name.log" 2>&1 &
    names+=("$name") pgids+=("$!") ports+=("$port")
done
for i in "${!names[@]}"; do
    up=0
    for _ in $(seq 100); do
        "$OUT/loadgen" -probe 1s -base "http://127.0.0.1:${ports[$i]}" 2>/dev/null && { up=1; break; }
        sleep 0.2 # polling a server that is starting: nothing to wait on instead
    done
    [ "$up" = 1 ] || { echo "${names[$i]} did not start:"; cat "$OUT/${names[$i]}.log"; exit 1; }
done

n=${#names[@]}
for scenario in $SCENARIOS; do
    for r in $(seq "$ROUNDS"); do
        for k in $(seq 0 $((n - 1))); do
            i=$(( (k + r - 1) % n ))
            "$OUT/loadgen" -base "http://127.0.0.1:${ports[$i]}" -c "$CONC" -d "$DUR" \
                -scenario "$scenario" -state "$OUT/state-${names[$i]}.json" -label "${names[$i]}" \
                -round "$r" -server-pgid "${pgids[$i]}" >>"$OUT/results.jsonl" 2>>"$OUT/loadgen.err"
        done
    done
done
targets=$(IFS=,; echo "${names[*]}")
"$OUT/loadgen" -report "$OUT/results.jsonl" -targets "$targets" | tee "$OUT/report.txt"
echo "results in $OUT"
