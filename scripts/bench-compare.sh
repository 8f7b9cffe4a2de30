#!/usr/bin/env bash
# Runs RocksDB's db_bench, `strata bench` and (when it builds) fjall through `strata-bench
# --engine fjall` one after another on this machine with the same parameters, and prints one
# table of their figures with Strata's ratio to the better reference. Compare figures only within
# one run: the disk's sync latency on these machines swings by an order of magnitude.
#
#   scripts/bench-compare.sh                  # the BENCHMARKS.md run: 1,000,000 keys
#   scripts/bench-compare.sh --num 20000      # a quick smoke run
#
# Options: --num N (keys, default 1000000), --cache-size BYTES (block cache for every engine,
# default 8388608, db_bench's default), --sync-threads N (default 8), --out DIR (default
# target/bench-compare/<time>), --no-fjall. Needs `db_bench` (Debian: rocksdb-tools) and
# python3. Keys are 16 bytes, values 100, memtable 64 MiB, bloom 10 bits/key, no compression.
set -euo pipefail
cd "$(dirname "$0")/.."

NUM=1000000
CACHE=8388608
SYNC_THREADS=8
OUT="target/bench-compare/$(date +%Y%m%d-%H%M%S)"
FJALL=1
while [ $# -gt 0 ]; do
  case "$1" in
    --num) NUM="$2"; shift 2 ;;
    --cache-size) CACHE="$2"; shift 2 ;;
    --sync-threads) SYNC_THREADS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --no-fjall) FJALL=0; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

if ! command -v db_bench >/dev/null 2>&1; then
  echo "db_bench not found: apt-get install -y rocksdb-tools" >&2
  exit 1
fi
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"

COMMON_DB_BENCH=(--num="$NUM" --key_size=16 --value_size=100 --write_buffer_size=67108864
  --bloom_bits=10 --compression_type=none --cache_size="$CACHE" --histogram=1 --seed=301)
COMMON_STRATA=(--num "$NUM" --key-size 16 --value-size 100 --write-buffer-size 67108864
  --bloom-bits 10 --compression none --cache-size "$CACHE" --json)

echo "== building (release)" >&2
cargo build --release -q -p strata-cli
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
STRATA="$TARGET_DIR/release/strata"
FJALL_BIN=""
if [ "$FJALL" = 1 ]; then
  if cargo build --release -q -p strata-bench --features fjall --bin strata-bench; then
    FJALL_BIN="$TARGET_DIR/release/strata-bench"
  else
    echo "fjall backend did not build; skipping it" >&2
  fi
fi

# db_bench prints "name : x micros/op N ops/sec ...; M MB/s" and, with --histogram, a
# "Percentiles: P50: .. P75: .. P99: .. P99.9: .." line; turn both into our JSON shape.
db_bench_json() {
  local threads="$1"
  python3 -c '
import json, re, sys
threads = int(sys.argv[1])
cur = None
for line in sys.stdin:
    m = re.match(r"^(\w+)\s+:\s+([\d.]+) micros/op (\d+) ops/sec ([\d.]+) seconds (\d+) operations;\s*(?:([\d.]+) MB/s)?", line)
    if m:
        if cur: print(json.dumps(cur))
        cur = {"workload": m.group(1), "engine": "rocksdb", "threads": threads,
               "ops": int(m.group(5)), "ops_per_sec": float(m.group(3)),
               "mb_per_sec": float(m.group(6) or 0), "seconds": float(m.group(4))}
        continue
    p = re.match(r"^Percentiles: P50: ([\d.]+) P75: ([\d.]+) P99: ([\d.]+) P99.9: ([\d.]+)", line)
    if p and cur:
        cur.update(p50_us=float(p.group(1)), p99_us=float(p.group(3)), p999_us=float(p.group(4)))
if cur: print(json.dumps(cur))
' "$threads"
}

# Writes back the dirty pages the previous run left, so that their writeback does not land in
# the next engine's timing (whichever engine runs after a write-heavy one would pay for it).
settle() {
  sync
}

run_db_bench() {
  local threads="$1"; shift
  echo "== db_bench $* --threads=$threads" >&2
  rm -rf "$OUT/rocksdb"
  settle
  db_bench "${COMMON_DB_BENCH[@]}" --db="$OUT/rocksdb" --threads="$threads" "$@" 2>>"$OUT/db_bench.err" \
    | tee -a "$OUT/db_bench.log" | db_bench_json "$threads" >>"$RESULTS"
}

run_strata() {
  local bin="$1" engine="$2"; shift 2
  echo "== $engine: $*" >&2
  settle
  local cmd=("$bin")
  [ "$bin" = "$STRATA" ] && cmd+=(bench)
  "${cmd[@]}" "${COMMON_STRATA[@]}" --engine "$engine" --data "$OUT/data-$engine" "$@" \
    >>"$RESULTS"
}

# The engines whose binary exists, in the order they run.
ENGINES=(strata)
[ -n "$FJALL_BIN" ] && ENGINES+=(fjall)
engine_bin() {
  if [ "$1" = fjall ]; then echo "$FJALL_BIN"; else echo "$STRATA"; fi
}

run_db_bench 1 --benchmarks=fillrandom,readrandom,readmissing
for engine in "${ENGINES[@]}"; do
  run_strata "$(engine_bin "$engine")" "$engine" --benchmarks fillrandom,readrandom,readmissing,coldread
done

# The synced phases come last and back to back, each engine's right after the others', since
# the disk's sync latency drifts from minute to minute: the ratios between them are only fair
# when they ran within seconds of each other.
# RocksDB 7.8.3's db_bench fillsync does --num synced writes per thread, not num/1000 as LevelDB's
# did (and as `strata bench` does): --writes brings it to the same count over the same keys.
SYNC_WRITES=$(( NUM / 1000 > 0 ? NUM / 1000 : 1 ))
run_db_bench "$SYNC_THREADS" --benchmarks=fillsync --writes="$SYNC_WRITES"
for engine in "${ENGINES[@]}"; do
  run_strata "$(engine_bin "$engine")" "$engine" --benchmarks fillsync --threads "$SYNC_THREADS"
done
run_db_bench 1 --benchmarks=fillsync --writes="$SYNC_WRITES"
for engine in "${ENGINES[@]}"; do
  run_strata "$(engine_bin "$engine")" "$engine" --benchmarks fillsync,rawsync --threads 1
done

echo "== results in $RESULTS" >&2
python3 - "$RESULTS" "$NUM" "$CACHE" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"keys {sys.argv[2]}, 16-byte keys, 100-byte values, memtable 64 MiB, bloom 10, "
      f"no compression, cache {sys.argv[3]} bytes")
def fig(engine, workload, threads=None):
    for r in rows:
        if r["engine"] == engine and r["workload"] == workload and (
                threads is None or r["threads"] == threads):
            return r
    return None
engines = ["strata", "fjall", "rocksdb"]
head = f"{'workload':<16}{'thr':>4}" + "".join(f"{e + ' ops/s':>16}" for e in engines) \
    + f"{'strata p99 us':>15}{'vs best ref':>13}"
print(head)
print("-" * len(head))
seen = []
for r in rows:
    key = (r["workload"], r["threads"])
    if key in seen or r["engine"] == "disk":
        continue
    seen.append(key)
    figs = {e: fig(e, *key) for e in engines}
    cells = "".join(f"{figs[e]['ops_per_sec']:>16.0f}" if figs[e] else f"{'-':>16}" for e in engines)
    refs = [figs[e]["ops_per_sec"] for e in ("fjall", "rocksdb") if figs[e]]
    s = figs["strata"]
    ratio = f"{s['ops_per_sec'] / max(refs):>12.2f}x" if s and refs else f"{'-':>13}"
    p99 = f"{s['p99_us']:>15.1f}" if s else f"{'-':>15}"
    print(f"{key[0]:<16}{key[1]:>4}{cells}{p99}{ratio}")
raw = fig("disk", "rawsync")
one = fig("strata", "fillsync", 1)
many = [r for r in rows if r["engine"] == "strata" and r["workload"] == "fillsync" and r["threads"] > 1]
if raw:
    print(f"\nraw fdatasync (100-byte appends into reserved space): {raw['ops_per_sec']:.0f}/s, p50 {raw['p50_us']:.0f} us")
    if one:
        print(f"strata 1 synced writer: {one['ops_per_sec']:.0f}/s = "
              f"{100 * one['ops_per_sec'] / raw['ops_per_sec']:.0f}% of raw (target >= 80%)")
if one and many:
    m = many[0]
    print(f"strata {m['threads']} synced writers: {m['ops_per_sec']:.0f}/s = "
          f"{m['ops_per_sec'] / one['ops_per_sec']:.1f}x one writer (target >= 4x)")
    rocks = fig("rocksdb", "fillsync", m["threads"])
    if rocks:
        print(f"  vs db_bench fillsync {m['threads']} threads: "
              f"{m['ops_per_sec'] / rocks['ops_per_sec']:.2f}x (target >= 1.5x)")
cold = fig("strata", "coldread")
if cold:
    print(f"strata cold GET (files evicted): p50 {cold['p50_us']:.0f} us, "
          f"p99 {cold['p99_us']:.0f} us (target p99 well under 1000 us)")
fr = fig("strata", "fillrandom")
if fr and "rss_bytes" in fr:
    print(f"strata RSS after fillrandom: {fr['rss_bytes'] / 2**20:.1f} MiB "
          f"(peak {fr['peak_rss_bytes'] / 2**20:.1f} MiB)")
PY
