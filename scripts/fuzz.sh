#!/usr/bin/env bash
# Fuzzes the readers of untrusted input with libFuzzer (AddressSanitizer on):
#
#   fuzz-json       Kafka payload bytes → JSONEventDecoder (growth/orders, risk/payments and
#                   decoders covering every type and time unit): a row or a rejection, never a crash
#   fuzz-avro       Kafka payload bytes in the schema registry's wire format → AvroEventDecoder
#                   (writer schemas with every Avro type): a row or a rejection, never a crash
#   fuzz-protobuf   the same for ProtobufEventDecoder (every scalar encoding, enums, Timestamp,
#                   wrappers, nested and repeated fields)
#   fuzz-topology   YAML text → TopologyLoader: a model or errors located in the file
#
#   scripts/fuzz.sh [SECONDS]    SECONDS per target (default 60)
#
# Exits non-zero if any target reports a crash, a failed property, a hang (an input taking
# longer than FUZZ_TIMEOUT seconds, default 10), a leak or running out of memory. Builds the
# package in fuzz/ (release, instrumented) into fuzz/.build-fuzz, which git ignores; the corpus
# grows there across runs (fuzz/.build-fuzz/corpus/TARGET), seeded each run from
# topologies/*.yaml and the generated seeds of each target (reference orders, one event per
# decoder). Crashing inputs are kept in fuzz/.build-fuzz/artifacts/TARGET/; replay one with
#   fuzz/.build-fuzz/release/fuzz-json fuzz/.build-fuzz/artifacts/fuzz-json/crash-…
set -euo pipefail

seconds=${1:-60}
[[ "$seconds" =~ ^[0-9]+$ ]] && [ "$seconds" -gt 0 ] || { sed -n '2,20p' "$0"; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
scratch=$root/fuzz/.build-fuzz
timeout=${FUZZ_TIMEOUT:-10}
swift=${SWIFT:-swift}

# `--sanitize fuzzer` makes SwiftPM compile the executables as libraries, libFuzzer supplying
# `main`, and instruments C code (libyaml). Swift modules get their sanitizers from one
# `-sanitize=fuzzer,address`: given `--sanitize fuzzer --sanitize address`, SwiftPM passes swiftc
# two `-sanitize=` flags of which only the last takes effect, and the Swift code goes uninstrumented.
build() {
  "$swift" build --package-path "$root/fuzz" --scratch-path "$scratch" -c release \
    --sanitize fuzzer -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=address "$@"
}
started=$(date +%s)
mkdir -p "$scratch"
# Sources of the main package may change under a build (someone editing): one retry.
if ! build > "$scratch/build.log" 2>&1; then
  echo "fuzz build failed (see $scratch/build.log); retrying once" >&2
  sleep 5
  build > "$scratch/build.log" 2>&1 || { grep -v '^ *|' "$scratch/build.log" | tail -40 >&2; exit 1; }
fi
echo "fuzz build: $(( $(date +%s) - started )) s" >&2
bin=$("$swift" build --package-path "$root/fuzz" --scratch-path "$scratch" -c release --show-bin-path)

seeds=$(mktemp -d "${TMPDIR:-/tmp}/tessera-fuzz.XXXXXX")
trap 'rm -rf "$seeds"' EXIT
failed=()
for target in fuzz-json fuzz-avro fuzz-protobuf fuzz-topology; do
  corpus=$scratch/corpus/$target
  artifacts=$scratch/artifacts/$target
  mkdir -p "$corpus" "$artifacts"
  "$bin/$target" --write-seeds "$seeds/$target" "$seeds/$target.dict"
  if [ "$target" = fuzz-topology ]; then cp "$root"/topologies/*.yaml "$seeds/$target/"; fi
  log=$scratch/$target.log
  echo "$target: $seconds s (log: $log)" >&2
  # The Swift runtime's own crash handler would race libFuzzer's (and trip ASan): libFuzzer
  # reports crashes. Leaks are reported by LeakSanitizer at the end of each input.
  if SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
      "$bin/$target" "$corpus" "$seeds/$target" -dict="$seeds/$target.dict" \
      -max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb=2048 -max_len=8192 \
      -artifact_prefix="$artifacts/" -print_final_stats=1 > "$log" 2>&1; then
    grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" | tr '\n' ' ' >&2 || true
    echo >&2
  else
    failed+=("$target")
    echo "$target FAILED; the end of its log:" >&2
    grep -v '^    #[0-9]' "$log" | tail -40 >&2
    ls -t "$artifacts" | head -3 | sed "s|^|  input: $artifacts/|" >&2
  fi
done

echo "fuzzing took $(( $(date +%s) - started )) s in all" >&2
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found problems in: ${failed[*]}" >&2
  exit 1
fi
