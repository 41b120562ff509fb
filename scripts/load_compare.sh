#!/usr/bin/env bash
# load_compare.sh [--rss]: the gateway against the simulated provider alone,
# in one run, on this machine. The simulated provider answers at once
# (0 ms), so every difference is the gateway's own cost.
#
#   simulated provider alone          (the baseline)
#   simulated provider + the 8 headers a gateway hit carries (a control:
#     what the response shape alone costs the server and the client)
#   gateway, cache off (every call proxied)
#   the same over net/http's Transport (UPSTREAM_HTTP_CLIENT=std)
#   gateway, L1 hits
#   gateway, L2 hits (a second instance on the same Redis; 1 connection)
#   Zipf mix (s=1.0, 1000 prompts) hit ratio over time
# at 1 and 32 connections, each with the CPU time the process under test
# (and, for proxied calls, the simulated provider) spent per request and its
# page faults per request, read from /proc: CPU per request is much steadier
# than throughput on a shared machine. Every row is measured ROUNDS times
# (default 3), the rows taking turns, and the table gives the median of each
# figure; single runs here vary by +-30 %. Each run follows a warm-up of its
# own (WARM, default 3 s): long enough for a gateway's heap to reach its
# garbage-collection floor (GC_MIN_HEAP), so the figures are those of a
# gateway under steady load, not of its first seconds, when every new heap
# page costs a page fault. With wrk installed, the 1-connection rows are
# also measured with it (a C client whose cost does not grow with the
# number of response headers).
# Results go to results/*.json (bench JSON, named
# for scripts/charts) and the charts to docs/img/.
# --rss adds two 1M-request runs (RSS_N) on fresh gateway instances, all L1
# hits and a Zipf mix over 100k prompts, and reports each one's peak RSS
# (VmHWM from /proc/PID/status; Linux only).
source "$(dirname "$0")/lib.sh"
RSS=0
for a in "$@"; do [ "$a" = --rss ] && RSS=1; done
DUR="${DUR:-5s}"
WARM="${WARM:-3s}"
ROUNDS="${ROUNDS:-3}"
build
OUT="$ROOT/results"
mkdir -p "$OUT"
start_sim 0s 0s
SIM_PID=$LAST_PID
PLAIN_SIM_URL=$SIM_URL
# The headers of a gateway L1 hit, with values of the same length.
SHAPE=(--header "X-Cache-Key: 0123456789abcdef0123456789abcdef" --header "X-Cache-Status: HIT"
  --header "X-Cache-Layer: L1" --header "X-Content-Type-Options: nosniff" --header "X-Edge-Overhead-Ms: 0.012"
  --header "X-Edge-Provider: openai" --header "X-Frame-Options: DENY" --header "X-Request-Id: req_0123456789ab_1abc")
serve "$WORK/sim-shaped.log" '"$BIN" simulate --addr "127.0.0.1:$PORT" "${SHAPE[@]}"'
SHAPED_PID=$LAST_PID
SHAPED_URL="http://127.0.0.1:$PORT"
SIM_URL=$PLAIN_SIM_URL # the gateways call the plain one
start_redis
start_gateway nocache CACHE_ENABLED=false
start_gateway nocachestd CACHE_ENABLED=false UPSTREAM_HTTP_CLIENT=std
start_gateway cache REDIS_URL="$REDIS_URL"
start_gateway second REDIS_URL="$REDIS_URL"

procstat() { awk '{print $14+$15, $10}' /proc/"$1"/stat; } # utime+stime (clock ticks), minor faults
ROWS="$WORK/rows.tsv"
: >"$ROWS"
run() { # label url pid concurrency mix [extra...]
  local label=$1 url=$2 pid=$3 c=$4 mix=$5; shift 5
  local f="$OUT/latency-$label-c$c.json" p0 s0 p1 s1
  # Warm up in a run of its own, so the counts cover the measured run only.
  "$BIN" bench --url "$url/v1/chat/completions" -q -c "$c" -d "$WARM" --mix "$mix" "$@" >/dev/null
  p0=$(procstat "$pid"); s0=$(procstat "$SIM_PID")
  "$BIN" bench --url "$url/v1/chat/completions" --json -q --label "$label" -c "$c" -d "$DUR" --mix "$mix" "$@" >"$f"
  p1=$(procstat "$pid"); s1=$(procstat "$SIM_PID")
  # label c req/s p50 p99 errors cpu/req faults/req provider-cpu/req
  awk -v l="$label" -v c="$c" -v p0="$p0" -v p1="$p1" -v s0="$s0" -v s1="$s1" -v n="$(jget "$f" requests)" \
    -v rps="$(jget "$f" throughput_rps)" -v p50="$(jget "$f" latency_us.p50)" -v p99="$(jget "$f" latency_us.p99)" \
    -v errs="$(jget "$f" errors)" -v tck="$(getconf CLK_TCK)" -v same="$([ "$pid" = "$SIM_PID" ] || [ "$pid" = "$SHAPED_PID" ] && echo 1 || echo 0)" \
    'BEGIN { split(p0, a, " "); split(p1, b, " "); split(s0, x, " "); split(s1, y, " ")
             prov = same ? -1 : (y[1]-x[1])*1e6/tck/n
             printf "%s\t%s\t%.0f\t%.1f\t%.1f\t%s\t%.1f\t%.3f\t%.1f\n", l, c, rps, p50, p99, errs, (b[1]-a[1])*1e6/tck/n, (b[2]-a[2])/n, prov }' >>"$ROWS"
}
# wrk_run label url pid: p50 at 1 connection with wrk, as a row.
WRK_LUA="$WORK/post.lua"
cat >"$WRK_LUA" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"load_compare wrk: the same prompt every time"}]}'
LUA
wrk_run() {
  local label=$1 url=$2 out p50 p99 rps errs
  wrk -t1 -c1 -d"$WARM" -s "$WRK_LUA" "$url/v1/chat/completions" >/dev/null
  out=$(wrk -t1 -c1 -d"$DUR" --latency -s "$WRK_LUA" "$url/v1/chat/completions")
  p50=$(awk '$1 == "50%" { print $2 }' <<<"$out"); p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
  rps=$(awk '$1 == "Requests/sec:" { print $2 }' <<<"$out")
  # Non-2xx answers plus socket errors (connect, read, write, timeout).
  errs=$(awk '/Non-2xx/ { n += $NF } /Socket errors:/ { gsub(",", ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' <<<"$out")
  # wrk prints 57.00us or 1.02ms: to microseconds
  us() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /ms$/) n *= 1000; else if (v ~ /[^mu]s$/) n *= 1e6; printf "%.1f", n }'; }
  printf '%s\t1\t%.0f\t%s\t%s\t%s\t-1\t-1\t-1\n' "$label (wrk)" "$rps" "$(us "$p50")" "$(us "$p99")" "${errs:-0}" >>"$ROWS"
}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(go version | cut -d' ' -f3)"
echo "each row: median of $ROUNDS runs of $DUR, each after a $WARM warm-up"
HAVE_WRK=0
command -v wrk >/dev/null && HAVE_WRK=1
[ "$HAVE_WRK" = 1 ] || echo "wrk is not installed: no wrk rows (apt-get install -y wrk)"
for round in $(seq 1 "$ROUNDS"); do
  # 32 connections first: their warm-up also touches the heap the 1-connection
  # rows then use (a gateway allocating at a 1-connection rate takes several
  # seconds to reach its GC floor).
  for c in 32 1; do
    run simulated-provider "$SIM_URL" "$SIM_PID" "$c" same
    run simulated-provider+gateway-headers "$SHAPED_URL" "$SHAPED_PID" "$c" same
    run gateway-miss "$URL_nocache" "$PID_nocache" "$c" same
    run gateway-miss-std "$URL_nocachestd" "$PID_nocachestd" "$c" same
    run gateway-l1-hit "$URL_cache" "$PID_cache" "$c" same
  done
  if [ "$HAVE_WRK" = 1 ]; then
    wrk_run simulated-provider "$SIM_URL"
    wrk_run simulated-provider+gateway-headers "$SHAPED_URL"
    wrk_run gateway-l1-hit "$URL_cache"
  fi
done
# The table: per label and concurrency, the median of each column.
sort -t$'\t' -k2,2n -s "$ROWS" | awk -F'\t' '
  function median(s,   a, n, i, j, t) { n = split(s, a, " "); for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j+1] = a[j]; a[j+1] = t } return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2 }
  { k = $1 "\t" $2; if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
    for (i = 3; i <= 9; i++) col[k, i] = col[k, i] " " $i }
  END {
    printf "%-42s %4s %9s %9s %9s %6s %9s %8s %9s\n", "", "conns", "req/s", "p50 µs", "p99 µs", "errors", "CPU/req", "faults", "provider"
    for (o = 1; o <= nk; o++) { k = order[o]; split(k, lc, "\t")
      cpu = median(col[k, 7]); flt = median(col[k, 8]); prov = median(col[k, 9])
      printf "%-42s %4s %9.0f %9.1f %9.1f %6s %9s %8s %9s\n", lc[1], lc[2], median(col[k, 3]), median(col[k, 4]), median(col[k, 5]), median(col[k, 6]),
        (cpu < 0 ? "-" : sprintf("%.1f µs", cpu)), (flt < 0 ? "-" : sprintf("%.3f", flt)), (prov < 0 ? "-" : sprintf("%.1f µs", prov)) } }'
cp "$ROWS" "$OUT/load_compare_rows.tsv"
rm -f "$OUT"/latency-gateway-miss-std-c*.json "$OUT"/latency-simulated-provider+gateway-headers-c*.json # in the table, not the charts
# The latency and throughput charts sweep concurrency: scripts/sweep_requests.sh.

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
