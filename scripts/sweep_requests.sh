#!/usr/bin/env bash
# sweep_requests.sh: non-streaming requests at 1, 2, 4 ... 256 connections
# (SWEEP), side by side in one run: the simulated provider alone (answering
# at once), the gateway proxying (cache off) and the gateway's L1 hits.
# Each step is a WARM warm-up (default 1s) and a DUR run (default 2s) of
# `edge-agent bench`; results/latency-LABEL-cN.json feed latency.png and
# throughput.png (go run ./scripts/charts, run at the end).
source "$(dirname "$0")/lib.sh"
SWEEP="${SWEEP:-1 2 4 8 16 32 64 128 256}"
DUR="${DUR:-2s}"
WARM="${WARM:-1s}"
build
OUT="$ROOT/results"
mkdir -p "$OUT"
start_sim 0s 0s
start_gateway miss CACHE_ENABLED=false
start_gateway hit
step() { # label url c
  "$BIN" bench --url "$2/v1/chat/completions" -q -c "$3" -d "$WARM" --mix same >/dev/null
  "$BIN" bench --url "$2/v1/chat/completions" --json -q --label "$1" -c "$3" -d "$DUR" --mix same --interval 0 \
    >"$OUT/latency-$1-c$3.json"
  printf '%-20s c=%-4s %9.0f req/s  p50 %8.1f µs  p99 %8.1f µs  errors %s\n' "$1" "$3" \
    "$(jget "$OUT/latency-$1-c$3.json" throughput_rps)" "$(jget "$OUT/latency-$1-c$3.json" latency_us.p50)" \
    "$(jget "$OUT/latency-$1-c$3.json" latency_us.p99)" "$(jget "$OUT/latency-$1-c$3.json" errors)"
}
echo "machine: $(nproc) cores, $(go version | cut -d' ' -f3), $(date -u '+%Y-%m-%d %H:%M UTC')"
for c in $SWEEP; do
  step simulated-provider "$SIM_URL" "$c"
  step gateway-miss "$URL_miss" "$c"
  step gateway-l1-hit "$URL_hit" "$c"
done
(cd "$ROOT" && go run ./scripts/charts -in results/ -out docs/img/)
