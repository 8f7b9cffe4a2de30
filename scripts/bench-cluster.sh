#!/usr/bin/env bash
# Starts a 3-node Strata cluster and a 3-member etcd cluster side by side on loopback, runs the
# same `strata bench` workloads against each (writes from 1 and from 64 clients, then
# linearizable reads from 64 clients), alternating between the two systems, and prints one table
# with Strata's ratio to etcd. Compare figures only within one run: both clusters share this
# machine's cores and disk, whose sync latency swings by an order of magnitude.
#
#   scripts/bench-cluster.sh                     # the BENCHMARKS.md run
#   scripts/bench-cluster.sh --duration 3        # a quick smoke run
#
# Beside each figure: the three servers' CPU time (user + system, from /proc) per operation,
# which shows how much of the machine each system spends on a write or a read, the benchmark
# client's own CPU time per operation (both systems' clients share one gRPC transport), and the
# share of the machine's cores left idle during the phase (from /proc/stat): a run with cores
# idle is bound by its latency, not by the CPU.
#
# Options: --duration SECS per phase (default 15), --partitions P (Strata, default 8),
# --clients N (default 64), --conns N (the clients of both systems share N connections, as
# etcd's `benchmark --conns`; default: one connection per client), --thread-clients (the clients
# of both systems run as one OS thread each, blocking on every call, instead of as tasks of one
# runtime, `strata bench --async-clients`, as etcd's benchmark runs goroutines), --out DIR (default
# target/bench-cluster/<time>). Needs `etcd` (Debian: etcd-server) and python3. Every client
# writes 16-byte keys and 100-byte values over a keyspace of 100,000 keys; every write is
# acknowledged after a majority has synced it; reads are linearizable on both systems
# (Strata's default; etcd's `serializable = false`). Connections are spread round-robin over
# the three members of each cluster; Strata's client then sends each request to its
# partition's leader (Admin.Routes), while etcd's members forward proposals to their leader
# over Raft and serve linearizable reads themselves (ReadIndex).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=15
PARTITIONS=8
CLIENTS=64
CONNS=""
ASYNC=1
OUT="target/bench-cluster/$(date +%Y%m%d-%H%M%S)"
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --partitions) PARTITIONS="$2"; shift 2 ;;
    --clients) CLIENTS="$2"; shift 2 ;;
    --conns) CONNS="$2"; shift 2 ;;
    --thread-clients) ASYNC=""; shift ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

if ! command -v etcd >/dev/null 2>&1; then
  echo "etcd not found: apt-get install -y etcd-server" >&2
  exit 1
fi
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"

echo "== building (release)" >&2
cargo build --release -q -p strata-cli
STRATA="${CARGO_TARGET_DIR:-target}/release/strata"

STRATA_PIDS=()
ETCD_PIDS=()
cleanup() {
  for pid in "${STRATA_PIDS[@]}" "${ETCD_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# Strata: gRPC 27401-27403, RESP 27381-27383, HTTP 27481-27483.
PEERS="1=127.0.0.1:27401,2=127.0.0.1:27402,3=127.0.0.1:27403"
for i in 1 2 3; do
  "$STRATA" server --data "$OUT/strata$i" --node-id "$i" --peers "$PEERS" \
    --partitions "$PARTITIONS" --grpc "127.0.0.1:2740$i" --redis "127.0.0.1:2738$i" \
    --http "127.0.0.1:2748$i" >"$OUT/strata$i.out" 2>"$OUT/strata$i.err" &
  STRATA_PIDS+=($!)
done
# etcd: clients 27371-27373, peers 27391-27393.
INITIAL="e1=http://127.0.0.1:27391,e2=http://127.0.0.1:27392,e3=http://127.0.0.1:27393"
for i in 1 2 3; do
  etcd --name "e$i" --data-dir "$OUT/etcd$i" \
    --listen-client-urls "http://127.0.0.1:2737$i" --advertise-client-urls "http://127.0.0.1:2737$i" \
    --listen-peer-urls "http://127.0.0.1:2739$i" --initial-advertise-peer-urls "http://127.0.0.1:2739$i" \
    --initial-cluster "$INITIAL" --initial-cluster-state new \
    --initial-cluster-token strata-bench-cluster >"$OUT/etcd$i.log" 2>&1 &
  ETCD_PIDS+=($!)
done

STRATA_TARGET="grpc://127.0.0.1:27401,127.0.0.1:27402,127.0.0.1:27403"
ETCD_TARGET="etcd://127.0.0.1:27371,127.0.0.1:27372,127.0.0.1:27373"
COMMON=(--key-size 16 --value-size 100 --num 100000 --duration "$DURATION" --json)
if [ -n "$CONNS" ]; then
  COMMON+=(--conns "$CONNS")
fi
if [ -n "$ASYNC" ]; then
  COMMON+=(--async-clients)
fi

# Both clusters are ready when a single write goes through (bounded: 60 tries, 1 s apart).
wait_ready() {
  local target="$1"
  for _ in $(seq 60); do
    if "$STRATA" bench --target "$target" --benchmarks fillrandom --num 1 --threads 1 \
      --json >/dev/null 2>&1; then
      return 0
    fi
    sleep 1
  done
  echo "$target did not become ready; logs in $OUT" >&2
  exit 1
}
echo "== waiting for both clusters" >&2
wait_ready "$STRATA_TARGET"
wait_ready "$ETCD_TARGET"

# CPU seconds (user + system) the given processes have used so far.
cpu_seconds() {
  local ticks=0 pid
  for pid in "$@"; do
    ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$ticks $(getconf CLK_TCK)" | awk '{printf "%.2f", $1 / $2}'
}

# The machine's idle and total CPU time so far, in clock ticks (idle includes I/O wait).
machine_ticks() {
  awk '/^cpu / {print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat
}

run() {
  local system="$1" target="$2" threads="$3" workload="$4" before after
  local -n pids="${system^^}_PIDS"
  echo "== $system: $workload, $threads clients" >&2
  before=$(cpu_seconds "${pids[@]}")
  read -r idle_before total_before < <(machine_ticks)
  # The client's CPU time is read from its rusage once it has exited.
  python3 -c '
import resource, subprocess, sys
with open(sys.argv[1], "w") as out, open(sys.argv[2], "a") as err:
    subprocess.run(sys.argv[3:], stdout=out, stderr=err, check=True)
u = resource.getrusage(resource.RUSAGE_CHILDREN)
print(u.ru_utime + u.ru_stime)
' "$OUT/phase.jsonl" "$OUT/bench.err" "$STRATA" bench --target "$target" --benchmarks "$workload" \
    --threads "$threads" "${COMMON[@]}" >"$OUT/client_cpu"
  after=$(cpu_seconds "${pids[@]}")
  read -r idle_after total_after < <(machine_ticks)
  # The servers' CPU time per operation, all three members together, and the idle share.
  python3 -c '
import json, sys
for line in open(sys.argv[2]):
    r = json.loads(line)
    r["system"] = sys.argv[1]
    r["server_cpu_us_per_op"] = (float(sys.argv[4]) - float(sys.argv[3])) * 1e6 / max(r["ops"], 1)
    r["machine_idle_pct"] = 100 * float(sys.argv[5]) / max(float(sys.argv[6]), 1)
    r["client_cpu_us_per_op"] = float(sys.argv[7]) * 1e6 / max(r["ops"], 1)
    print(json.dumps(r))
' "$system" "$OUT/phase.jsonl" "$before" "$after" "$((idle_after - idle_before))" \
    "$((total_after - total_before))" "$(cat "$OUT/client_cpu")" >>"$RESULTS"
}

# Alternate the systems phase by phase so that a slow spell of the disk hits both.
for phase in "1 fillrandom" "$CLIENTS fillrandom" "$CLIENTS readrandom"; do
  set -- $phase
  run strata "$STRATA_TARGET" "$1" "$2"
  run etcd "$ETCD_TARGET" "$1" "$2"
done

echo "== results in $RESULTS" >&2
python3 - "$RESULTS" "$PARTITIONS" "$DURATION" "$([ -n "$ASYNC" ] && echo tasks || echo threads)" "${CONNS:-one per client}" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"3 nodes each, loopback; Strata {sys.argv[2]} partitions; {sys.argv[3]} s per phase; "
      f"clients as {sys.argv[4]}, connections: {sys.argv[5]}; "
      "16-byte keys, 100-byte values; cpu us: the three servers' CPU time per operation; "
      "client us: the benchmark client's; idle: the machine's cores left idle")
head = (f"{'workload':<12}{'clients':>8}{'strata ops/s':>14}{'p50 ms':>8}{'p99 ms':>8}{'cpu us':>8}"
        f"{'client us':>10}{'idle':>6}{'etcd ops/s':>12}{'p50 ms':>8}{'p99 ms':>8}{'cpu us':>8}"
        f"{'client us':>10}{'idle':>6}{'ratio':>8}")
print(head)
print("-" * len(head))
def fig(system, workload, threads):
    for r in rows:
        if (r["system"], r["workload"], r["threads"]) == (system, workload, threads):
            return r
    return None
seen = []
for r in rows:
    key = (r["workload"], r["threads"])
    if key in seen:
        continue
    seen.append(key)
    s, e = fig("strata", *key), fig("etcd", *key)
    cells = []
    for x, width in ((s, 14), (e, 12)):
        if x:
            cells.append(f"{x['ops_per_sec']:>{width}.0f}"
                         f"{x['p50_us'] / 1000:>8.1f}{x['p99_us'] / 1000:>8.1f}"
                         f"{x['server_cpu_us_per_op']:>8.0f}"
                         f"{x['client_cpu_us_per_op']:>10.0f}"
                         f"{x['machine_idle_pct']:>5.0f}%")
        else:
            cells.append(f"{'-':>{width}}{'-':>8}{'-':>8}{'-':>8}{'-':>10}{'-':>6}")
    ratio = f"{s['ops_per_sec'] / e['ops_per_sec']:.2f}x" if s and e else "-"
    print(f"{key[0]:<12}{key[1]:>8}{cells[0]}{cells[1]}{ratio:>8}")
PY
