#!/usr/bin/env bash
# load_compare.sh [--rss]: the gateway against the simulated provider alone,
# in one run, on this machine. The simulated provider answers at once
# (0 ms), so every difference is the gateway's own cost.
#
#   simulated provider alone          (the baseline)
#   gateway, cache off (every call proxied)
#   the same over net/http's Transport (UPSTREAM_HTTP_CLIENT=std)
#   gateway, L1 hits
#   gateway, L2 hits (a second instance on the same Redis; 1 connection)
#   Zipf mix (s=1.0, 1000 prompts) hit ratio over time
# at 1 and 32 connections, each with the CPU time the process under test
# (and, for proxied calls, the simulated provider) spent per request, read
# from /proc: a figure much steadier than throughput on a shared machine.
# Results go to results/*.json (bench JSON, named
# for scripts/charts) and the charts to docs/img/.
# --rss adds two 1M-request runs (RSS_N) on fresh gateway instances, all L1
# hits and a Zipf mix over 100k prompts, and reports each one's peak RSS
# (VmHWM from /proc/PID/status; Linux only).
source "$(dirname "$0")/lib.sh"
RSS=0
for a in "$@"; do [ "$a" = --rss ] && RSS=1; done
DUR="${DUR:-5s}"
build
OUT="$ROOT/results"
mkdir -p "$OUT"
start_sim 0s 0s
SIM_PID=$LAST_PID
start_redis
start_gateway nocache CACHE_ENABLED=false
start_gateway nocachestd CACHE_ENABLED=false UPSTREAM_HTTP_CLIENT=std
start_gateway cache REDIS_URL="$REDIS_URL"
start_gateway second REDIS_URL="$REDIS_URL"

cputicks() { awk '{print $14+$15}' /proc/"$1"/stat; } # utime+stime, in clock ticks
run() { # label url pid concurrency mix [extra...]
  local label=$1 url=$2 pid=$3 c=$4 mix=$5; shift 5
  local f="$OUT/latency-$label-c$c.json" p0 s0 p1 s1 cpu
  # Warm up in a run of its own, so the CPU counts cover the measured run only.
  "$BIN" bench --url "$url/v1/chat/completions" -q -c "$c" -d 1s --mix "$mix" "$@" >/dev/null
  p0=$(cputicks "$pid"); s0=$(cputicks "$SIM_PID")
  "$BIN" bench --url "$url/v1/chat/completions" --json -q --label "$label" -c "$c" -d "$DUR" --mix "$mix" "$@" >"$f"
  p1=$(cputicks "$pid"); s1=$(cputicks "$SIM_PID")
  cpu=$(awk -v p=$((p1 - p0)) -v s=$((s1 - s0)) -v n="$(jget "$f" requests)" -v tck="$(getconf CLK_TCK)" \
    -v same="$([ "$pid" = "$SIM_PID" ] && echo 1 || echo 0)" \
    'BEGIN { if (same) printf "CPU/req %5.1f µs", p*1e6/tck/n; else printf "CPU/req %5.1f µs (+ provider %4.1f)", p*1e6/tck/n, s*1e6/tck/n }')
  printf '%-22s c=%-3s %9.0f req/s  p50 %8.1f µs  p99 %8.1f µs  errors %s  %s\n' "$label" "$c" \
    "$(jget "$f" throughput_rps)" "$(jget "$f" latency_us.p50)" "$(jget "$f" latency_us.p99)" "$(jget "$f" errors)" "$cpu"
}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(go version | cut -d' ' -f3)"
for c in 1 32; do
  run simulated-provider "$SIM_URL" "$SIM_PID" "$c" same
  run gateway-miss "$URL_nocache" "$PID_nocache" "$c" same
  run gateway-miss-std "$URL_nocachestd" "$PID_nocachestd" "$c" same
  run gateway-l1-hit "$URL_cache" "$PID_cache" "$c" same
done
rm -f "$OUT"/latency-gateway-miss-std-c*.json # in the table, not the charts
for c in 1 32; do
  cp "$OUT/latency-simulated-provider-c$c.json" "$OUT/throughput-c$c-simulated-provider.json"
  cp "$OUT/latency-gateway-miss-c$c.json" "$OUT/throughput-c$c-gateway-miss.json"
  cp "$OUT/latency-gateway-l1-hit-c$c.json" "$OUT/throughput-c$c-gateway-l1-hit.json"
done
rm -f "$OUT"/throughput-c1-*.json # the throughput chart compares 32 connections

# L2: fill through one instance, read the same prompts through another.
run_id="cmp-$RANDOM$RANDOM"
"$BIN" bench --url "$URL_cache/v1/chat/completions" --json -q -c 16 -n 2000 --mix unique --run-id "$run_id" >"$WORK/fill.json"
sleep 0.5
"$BIN" bench --url "$URL_second/v1/chat/completions" --json -q --label gateway-l2-hit -c 1 -n 2000 --mix unique \
  --run-id "$run_id" --interval 0 >"$OUT/l2-hit-c1.json"
echo "gateway-l2-hit        c=1   p50 $(jget "$OUT/l2-hit-c1.json" latency_us.p50) µs  p99 $(jget "$OUT/l2-hit-c1.json" latency_us.p99) µs  verified L2 hits $(jget "$OUT/l2-hit-c1.json" hits.l2)/2000"

# Zipf mix on a fresh namespace: hit ratio over time.
"$BIN" bench --url "$URL_cache/v1/chat/completions" --json -q --label "zipf s=1.0, 1000 prompts" -c 32 -d 20s \
  --mix zipf --prompts 1000 --interval 1s --header "X-Cache-Namespace: zipf-$RANDOM" >"$OUT/hitratio-zipf.json"
echo "zipf mix              c=32  hit rate $(jget "$OUT/hitratio-zipf.json" hit_rate)  $(jget "$OUT/hitratio-zipf.json" throughput_rps) req/s"
# Over 100k prompts the cache takes seconds to warm: the curve shows it.
"$BIN" bench --url "$URL_cache/v1/chat/completions" --json -q --label "zipf s=1.0, 100k prompts" -c 32 -d 20s \
  --mix zipf --prompts 100000 --interval 1s --header "X-Cache-Namespace: zipf100k-$RANDOM" >"$OUT/hitratio-zipf-100k.json"
echo "zipf mix, 100k prompts c=32  hit rate $(jget "$OUT/hitratio-zipf-100k.json" hit_rate)  $(jget "$OUT/hitratio-zipf-100k.json" throughput_rps) req/s"

# rss LABEL bench-flags...: a fresh gateway instance (L1 only) under one long
# run; its peak resident set (VmHWM) afterwards.
rss() {
  local label=$1; shift
  local name="rss_${label//[^a-zA-Z0-9]/_}"
  start_gateway "$name"
  local pid_var="PID_$name" url_var="URL_$name"
  "$BIN" bench --url "${!url_var}/v1/chat/completions" --json -q --label "rss $label" -c 32 -n "$RSS_N" --interval 0 "$@" \
    >"$OUT/rss-$label.json"
  local hwm rssnow
  hwm=$(awk '/VmHWM/ {printf "%.1f", $2/1024}' /proc/"${!pid_var}"/status)
  rssnow=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' /proc/"${!pid_var}"/status)
  printf 'peak RSS %-14s %s requests: VmHWM %s MiB (VmRSS now %s MiB)  %.0f req/s  hit rate %s  errors %s\n' \
    "$label" "$RSS_N" "$hwm" "$rssnow" "$(jget "$OUT/rss-$label.json" throughput_rps)" \
    "$(jget "$OUT/rss-$label.json" hit_rate)" "$(jget "$OUT/rss-$label.json" errors)"
  kill "${!pid_var}" 2>/dev/null || true
}
if [ "$RSS" = 1 ]; then
  RSS_N="${RSS_N:-1000000}"
  rss l1-hit --mix same
  rss zipf-100k --mix zipf --prompts 100000
fi
(cd "$ROOT" && go run ./scripts/charts -in results/ -out docs/img/)
