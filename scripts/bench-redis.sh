#!/usr/bin/env bash
# Runs `redis-benchmark -t set,get -n 200000 -c 50 -P 16` against `strata server`, redis-server
# with `--appendonly yes --appendfsync always`, and redis-server with its defaults (no fsync),
# one after the other on loopback with fresh directories, for a number of rounds, and prints one
# table of requests per second with Strata's ratios to durable redis. Compare only within a
# round: the disk's sync latency swings by an order of magnitude from minute to minute.
#
#   scripts/bench-redis.sh                 # 4 rounds
#   scripts/bench-redis.sh --rounds 1      # a quick run
#
# Needs redis-server, redis-benchmark and redis-cli (Debian: redis-server, redis-tools), python3.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=4
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
for tool in redis-server redis-benchmark redis-cli; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "$tool not found: apt-get install -y redis-server redis-tools" >&2
    exit 1
  fi
done

echo "== building (release)" >&2
cargo build --release -q -p strata-cli
STRATA="${CARGO_TARGET_DIR:-target}/release/strata"
WORK="$(mktemp -d)"
PID=""
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=26390
# Waits (bounded: 10 s) until the server on $PORT answers PING.
wait_ping() {
  for _ in $(seq 100); do
    [ "$(redis-cli -p "$PORT" ping 2>/dev/null)" = PONG ] && return 0
    sleep 0.1
  done
  echo "nothing answers on port $PORT" >&2
  exit 1
}
# Prints "SET GET" requests per second of one redis-benchmark run.
bench() {
  timeout 300 redis-benchmark -p "$PORT" -t set,get -n 200000 -c 50 -P 16 --csv 2>/dev/null \
    | python3 -c '
import csv, sys
rps = {row[0]: float(row[1]) for row in csv.reader(sys.stdin) if len(row) > 1 and row[0] in ("SET", "GET")}
print("%.0f %.0f" % (rps.get("SET", 0), rps.get("GET", 0)))'
}
stop() {
  kill "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  PID=""
}

RESULTS="$WORK/results"
: >"$RESULTS"
for round in $(seq "$ROUNDS"); do
  echo "== round $round" >&2
  rm -rf "$WORK/strata" "$WORK/always" "$WORK/default"
  mkdir -p "$WORK/always" "$WORK/default"
  "$STRATA" server --data "$WORK/strata" --grpc 127.0.0.1:0 --http 127.0.0.1:0 \
    --redis "127.0.0.1:$PORT" >/dev/null 2>"$WORK/strata.err" &
  PID=$!; wait_ping; strata=$(bench); stop
  redis-server --port "$PORT" --bind 127.0.0.1 --dir "$WORK/always" --save '' \
    --appendonly yes --appendfsync always >/dev/null &
  PID=$!; wait_ping; always=$(bench); stop
  redis-server --port "$PORT" --bind 127.0.0.1 --dir "$WORK/default" --save '' >/dev/null &
  PID=$!; wait_ping; default=$(bench); stop
  echo "$round $strata $always $default" >>"$RESULTS"
done

python3 - "$RESULTS" <<'PY'
import sys
print(f"{'round':>5}{'strata SET':>12}{'GET':>10}{'always SET':>12}{'GET':>10}"
      f"{'default SET':>13}{'GET':>10}{'SET ratio':>11}{'GET ratio':>11}")
for line in open(sys.argv[1]):
    r, ss, sg, a_s, a_g, d_s, d_g = (float(x) for x in line.split())
    print(f"{r:>5.0f}{ss:>12.0f}{sg:>10.0f}{a_s:>12.0f}{a_g:>10.0f}{d_s:>13.0f}{d_g:>10.0f}"
          f"{ss / a_s:>10.2f}x{sg / a_g:>10.2f}x")
PY
