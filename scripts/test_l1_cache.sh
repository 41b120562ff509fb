#!/usr/bin/env bash
# test_l1_cache.sh [--local]: the guide's L1 test. One request misses (the
# provider's latency), the next 100 identical requests are L1 hits (target
# < 1 ms each). Every measured answer must carry X-Cache-Layer: L1.
source "$(dirname "$0")/lib.sh"
parse_common_flags "$@"
build
[ "$LOCAL" = 1 ] && local_stack
run="l1-$RANDOM$RANDOM"
bench "$WORK/miss.json" --mix same --run-id "$run" -n 1 -c 1 --interval 0
bench "$WORK/hit.json" --mix same --run-id "$run" -n 100 -c 1 --interval 0
echo "First request (miss):        $(ms "$WORK/miss.json" latency_us.p50) ms"
echo "L1 hits (100 requests):      p50 $(ms "$WORK/hit.json" latency_us.p50) ms  p99 $(ms "$WORK/hit.json" latency_us.p99) ms  mean $(ms "$WORK/hit.json" latency_us.mean) ms"
l1=$(jget "$WORK/hit.json" hits.l1)
echo "Answers served from L1:      $l1/100"
[ "$l1" = 100 ] || { echo "FAIL: not every repeat was an L1 hit" >&2; exit 1; }
if lt "$(ms "$WORK/hit.json" latency_us.p50)" 1; then echo "PASS: L1 hit < 1 ms"; else echo "FAIL: L1 hit >= 1 ms"; exit 1; fi
