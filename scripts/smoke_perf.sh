#!/usr/bin/env bash
# smoke_perf.sh: the CI performance gate (well under 60 s). Starts its own
# simulated provider (50 ms), redis-server and two gateway instances, and
# checks the guide's targets with margins machine noise cannot trip.
exec "$(dirname "$0")/check_performance.sh" --local --smoke
