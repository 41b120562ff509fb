#!/usr/bin/env bash
# benchmark_suite.sh [--local]: the guide's benchmark suite. Uses curl and
# ab as the guide does when they are installed, and edge-agent bench for
# the same figures otherwise.
source "$(dirname "$0")/lib.sh"
parse_common_flags "$@"
build
[ "$LOCAL" = 1 ] && local_stack
URL="$GATEWAY_URL/v1/chat/completions"
echo "LLM Edge Agent Performance Benchmark Suite"
echo "=========================================="
echo
echo "1. Cache Performance"
echo "-------------------"
run="suite-$RANDOM$RANDOM"
# The body edge-agent bench sends for --mix same --run-id $run, so curl and
# the bench ask the same question and both measure L1 hits.
BODY=$(printf '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"bench %s prompt 1: answer in one short sentence."}]}' "$run")
bench "$WORK/warm.json" --mix same --run-id "$run" -n 1 -c 1 --interval 0 # the one miss
echo -n "L1 Cache Hit (avg of 100 requests): "
if command -v curl >/dev/null; then
  sum=0 l1=0
  for _ in $(seq 1 100); do
    out=$(curl -D - -w "time=%{time_total}\n" -o /dev/null -s -X POST "$URL" -H "Content-Type: application/json" -d "$BODY")
    t=${out##*time=}
    case "$out" in *"X-Cache-Layer: L1"*) l1=$((l1+1)) ;; esac
    sum=$(awk -v a="$sum" -v b="$t" 'BEGIN { print a+b }')
  done
  awk -v s="$sum" -v l1="$l1" 'BEGIN { printf "%.4fs (curl, includes curl start-up; %d/100 served from L1)\n", s/100, l1 }'
else
  echo "(curl not installed)"
fi
bench "$WORK/l1.json" --mix same --run-id "$run" -n 100 -c 1 --interval 0
echo "L1 Cache Hit (edge-agent bench, 100 requests): mean $(ms "$WORK/l1.json" latency_us.mean) ms, p50 $(ms "$WORK/l1.json" latency_us.p50) ms, $(jget "$WORK/l1.json" hits.l1)/100 from L1"
echo
echo "2. Provider Latency"
echo "-------------------"
bench "$WORK/prov.json" --mix unique -n 10 -c 1 --interval 0
echo "OpenAI (avg of 10 requests): $(ms "$WORK/prov.json" latency_us.mean) ms"
bench "$WORK/prova.json" --mix unique -n 10 -c 1 --interval 0 --model claude-3-5-sonnet-20241022
echo "Anthropic (avg of 10 requests): $(ms "$WORK/prova.json" latency_us.mean) ms"
echo
echo "3. Throughput Test"
echo "------------------"
if command -v ab >/dev/null; then
  # One request first, so ab measures the cached answer and not the one miss.
  curl -s -o /dev/null -X POST "$URL" -H "Content-Type: application/json" -d @"$ROOT/scripts/request.json" || true
  # -l: answers differ in length (request id, latency in the metadata);
  # without it ab counts every such answer under "Failed requests (Length)".
  ab -l -n 1000 -c 10 -p "$ROOT/scripts/request.json" -T application/json "$URL" 2>/dev/null |
    grep -E "Requests per second|Failed requests|Non-2xx"
else
  bench "$WORK/tput.json" --mix same --run-id "$run" -n 1000 -c 10 --interval 0
  echo "Requests per second:    $(jget "$WORK/tput.json" throughput_rps) [#/sec] (edge-agent bench; ab not installed)"
fi
echo
echo "Benchmark complete!"
