#!/usr/bin/env bash
# Resident memory of a 3-node cluster after snapshots of a large partition: starts three
# `strata server` processes on loopback with one partition and frequent snapshots, writes
# about 550 MB through the leader's Redis port (`redis-benchmark -t set -r 1000000 -d 1000
# -n 800000 -c 64 -P 8`), and prints each node's RSS, how many snapshots it built or installed,
# and its snapshot files.
#
#   scripts/bench-snapshot-memory.sh                      # the release build of this checkout
#   scripts/bench-snapshot-memory.sh --strata PATH        # another binary, to compare
#
# Needs redis-benchmark and redis-cli (Debian: redis-tools), curl and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

STRATA=""
while [ $# -gt 0 ]; do
  case "$1" in
    --strata) STRATA="$2"; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
if [ -z "$STRATA" ]; then
  cargo build --release -q -p strata-cli
  STRATA="${CARGO_TARGET_DIR:-target}/release/strata"
fi
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

PEERS="1=127.0.0.1:29401,2=127.0.0.1:29402,3=127.0.0.1:29403"
for i in 1 2 3; do
  "$STRATA" server --data "$WORK/s$i" --node-id "$i" --peers "$PEERS" --partitions 1 \
    --snapshot-after-logs 500 --grpc "127.0.0.1:2940$i" --redis "127.0.0.1:2938$i" \
    --http "127.0.0.1:2948$i" >"$WORK/s$i.out" 2>"$WORK/s$i.err" &
  PIDS+=($!)
done
# The partition's leader, once there is one (bounded: 60 tries, 0.5 s apart).
leader=""
for _ in $(seq 60); do
  leader=$(curl -s http://127.0.0.1:29481/status | python3 -c '
import json, sys
try:
    print(json.load(sys.stdin)["cluster"]["partitions"][0]["leader"] or "")
except Exception:
    print("")' 2>/dev/null || true)
  [ -n "$leader" ] && break
  sleep 0.5
done
[ -n "$leader" ] || { echo "no leader elected; logs in $WORK" >&2; exit 1; }
timeout 600 redis-benchmark -p "2938$leader" -t set -r 1000000 -d 1000 -n 800000 -c 64 -P 8 -q \
  2>/dev/null | tr '\r' '\n' | grep -v '^$' | tail -1
sleep 3
for i in 1 2 3; do
  pid=${PIDS[$((i - 1))]}
  rss=$(awk '/VmRSS/ {printf "%d", $2 / 1024}' "/proc/$pid/status")
  built=$(grep -c 'built snapshot' "$WORK/s$i.err" || true)
  installed=$(grep -c 'installed snapshot' "$WORK/s$i.err" || true)
  files=$(ls -s --block-size=M "$WORK/s$i/app/raft-snapshots" 2>/dev/null | tail -n +2 | tr '\n' ' ')
  echo "node $i: RSS ${rss} MiB, snapshots built $built, installed $installed, keys $(redis-cli -p "2938$i" dbsize), files: ${files:-none}"
done
