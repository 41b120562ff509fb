# Shared helpers of the performance scripts. Source it; do not run it.
#
#   GATEWAY_URL   gateway to measure (default http://localhost:8080)
#   --local       start a simulated provider, a redis-server and a gateway,
#                 and stop them on exit
#   SIM_LATENCY   simulated provider time to first token with --local (800ms)
#   SIM_JITTER    +/- jitter on it (200ms)

set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/bin/edge-agent"
JSONGET="$ROOT/bin/jsonget"
GATEWAY_URL="${GATEWAY_URL:-http://localhost:8080}"
SIM_LATENCY="${SIM_LATENCY:-800ms}"
SIM_JITTER="${SIM_JITTER:-200ms}"
WORK="$(mktemp -d)"
PIDS=()

build() {
  (cd "$ROOT" && go build -o "$BIN" ./cmd/edge-agent && go build -o "$JSONGET" ./scripts/jsonget)
}

# stop_all: stops every process started through serve, and waits for them.
stop_all() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}

cleanup() {
  stop_all
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM # runs the EXIT trap once, then stops

# free_port prints a loopback port nothing listens on, picked below the
# kernel's ephemeral range so that no outgoing connection can hold it.
free_port() {
  local lo=32768 p
  if [ -r /proc/sys/net/ipv4/ip_local_port_range ]; then read -r lo _ </proc/sys/net/ipv4/ip_local_port_range; fi
  [ "$lo" -gt 12000 ] || lo=32768
  while :; do
    p=$(( (RANDOM % (lo - 11000)) + 10000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
}

wait_port() { # host port [pid log]: waits up to 20 s; shows the log if the process died
  for _ in $(seq 1 400); do
    if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
    if [ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null; then
      # Another process took the port between free_port and bind: the
      # caller tries again on another one.
      if [ -n "${4:-}" ] && grep -qi "address already in use" "$4"; then return 2; fi
      echo "process $3 exited before listening on $1:$2:" >&2; [ -n "${4:-}" ] && tail -20 "$4" >&2
      return 1
    fi
    sleep 0.05
  done
  echo "nothing listens on $1:$2" >&2; [ -n "${4:-}" ] && tail -20 "$4" >&2
  return 1
}

# serve LOG CMD...: runs CMD (which may use $PORT) in the background on a free
# port, retrying on another port when the chosen one was taken meanwhile.
# Sets PORT and LAST_PID.
serve() {
  local log=$1; shift
  local try rc
  for try in 1 2 3 4 5; do
    PORT=$(free_port)
    eval "exec $*" >"$log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    rc=0; wait_port 127.0.0.1 "$PORT" "$LAST_PID" "$log" || rc=$?
    [ "$rc" -eq 2 ] || return "$rc"
  done
  echo "no free port after $try tries" >&2; return 1
}

# start_sim LATENCY JITTER -> SIM_URL
start_sim() {
  SIM_ARGS=(--latency "$1" --jitter "$2")
  serve "$WORK/sim.log" '"$BIN" simulate --addr "127.0.0.1:$PORT" "${SIM_ARGS[@]}"'
  SIM_URL="http://127.0.0.1:$PORT"
}

# start_stream_upstream [ENV...] -> UP_URL, UP_PID: the streams benchmarks'
# upstream, 1 s to the first token, then 50 chunks 20 ms apart.
start_stream_upstream() {
  UP_ENV=("$@")
  serve "$WORK/sim.log" 'env "${UP_ENV[@]}" "$BIN" simulate --addr "127.0.0.1:$PORT" --latency 1s --chunk-delay 20ms --words 150'
  UP_PID=$LAST_PID UP_URL="http://127.0.0.1:$PORT"
}

# cpu_ticks PID: the process's utime + stime, in clock ticks.
cpu_ticks() { awk '{print $14+$15}' /proc/"$1"/stat; }

# start_redis -> REDIS_URL
start_redis() {
  command -v redis-server >/dev/null || { echo "redis-server is required (apt-get install -y redis-server)" >&2; exit 1; }
  serve "$WORK/redis.log" 'redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --protected-mode no'
  REDIS_URL="redis://127.0.0.1:$PORT"
}

# start_gateway NAME [ENV=VALUE...] -> URL_<NAME>, PID_<NAME>
start_gateway() {
  local name=$1; shift
  GW_ENV=("$@")
  serve "$WORK/gateway-$name.log" 'env PORT="$PORT" HOST=127.0.0.1 METRICS_PORT=0 LOG_FORMAT=text \
      OPENAI_API_KEY=sim OPENAI_BASE_URL="$SIM_URL/v1" ANTHROPIC_API_KEY=sim ANTHROPIC_BASE_URL="$SIM_URL" \
      "${GW_ENV[@]}" "$BIN"'
  printf -v "PID_$name" '%s' "$LAST_PID"
  printf -v "URL_$name" '%s' "http://127.0.0.1:$PORT"
}

# local_stack: simulated provider + redis + one gateway; sets GATEWAY_URL.
local_stack() {
  start_sim "$SIM_LATENCY" "$SIM_JITTER"
  start_redis
  start_gateway main REDIS_URL="$REDIS_URL"
  GATEWAY_URL="$URL_main"
}

# bench OUT.json [bench flags...]: edge-agent bench against the gateway.
bench() {
  local out=$1; shift
  "$BIN" bench --url "$GATEWAY_URL/v1/chat/completions" --json -q "$@" >"$out"
}

jget() { "$JSONGET" "$@"; }

# ms FILE PATH: a microsecond field as milliseconds with 3 decimals.
ms() { awk -v us="$(jget "$1" "$2")" 'BEGIN { printf "%.3f", us/1000 }'; }

# lt A B: exit status of A < B (floats).
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }

parse_common_flags() {
  LOCAL=0
  for a in "$@"; do
    case "$a" in
      --local) LOCAL=1 ;;
      -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    esac
  done
}

# measure_all: runs the guide's measurements against GATEWAY_URL (and
# SECOND_URL for L2, when set) and sets M_* variables (milliseconds,
# percents, req/s). QUICK=1 shortens the runs.
measure_all() {
  local n_hit=500 dur=5s n_zipf=3000 n_miss=20
  if [ "${QUICK:-0}" = 1 ]; then n_hit=300 dur=3s n_zipf=2000 n_miss=10; fi
  local run="m-$RANDOM$RANDOM"
  bench "$WORK/l1-warm.json" --mix same --run-id "$run" -n 1 -c 1 --interval 0 # the one miss
  bench "$WORK/l1.json" --mix same --run-id "$run" -n "$n_hit" -c 1 --interval 0
  M_L1_P50=$(ms "$WORK/l1.json" latency_us.p50); M_L1_P99=$(ms "$WORK/l1.json" latency_us.p99)
  bench "$WORK/miss.json" --mix unique -n "$n_miss" -c 4 --interval 0
  M_PROVIDER_P50=$(ms "$WORK/miss.json" latency_us.p50)
  M_OVERHEAD_P50=$(ms "$WORK/miss.json" overhead_us.p50); M_OVERHEAD_P99=$(ms "$WORK/miss.json" overhead_us.p99)
  M_L2_P50=""; M_L2_P99=""
  if [ -n "${SECOND_URL:-}" ]; then
    local l2run="l2-$RANDOM$RANDOM"
    bench "$WORK/fill.json" --mix unique --run-id "$l2run" -n 100 -c 16 --interval 0
    sleep 0.5
    GATEWAY_URL="$SECOND_URL" bench "$WORK/l2.json" --mix unique --run-id "$l2run" -n 100 -c 1 --interval 0
    M_L2_HITS=$(jget "$WORK/l2.json" hits.l2)
    M_L2_P50=$(ms "$WORK/l2.json" latency_us.p50); M_L2_P99=$(ms "$WORK/l2.json" latency_us.p99)
  fi
  bench "$WORK/zipf.json" --mix zipf --prompts 1000 -n "$n_zipf" -c 32 --interval 0
  M_HIT_RATE=$(awk -v r="$(jget "$WORK/zipf.json" hit_rate)" 'BEGIN { printf "%.1f", r*100 }')
  bench "$WORK/tput.json" --mix same --run-id "$run" -d "$dur" -c 32 --interval 0
  M_TPUT=$(awk -v r="$(jget "$WORK/tput.json" throughput_rps)" 'BEGIN { printf "%.0f", r }')
  M_HIT_P95=$(ms "$WORK/tput.json" latency_us.p95)
  M_ERR=$(awk -v a="$(jget "$WORK/l1.json" error_rate)" -v b="$(jget "$WORK/miss.json" error_rate)" \
              -v c="$(jget "$WORK/zipf.json" error_rate)" -v d="$(jget "$WORK/tput.json" error_rate)" \
              'BEGIN { m=a; if (b>m) m=b; if (c>m) m=c; if (d>m) m=d; printf "%.3f", m*100 }')
}

# verdict NAME VALUE OP LIMIT UNIT: prints one PASS/FAIL line, counts failures.
FAILS=0
verdict() {
  local name=$1 value=$2 op=$3 limit=$4 unit=$5 ok
  if [ -z "$value" ]; then printf '%-28s %12s   (not measured)\n' "$name" "-"; return; fi
  case "$op" in
    "<")  ok=$(awk -v a="$value" -v b="$limit" 'BEGIN { print (a < b) }') ;;
    "<=") ok=$(awk -v a="$value" -v b="$limit" 'BEGIN { print (a <= b) }') ;;
    ">")  ok=$(awk -v a="$value" -v b="$limit" 'BEGIN { print (a > b) }') ;;
  esac
  if [ "$ok" = 1 ]; then s=PASS; else s=FAIL; FAILS=$((FAILS+1)); fi
  printf '%-28s %12s %-6s target %s %s %s\n' "$name" "$value" "$unit" "$op" "$limit" "$s"
}
