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
bench "$WORK/warm.json" --mix same --run-id suite-l1 -n 1 -c 1 --interval 0
echo -n "L1 Cache Hit (avg of 100 requests): "
if command -v curl >/dev/null; then
  sum=0
  for _ in $(seq 1 100); do
    t=$(curl -w "%{time_total}" -o /dev/null -s -X POST "$URL" -H "Content-Type: application/json" \
      -d "$(printf '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Request %s-0"}]}' suite-l1)")
    sum=$(awk -v a="$sum" -v b="$t" 'BEGIN { print a+b }')
  done
  awk -v s="$sum" 'BEGIN { printf "%.4fs (curl, includes curl start-up)\n", s/100 }'
fi
bench "$WORK/l1.json" --mix same --run-id suite-l1 -n 100 -c 1 --interval 0
echo "L1 Cache Hit (edge-agent bench, 100 requests): mean $(ms "$WORK/l1.json" latency_us.mean) ms, p50 $(ms "$WORK/l1.json" latency_us.p50) ms"
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
  ab -n 1000 -c 10 -p "$ROOT/scripts/request.json" -T application/json "$URL" | grep "Requests per second"
else
  bench "$WORK/tput.json" --mix same -n 1000 -c 10 --interval 0
  echo "Requests per second:    $(jget "$WORK/tput.json" throughput_rps) [#/sec] (edge-agent bench; ab not installed)"
fi
echo
echo "Benchmark complete!"
