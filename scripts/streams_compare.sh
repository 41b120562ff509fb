#!/usr/bin/env bash
# streams_compare.sh: N concurrent streams, side by side in one run, through
#
#   simulated-provider   the simulated provider alone (the clients talk to it)
#   bare-proxy           a bare net/http/httputil.ReverseProxy in front of
#                        one (scripts/revproxy: the floor for any Go proxy)
#   gateway              the gateway with its defaults in front of one
#
# The upstream waits 1 s before the first token, then sends 50 chunks 20 ms
# apart (edge-agent simulate --latency 1s --chunk-delay 20ms --words 150).
# For each N in STREAMS (default "500 1000 2000 5000 10000") and each of the
# three, fresh processes (so each figure includes a process's first
# seconds), and `edge-agent bench` with N workers, every request a stream
# with a prompt of its own (cache misses), ROUNDS_PER_WORKER streams per
# worker (default 2), bounded by STEP_TIMEOUT (default 60s) per step.
# Reported per row: streams completed and failed, CPU ms per stream
# (utime + stime of the process under test over the run, from
# /proc/PID/stat, per completed stream), its peak RSS (VmHWM) and RSS per
# stream ((VmHWM - VmRSS before the load) / N), time to first token p50 and
# p99, the time it adds to it against the provider alone, and total time
# p50. Non-streaming at NONSTREAM_N (default 5000, 0 skips) gets the same
# rows, one request per worker.
#
# REPEAT (default 1) runs every step that many rounds, the bare proxy and
# the gateway one after the other in each (their order alternating from
# round to round), and reports each column's median over the rounds (the
# fewest completed and the most failed), with the gateway-to-proxy ratios
# of every round: on a shared 2-core machine one run's CPU ratio moves by
# 10-20 %, so a claim about it rests on the median of rounds, not one.
#
# PIN=1 (two or more CPUs) gives the process under test CPU 1 to itself,
# with GOMAXPROCS=1, and puts the upstream and the load generator on CPU
# 0: its CPU per stream is then its own work, without the cross-core
# scheduling and cache contention of sharing both cores with the load
# (the upstream then limits the pace: TTFT figures are not comparable to
# unpinned runs).
#
# The table goes to stdout and results/streams.tsv (the input of the
# streams charts: go run ./scripts/charts), every round's rows to
# results/streams-rounds.tsv. Linux only (/proc). The load generator, the
# three processes under test and their upstream share the machine: on 2
# cores every figure includes that contention.
source "$(dirname "$0")/lib.sh"
STREAMS="${STREAMS:-500 1000 2000 5000 10000}"
ROUNDS_PER_WORKER="${ROUNDS_PER_WORKER:-2}"
STEP_TIMEOUT="${STEP_TIMEOUT:-60s}"
NONSTREAM_N="${NONSTREAM_N:-5000}"
REPEAT="${REPEAT:-1}"
PIN="${PIN:-0}"
TGT_ENV=() LOAD_PIN=()
if [ "$PIN" = 1 ]; then
  [ "$(nproc)" -ge 2 ] || { echo "PIN=1 needs two CPUs" >&2; exit 1; }
  TGT_ENV=(GOMAXPROCS=1) LOAD_PIN=(taskset -c 0)
fi
pin() { if [ "$PIN" = 1 ]; then taskset -a -p -c "$1" "$2" >/dev/null; fi; } # pin CPU PID
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
build
(cd "$ROOT" && go build -o "$ROOT/bin/revproxy" ./scripts/revproxy)
OUT="$ROOT/results"
mkdir -p "$OUT"
TCK=$(getconf CLK_TCK)

kib() { awk -v k="$2" '$1 == k":" {print $2}' /proc/"$1"/status; }

ROWS="$OUT/streams.tsv" RUNS="$OUT/streams-rounds.tsv"
HEADER='target\tmode\tn\tcompleted\tfailed\tcpu_ms_per_req\tpeak_rss_mib\trss_kib_per_req\tttft_p50_ms\tttft_p99_ms\ttotal_p50_ms'
printf "$HEADER\n" >"$ROWS"
printf "$HEADER\tround\n" >"$RUNS"

# step TARGET MODE N ROUND: fresh processes, one bench run, one row.
step() {
  local target=$1 mode=$2 n=$3 round=$4 pid url
  if [ "$target" = simulated-provider ]; then start_stream_upstream "${TGT_ENV[@]}"; else start_stream_upstream; pin 0 "$UP_PID"; fi
  case "$target" in
    simulated-provider) pid=$UP_PID url=$UP_URL ;;
    bare-proxy)
      serve "$WORK/proxy.log" 'env "${TGT_ENV[@]}" "$ROOT/bin/revproxy" --addr "127.0.0.1:$PORT" --upstream "$UP_URL"'
      pid=$LAST_PID url="http://127.0.0.1:$PORT" ;;
    gateway)
      SIM_URL=$UP_URL
      start_gateway streams "${TGT_ENV[@]}"
      pid=$PID_streams url=$URL_streams ;;
  esac
  pin 1 "$pid"
  local share=1 reqs=$((n * ROUNDS_PER_WORKER))
  if [ "$mode" = json ]; then share=0 reqs=$n; fi
  local rss0 cpu0 cpu1 hwm f="$WORK/$target-$mode-$n.json"
  rss0=$(kib "$pid" VmRSS); cpu0=$(cpu_ticks "$pid")
  "${LOAD_PIN[@]}" "$BIN" bench --url "$url/v1/chat/completions" --json -q --label "$target" -c "$n" -n "$reqs" -d "$STEP_TIMEOUT" \
    --stream-share "$share" --mix unique --interval 0 --timeout "$STEP_TIMEOUT" >"$f" || true
  cpu1=$(cpu_ticks "$pid"); hwm=$(kib "$pid" VmHWM)
  stop_all
  local done_ errs
  errs=$(jget "$f" errors); done_=$(( $(jget "$f" requests) - errs ))
  local p50 p99 tot
  if [ "$mode" = stream ]; then p50=$(jget "$f" ttft_us.p50) p99=$(jget "$f" ttft_us.p99); else p50=$(jget "$f" latency_us.p50) p99=$(jget "$f" latency_us.p99); fi
  tot=$(jget "$f" latency_us.p50)
  awk -v t="$target" -v m="$mode" -v n="$n" -v ok="$done_" -v e="$errs" -v c0="$cpu0" -v c1="$cpu1" -v tck="$TCK" \
    -v hwm="$hwm" -v r0="$rss0" -v p50="$p50" -v p99="$p99" -v tot="$tot" -v round="$round" 'BEGIN {
      cpu = ok > 0 ? (c1 - c0) * 1000 / tck / ok : 0
      printf "%s\t%s\t%d\t%d\t%d\t%.3f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%d\n", t, m, n, ok, e, cpu, hwm/1024, (hwm - r0)/n, p50/1000, p99/1000, tot/1000, round }' >>"$RUNS"
}

# steps MODE N: REPEAT rounds of the three targets at N.
steps() {
  local r
  for ((r = 1; r <= REPEAT; r++)); do
    step simulated-provider "$1" "$2" "$r"
    if ((r % 2)); then step bare-proxy "$1" "$2" "$r"; step gateway "$1" "$2" "$r"
    else step gateway "$1" "$2" "$r"; step bare-proxy "$1" "$2" "$r"; fi
  done
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(go version | cut -d' ' -f3), RLIMIT_NOFILE $(ulimit -n)"
echo "upstream: 1 s to the first token, then 50 chunks 20 ms apart; $ROUNDS_PER_WORKER streams per worker; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "rounds: $REPEAT (each figure the median of the rounds; completed the fewest, failed the most)"
if [ "$PIN" = 1 ]; then echo "pinned: the process under test on CPU 1 (GOMAXPROCS=1), the upstream and the load on CPU 0"; fi
for n in $STREAMS; do steps stream "$n"; done
if [ "$NONSTREAM_N" -gt 0 ]; then steps json "$NONSTREAM_N"; fi

# MEDIAN: an awk function, median(v, n), of v[1..n] (sorts v).
MEDIAN='function median(v, n,   i, j, t) {
    for (i = 2; i <= n; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }'

# streams.tsv: per target, mode and N, each column's median over the
# rounds, the fewest completed and the most failed.
awk -F'\t' -v OFS='\t' "$MEDIAN"'
  function col(k, c,   i, v) { for (i = 1; i <= cnt[k]; i++) v[i] = val[k, c, i]; return median(v, cnt[k]) }
  NR == 1 { next }
  { k = $1 OFS $2 OFS $3; if (!(k in cnt)) order[++keys] = k
    cnt[k]++; for (c = 4; c <= 11; c++) val[k, c, cnt[k]] = $c
    if (!(k in lo) || $4 < lo[k]) lo[k] = $4; if ($5 > hi[k]) hi[k] = $5 }
  END { for (i = 1; i <= keys; i++) { k = order[i]
      printf "%s\t%d\t%d\t%.3f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\n", k, lo[k], hi[k] + 0, col(k, 6), col(k, 7), col(k, 8), col(k, 9), col(k, 10), col(k, 11) } }' "$RUNS" >>"$ROWS"

# The table: TTFT (latency for json rows) added against the provider alone
# at the same N, and the gateway's figures against the bare proxy's.
awk -F'\t' 'NR == 1 { next }
  { k = $2 "\t" $3; key[NR] = k; row[NR] = $0; if ($1 == "simulated-provider") base[k] = $9; if ($1 == "bare-proxy") { pcpu[k] = $6; prss[k] = $8; pttft[k] = $9 } }
  END {
    printf "%-19s %-6s %6s %9s %6s %11s %9s %11s %9s %9s %9s %9s\n", "", "mode", "N", "completed", "failed", "CPU ms/req", "peak RSS", "KiB/req", "TTFT p50", "TTFT p99", "added", "total p50"
    for (i = 2; i <= NR; i++) { split(row[i], f, "\t"); k = key[i]
      add = (k in base) ? sprintf("%+.1f", f[9] - base[k]) : "-"
      printf "%-19s %-6s %6d %9d %6d %11.3f %6.1f MiB %11.1f %6.1f ms %6.1f ms %6s ms %6.1f ms\n", f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], add, f[11] }
    print ""
    print "gateway against the bare proxy, same N (targets at N = 5000: CPU <= 1.0x, RSS/stream <= 0.5x, added TTFT p50 within 10 ms):"
    for (i = 2; i <= NR; i++) { split(row[i], f, "\t"); k = key[i]
      if (f[1] != "gateway" || !(k in pcpu)) continue
      printf "  %-6s N=%-6d CPU %.2fx  RSS/req %.2fx  TTFT p50 %+.1f ms\n", f[2], f[3], (pcpu[k] > 0 ? f[6] / pcpu[k] : 0), (prss[k] > 0 ? f[8] / prss[k] : 0), f[9] - pttft[k] }
  }' "$ROWS"
if [ "$REPEAT" -gt 1 ]; then
  echo
  echo "every round's gateway-to-proxy CPU ratio and TTFT p50 difference (the two run back to back):"
  awk -F'\t' "$MEDIAN"'
    NR == 1 { next }
    { k = $2 "\t" $3; r = $12; if (!(k in seen)) { seen[k] = 1; order[++keys] = k }
      if ($1 == "bare-proxy") { pc[k, r] = $6; pt[k, r] = $9 } if ($1 == "gateway") { gc[k, r] = $6; gt[k, r] = $9 }; if (r > rounds) rounds = r }
    END { for (i = 1; i <= keys; i++) { k = order[i]; split(k, f, "\t"); printf "  %-6s N=%-6d CPU", f[1], f[2]
        for (r = 1; r <= rounds; r++) { q[r] = pc[k, r] > 0 ? gc[k, r] / pc[k, r] : 0; printf " %.2fx", q[r] }
        printf " (median %.2fx)  TTFT p50", median(q, rounds)
        for (r = 1; r <= rounds; r++) printf " %+.0f", gt[k, r] - pt[k, r]; print " ms" } }' "$RUNS"
fi
