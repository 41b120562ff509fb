#!/usr/bin/env bash
# test_l2_cache.sh [--local]: really measures L2 hits. 100 distinct prompts
# are answered through one gateway instance (filling L1 and Redis); then a
# second, fresh instance on the same Redis is asked the same prompts: its
# L1 is empty, so each answer must come from L2 (verified by X-Cache-Layer:
# L2 on every measured response). Target: L2 hit <= 2 ms.
#
# Without --local, GATEWAY_URL fills the cache and GATEWAY_URL_2 (a second
# instance sharing its Redis) is measured.
source "$(dirname "$0")/lib.sh"
parse_common_flags "$@"
build
if [ "$LOCAL" = 1 ]; then
  local_stack
  start_gateway second REDIS_URL="$REDIS_URL"
  SECOND="$URL_second"
else
  SECOND="${GATEWAY_URL_2:?set GATEWAY_URL_2 to a second instance on the same Redis}"
fi
run="l2-$RANDOM$RANDOM"
bench "$WORK/fill.json" --mix unique --run-id "$run" -n 100 -c 16 --interval 0
sleep 0.5 # L2 writes are asynchronous
GATEWAY_URL="$SECOND" bench "$WORK/l2.json" --mix unique --run-id "$run" -n 100 -c 1 --interval 0
l2=$(jget "$WORK/l2.json" hits.l2)
echo "Verified L2 hits:            $l2/100 (X-Cache-Layer: L2)"
echo "L2 hit latency:              p50 $(ms "$WORK/l2.json" latency_us.p50) ms  p99 $(ms "$WORK/l2.json" latency_us.p99) ms  mean $(ms "$WORK/l2.json" latency_us.mean) ms"
[ "$l2" -ge 95 ] || { echo "FAIL: fewer than 95 of 100 answers came from L2" >&2; exit 1; }
if lt "$(ms "$WORK/l2.json" latency_us.p50)" 2; then echo "PASS: L2 hit <= 2 ms"; else echo "FAIL: L2 hit > 2 ms"; exit 1; fi
