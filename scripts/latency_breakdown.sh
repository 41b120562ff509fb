#!/usr/bin/env bash
# latency_breakdown.sh [--local]: the guide's latency breakdown: L1 hits,
# then provider requests (unique prompts, so every one misses), with the
# gateway's own overhead from X-Edge-Overhead-Ms.
source "$(dirname "$0")/lib.sh"
parse_common_flags "$@"
build
[ "$LOCAL" = 1 ] && local_stack
echo "Testing latency breakdown..."
echo "=== L1 Cache Hit ==="
run="lb-$RANDOM$RANDOM"
bench "$WORK/warm.json" --mix same --run-id "$run" -n 1 -c 1 --interval 0 # the one miss
bench "$WORK/hit.json" --mix same --run-id "$run" -n 200 -c 1 --interval 0
echo "p50 $(ms "$WORK/hit.json" latency_us.p50) ms  p95 $(ms "$WORK/hit.json" latency_us.p95) ms  p99 $(ms "$WORK/hit.json" latency_us.p99) ms  ($(jget "$WORK/hit.json" hits.l1)/200 served from L1)"
echo "=== Provider Request (no cache) ==="
bench "$WORK/miss.json" --mix unique -n 10 -c 1 --interval 0
echo "p50 $(ms "$WORK/miss.json" latency_us.p50) ms  p95 $(ms "$WORK/miss.json" latency_us.p95) ms"
echo "gateway overhead (X-Edge-Overhead-Ms): p50 $(ms "$WORK/miss.json" overhead_us.p50) ms  p99 $(ms "$WORK/miss.json" overhead_us.p99) ms"
