#!/usr/bin/env bash
# Fuzz tokensieve's readers for FUZZ_SECONDS (default 1800), restarting after each crash.
#
#   fuzz/run.sh                 # fuzz (make fuzz runs fuzz/setup.sh first)
#   FUZZ_SECONDS=600 fuzz/run.sh
#   fuzz/run.sh fuzz/out/artifacts/crash-…   # replay one input (or a findings/*.input)
#
# Output in $FUZZ_DIR (default fuzz/out): corpus/ (grows across runs), artifacts/crash-*
# (inputs that killed the process: a signal, a Rust abort), findings/ (inputs that raised
# something other than a TokensieveError or gave an invalid output; one per signature),
# fuzz.log (libFuzzer's log) and summary.txt (the figures: executions, coverage, crashes).
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${FUZZ_VENV:-.venv-fuzz}
PY="$VENV/bin/python"
export FUZZ_DIR=${FUZZ_DIR:-$PWD/fuzz/out}
SECONDS_TOTAL=${FUZZ_SECONDS:-1800}
mkdir -p "$FUZZ_DIR/corpus" "$FUZZ_DIR/artifacts" "$FUZZ_DIR/findings"

if [ $# -gt 0 ]; then
    exec "$PY" fuzz/fuzz_readers.py -runs=1 "$@"
fi

LOG="$FUZZ_DIR/fuzz.log"
: > "$LOG"
start=$(date +%s)
runs=0
while :; do
    now=$(date +%s); left=$((SECONDS_TOTAL - (now - start)))
    [ "$left" -le 5 ] && break
    runs=$((runs + 1))
    echo "=== fuzzer run $runs, $left s left" >> "$LOG"
    # -rss_limit_mb: a runaway copy is a finding, not a machine out of memory.
    "$PY" fuzz/fuzz_readers.py "$FUZZ_DIR/corpus" \
        -max_total_time="$left" -max_len=4096 -timeout=60 -rss_limit_mb=4096 \
        -artifact_prefix="$FUZZ_DIR/artifacts/" -print_final_stats=1 -print_pcs=0 >> "$LOG" 2>&1
    rc=$?
    echo "=== fuzzer run $runs exited with status $rc" >> "$LOG"
    if [ "$rc" -ge 128 ] && [ -s "$FUZZ_DIR/current-input" ]; then
        # Killed by a signal libFuzzer could not handle (a stack overflow): save the
        # input it was running.
        sha=$(sha1sum "$FUZZ_DIR/current-input" | cut -c1-40)
        cp "$FUZZ_DIR/current-input" "$FUZZ_DIR/artifacts/crash-$sha"
        echo "=== killed by signal $((rc - 128)): input saved as artifacts/crash-$sha" >> "$LOG"
    fi
done

crashes=$(ls "$FUZZ_DIR"/artifacts/crash-* 2>/dev/null | wc -l)
timeouts=$(ls "$FUZZ_DIR"/artifacts/timeout-* 2>/dev/null | wc -l)
ooms=$(ls "$FUZZ_DIR"/artifacts/oom-* 2>/dev/null | wc -l)
findings=$(ls "$FUZZ_DIR"/findings/*.txt 2>/dev/null | wc -l)
# Executions: per fuzzer run, the last "#N" libFuzzer printed (a lower bound for a run
# that crashed) or its final stat.
execs=$(awk '/^=== fuzzer run [0-9]+, /{s += m; m = 0}
             /^#[0-9]+/{n = substr($1, 2) + 0; if (n > m) m = n}
             /stat::number_of_executed_units/{if ($2 + 0 > m) m = $2 + 0}
             END {print s + m}' "$LOG")
cov=$(grep -ho "cov: [0-9]*" "$LOG" | awk '{print $2}' | sort -n | tail -1)
ft=$(grep -ho "ft: [0-9]*" "$LOG" | awk '{print $2}' | sort -n | tail -1)
corpus=$(ls "$FUZZ_DIR/corpus" | wc -l)
{
    echo "fuzzed for $SECONDS_TOTAL s in $runs fuzzer runs ($(date -u +%FT%TZ))"
    echo "executions: at least $execs"
    echo "coverage: cov ${cov:-?} edges, ft ${ft:-?} features; corpus $corpus inputs"
    echo "crashes (signals, aborts): $crashes; timeouts: $timeouts; out of memory: $ooms"
    echo "findings (non-TokensieveError exceptions, invalid outputs; distinct signatures): $findings"
    for f in "$FUZZ_DIR"/findings/*.txt; do [ -e "$f" ] && echo "  $(basename "$f" .txt): $(head -1 "$f")"; done
    for f in "$FUZZ_DIR"/artifacts/crash-*; do
        [ -e "$f" ] && echo "  $(basename "$f"): $("$PY" fuzz/fuzz_readers.py --describe "$f" 2>/dev/null)"
    done
} | tee "$FUZZ_DIR/summary.txt"
