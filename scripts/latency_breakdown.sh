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
bench "$WORK/hit.json" --mix same -n 200 -c 1 --interval 0
echo "p50 $(ms "$WORK/hit.json" latency_us.p50) ms  p95 $(ms "$WORK/hit.json" latency_us.p95) ms  p99 $(ms "$WORK/hit.json" latency_us.p99) ms"
echo "=== Provider Request (no cache) ==="
bench "$WORK/miss.json" --mix unique -n 10 -c 1 --interval 0
echo "p50 $(ms "$WORK/miss.json" latency_us.p50) ms  p95 $(ms "$WORK/miss.json" latency_us.p95) ms"
echo "gateway overhead (X-Edge-Overhead-Ms): p50 $(ms "$WORK/miss.json" overhead_us.p50) ms  p99 $(ms "$WORK/miss.json" overhead_us.p99) ms"
