#!/usr/bin/env bash
# End-to-end throughput through the tansu broker, against the consume-only ceiling measured in the
# same run:   benchmarks/e2e.sh [EVENTS] [USERS]     (defaults: 2 000 000 events, 200 000 users)
#
# Produces the reference orders (4 partitions, zipf 1.1, 7 days, up to 2 s out of order), reads the
# topic once with Tessera's consumer doing nothing (the ceiling), then runs
# `tessera run --until-end` with Redis and the offline log on, and prints both rates.
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-2000000}
users=${2:-200000}
state=$(mktemp -d /tmp/tessera-e2e.XXXXXX)
trap 'scripts/services.sh stop "$state"' EXIT
scripts/services.sh start-redis "$state"
scripts/services.sh start-tansu "$state"
export LD_LIBRARY_PATH="$state/librdkafka"
brokers=127.0.0.1:$(cat "$state/tansu.port")
redis=redis://127.0.0.1:$(cat "$state/redis.port")
swift build -c release --product tessera >/dev/null
(cd benchmarks && swift build -c release --product kafka-ceiling >/dev/null)
.build/release/tessera produce --brokers "$brokers" --topic orders --events "$events" --users "$users" \
  --skew 1.1 --span 7d --disorder 2s --partitions 4
benchmarks/.build/release/kafka-ceiling "$brokers" orders | tee "$state/ceiling.txt"
start=$(date +%s.%N)
/usr/bin/time -v .build/release/tessera run --topology topologies/growth.yaml --brokers "$brokers" --redis "$redis" \
  --offline-dir "$state/offline" --until-end --kafka-config session.timeout.ms=6000 --stats-seconds 5 \
  2> "$state/run.log"
end=$(date +%s.%N)
grep -E '"message":"stopped"|stopped' "$state/run.log" | tail -1
grep -E "Maximum resident|User time|System time" "$state/run.log" | sed 's/^\s*//'
python3 - "$events" "$start" "$end" "$state/ceiling.txt" <<'PY'
import re, sys
events, start, end = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
ceiling = int(re.search(r"= (\d+) records/s", open(sys.argv[4]).read()).group(1))
rate = events / (end - start)
print(f"end to end: {events} events in {end - start:.1f} s wall (including the group join) = {rate:,.0f} events/s; "
      f"ceiling {ceiling:,} records/s; ratio {rate / ceiling:.2f}")
PY
