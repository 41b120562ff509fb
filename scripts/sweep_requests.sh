#!/usr/bin/env bash
# sweep_requests.sh: requests at 1, 2, 4 ... 256 connections against the
# simulated provider alone (answering at once), the gateway with the cache
# off (every call proxied) and the gateway answering from L1, the inputs of
# docs/benchmarks.md's latency and throughput charts. Each level is a warm-up
# of WARM (default 1s) and a measured run of DUR (default 2s) per target;
# results go to results/latency-LABEL-cN.json and the charts to docs/img/
# (go run ./scripts/charts). LEVELS overrides the levels. The load generator
# and the processes under test share the machine: above 2 connections on 2
# cores, every figure includes that contention.
source "$(dirname "$0")/lib.sh"
LEVELS="${LEVELS:-1 2 4 8 16 32 64 128 256}"
DUR="${DUR:-2s}"
WARM="${WARM:-1s}"
build
OUT="$ROOT/results"
mkdir -p "$OUT"
start_sim 0s 0s
start_gateway nocache CACHE_ENABLED=false
start_gateway cache
run_id="sweep-$RANDOM$RANDOM"

# level LABEL URL C: one warm-up, one measured run.
level() {
  local label=$1 url=$2 c=$3 f="$OUT/latency-$1-c$3.json"
  "$BIN" bench --url "$url/v1/chat/completions" -q -c "$c" -d "$WARM" --mix same --run-id "$run_id" --interval 0 >/dev/null
  "$BIN" bench --url "$url/v1/chat/completions" --json -q --label "$label" -c "$c" -d "$DUR" --mix same \
    --run-id "$run_id" --interval 0 >"$f"
  printf '%-20s c=%-4s %8.0f req/s  p50 %8.1f µs  p99 %8.1f µs  errors %s\n' "$label" "$c" \
    "$(jget "$f" throughput_rps)" "$(jget "$f" latency_us.p50)" "$(jget "$f" latency_us.p99)" "$(jget "$f" errors)"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(go version | cut -d' ' -f3); $(date -u '+%Y-%m-%d %H:%M UTC')"
for c in $LEVELS; do
  level simulated-provider "$SIM_URL" "$c"
  level gateway-miss "$URL_nocache" "$c"
  level gateway-l1-hit "$URL_cache" "$c"
done
(cd "$ROOT" && go run ./scripts/charts -in results/ -out docs/img/)
