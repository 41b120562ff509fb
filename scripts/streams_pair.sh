#!/usr/bin/env bash
# streams_pair.sh: the gateway's CPU per stream against the bare proxy's,
# the two serving N streams each at the same time.
#
# scripts/streams_compare.sh runs the proxy and the gateway one after the
# other; on a shared VM the machine's speed moves between two runs by
# 10-20 %, and so does their CPU ratio. Here the two run together, each with
# its own `edge-agent bench` (N workers, ROUNDS_PER_WORKER streams each,
# default 3, every stream a prompt of its own) against one simulated
# provider (1 s to the first token, then 50 chunks 20 ms apart): whatever
# slows the machine slows both, and the ratio of their CPU per completed
# stream (utime + stime from /proc/PID/stat) moves by about 1 % between
# rounds (docs/benchmarks.md). The same run with the gateway in both places
# (SAME=1) shows the method's own spread; with another build of it there
# (OTHER_BIN=path/to/edge-agent) the ratio is a change's effect, to the same
# spread. The two load the machine with 2N
# streams, so absolute figures are not comparable to streams_compare.sh's.
#
#   N        streams of each (default 1500)
#   REPEAT   rounds (default 5), fresh processes each, the proxy's and the
#            gateway's load started in alternating order
#   SAME=1   the gateway in both places
#   OTHER_BIN  another edge-agent binary in the second place
#
# Prints every round's CPU ms per stream, their ratio and the ratio of user
# time alone (utime: the processes' own code, the kernel's part left out),
# and the median ratio. Linux only (/proc).
source "$(dirname "$0")/lib.sh"
N="${N:-1500}"
REPEAT="${REPEAT:-5}"
ROUNDS_PER_WORKER="${ROUNDS_PER_WORKER:-3}"
STEP_TIMEOUT="${STEP_TIMEOUT:-90s}"
SAME="${SAME:-0}"
OTHER_BIN="${OTHER_BIN:-}"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
build
(cd "$ROOT" && go build -o "$ROOT/bin/revproxy" ./scripts/revproxy)
TCK=$(getconf CLK_TCK)
# load URL OUT: one bench run of N workers in the background; sets LOAD_PID.
load() {
  "$BIN" bench --url "$1/v1/chat/completions" --json -q -c "$N" -n $((N * ROUNDS_PER_WORKER)) -d "$STEP_TIMEOUT" \
    --stream-share 1 --mix unique --interval 0 --timeout "$STEP_TIMEOUT" >"$2" || true &
  LOAD_PID=$!
}

# per_stream PID CPU0 OUT: CPU ms per completed stream since CPU0.
per_stream() {
  local ok
  ok=$(( $(jget "$3" requests) - $(jget "$3" errors) ))
  awk -v c0="$2" -v c1="$(cpu_ticks "$1")" -v ok="$ok" -v tck="$TCK" 'BEGIN { printf "%.3f", (ok > 0 ? (c1 - c0) * 1000 / tck / ok : 0) }'
}

other=bare-proxy
if [ "$SAME" = 1 ]; then other=gateway; fi
if [ -n "$OTHER_BIN" ]; then
  [ -x "$OTHER_BIN" ] || { echo "OTHER_BIN=$OTHER_BIN is not an executable" >&2; exit 1; }
  other="$(basename "$OTHER_BIN")" SAME=1
fi
utime() { awk '{print $14}' /proc/"$1"/stat; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(go version | cut -d' ' -f3), RLIMIT_NOFILE $(ulimit -n)"
echo "$N streams through each of the gateway and the $other at the same time, $ROUNDS_PER_WORKER per worker, $REPEAT rounds; $(date -u '+%Y-%m-%d %H:%M UTC')"
printf "%-6s %14s %14s %8s %11s %7s\n" round "gateway ms" "$other ms" ratio "user ratio" failed
ratios=()
for ((r = 1; r <= REPEAT; r++)); do
  start_stream_upstream
  SIM_URL=$UP_URL
  start_gateway pair
  gpid=$PID_pair gurl=$URL_pair
  if [ "$SAME" = 1 ]; then
    BIN=${OTHER_BIN:-$BIN} start_gateway other
    opid=$PID_other ourl=$URL_other
  else
    serve "$WORK/proxy.log" '"$ROOT/bin/revproxy" --addr "127.0.0.1:$PORT" --upstream "$SIM_URL"'
    opid=$LAST_PID ourl="http://127.0.0.1:$PORT"
  fi
  g0=$(cpu_ticks "$gpid") o0=$(cpu_ticks "$opid") gu0=$(utime "$gpid") ou0=$(utime "$opid")
  if ((r % 2)); then load "$gurl" "$WORK/g.json"; gl=$LOAD_PID; load "$ourl" "$WORK/o.json"; ol=$LOAD_PID
  else load "$ourl" "$WORK/o.json"; ol=$LOAD_PID; load "$gurl" "$WORK/g.json"; gl=$LOAD_PID; fi
  wait "$gl"; g=$(per_stream "$gpid" "$g0" "$WORK/g.json") gu=$(( $(utime "$gpid") - gu0 ))
  wait "$ol"; o=$(per_stream "$opid" "$o0" "$WORK/o.json") ou=$(( $(utime "$opid") - ou0 ))
  failed=$(( $(jget "$WORK/g.json" errors) + $(jget "$WORK/o.json" errors) ))
  stop_all
  ratio=$(awk -v g="$g" -v o="$o" 'BEGIN { printf "%.3f", (o > 0 ? g / o : 0) }')
  uratio=$(awk -v g="$gu" -v o="$ou" -v gs="$(( $(jget "$WORK/g.json" requests) - $(jget "$WORK/g.json" errors) ))" \
    -v os="$(( $(jget "$WORK/o.json" requests) - $(jget "$WORK/o.json" errors) ))" 'BEGIN { printf "%.3f", (o > 0 && gs > 0 ? (g / gs) / (o / os) : 0) }')
  ratios+=("$ratio")
  printf "%-6d %14s %14s %7sx %10sx %7d\n" "$r" "$g" "$o" "$ratio" "$uratio" "$failed"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{ v[NR] = $1 } END { printf "median ratio %.3fx (%d rounds, %.3f-%.3f)\n", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2, NR, v[1], v[NR] }'
