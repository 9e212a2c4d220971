#!/usr/bin/env bash
# Gateway benchmark: pgbench through the pgentra gateway vs direct PostgreSQL vs PgBouncer vs a
# bare byte-splicing tokio proxy, side by side on one throwaway cluster, interleaved rounds,
# medians. Also RS256 and cached token validations per second.
#
#   bench/gateway.sh            # ROUNDS=3 DURATION=10 by default
#   ROUNDS=5 DURATION=20 bench/gateway.sh
#   TARGETS="splice gateway" TESTS=latency ROUNDS=6 bench/gateway.sh   # a focused A/B
#
# Everything listens on 127.0.0.1 only. Runs as root (PostgreSQL and PgBouncer drop to the
# `postgres` OS user) or as a user that can run initdb. Installs the Debian `pgbouncer` package
# when it is missing. Results: a markdown table on stdout and in $OUT (default
# target/bench/gateway.md).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-8}
SCALE=${SCALE:-5}
OUT=${OUT:-target/bench/gateway.md}
BASE_PORT=${BASE_PORT:-55430}
PG_PORT=$BASE_PORT; GW_PORT=$((BASE_PORT + 1)); PGB_PORT=$((BASE_PORT + 2)); SPLICE_PORT=$((BASE_PORT + 3))

. bench/lib.sh
ensure_pgbouncer
find_pg_bin

echo "== building release examples" >&2
cargo build --release -q -p pgentra-proxy --example bench_gateway --example splice_proxy --example validate_bench

setup_workdir pgentra-bench
start_postgres 300
start_pgbouncer 1000

echo "== bare splice proxy on :$SPLICE_PORT -> unix socket" >&2
target/release/examples/splice_proxy "127.0.0.1:$SPLICE_PORT" "$WORK/sock/.s.PGSQL.$PG_PORT" >"$WORK/splice.log" 2>&1 &
PIDS+=($!)

echo "== pgentra gateway on :$GW_PORT -> unix socket (trust)" >&2
target/release/examples/bench_gateway "$WORK/sock" "$PG_PORT" "127.0.0.1:$GW_PORT" bench_entra "$WORK/token" >"$WORK/gw.out" 2>"$WORK/gw.err" &
PIDS+=($!)
for _ in $(seq 1 100); do grep -q ready "$WORK/gw.out" 2>/dev/null && break; sleep 0.2; done
grep -q ready "$WORK/gw.out" || { cat "$WORK/gw.err" >&2; exit 1; }
psql_su -c "grant select on all tables in schema public to bench_entra"
TOKEN=$(cat "$WORK/token")

# target -> "port user password"
declare -A TARGET=(
  [direct]="$PG_PORT bench benchpw"
  [pgbouncer]="$PGB_PORT bench benchpw"
  [splice]="$SPLICE_PORT bench benchpw"
  [gateway]="$GW_PORT bench_entra $TOKEN"
)
read -r -a ORDER <<<"${TARGETS:-direct pgbouncer splice gateway}"
TESTS=${TESTS:-select latency connect}
has_test() { [[ " $TESTS " == *" $1 "* ]]; }

run_pgbench() { # target, extra args... -> prints the pgbench output
  local t=$1; shift
  read -r port user pass <<<"${TARGET[$t]}"
  PGPASSWORD=$pass PGSSLMODE=disable pgbench -n -h 127.0.0.1 -p "$port" -U "$user" -T "$DURATION" "$@" postgres 2>&1
}
RESULTS="$WORK/results.tsv"
: > "$RESULTS"
for r in $(seq 1 "$ROUNDS"); do
  # Rotate the order each round so no target always runs first (or right after another).
  rot=$(( (r - 1) % ${#ORDER[@]} ))
  order=("${ORDER[@]:$rot}" "${ORDER[@]:0:$rot}")
  for t in "${order[@]}"; do
    tps= lat= cps=
    if has_test select; then
      out=$(run_pgbench "$t" -S -c "$CLIENTS" -j 2)
      tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -1)
      echo -e "select_tps\t$t\t$tps" >> "$RESULTS"
    fi
    if has_test latency; then
      out=$(run_pgbench "$t" -S -c 1 -j 1)
      lat=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' <<<"$out" | head -1)
      echo -e "latency_ms\t$t\t$lat" >> "$RESULTS"
    fi
    if has_test connect; then
      out=$(run_pgbench "$t" -S -C -c "$CLIENTS" -j 2)
      cps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -1)
      echo -e "connect_tps\t$t\t$cps" >> "$RESULTS"
    fi
    echo "round $r $t: -S ${tps:-?} tps, 1-client ${lat:-?} ms, -C ${cps:-?} tps" >&2
  done
done
VALIDATION=$(target/release/examples/validate_bench 20000)

mkdir -p "$(dirname "$OUT")"
python3 - "$RESULTS" "$ROUNDS" "$DURATION" "$CLIENTS" "$VALIDATION" > "$OUT" <<'PY'
import statistics, sys
path, rounds, duration, clients, validation = sys.argv[1:6]
data = {}
for line in open(path):
    metric, target, value = line.rstrip("\n").split("\t")
    if value:
        data.setdefault((metric, target), []).append(float(value))
med = lambda m, t: statistics.median(data.get((m, t), [float("nan")]))
targets = [t for t in ["direct", "pgbouncer", "splice", "gateway"] if any(k[1] == t for k in data)]
base = targets[0]
d_tps, d_lat, d_cps = med("select_tps", base), med("latency_ms", base), med("connect_tps", base)
print(f"Rounds: {rounds} interleaved, {duration} s per run, medians. `-S` with {clients} clients / 2 threads;")
print("latency: `-S -c 1`; connects: `-S -C` (a new connection per transaction). Plaintext on loopback.")
print()
print(f"| target | `-S` tps | vs {base} | 1-client latency | vs {base} | `-C` tps | vs {base} |")
print("|---|---|---|---|---|---|---|")
for t in targets:
    tps, lat, cps = med("select_tps", t), med("latency_ms", t), med("connect_tps", t)
    print(f"| {t} | {tps:,.0f} | {tps / d_tps:.2f}× | {lat * 1000:.0f} µs | {(lat - d_lat) * 1000:+.0f} µs | {cps:,.0f} | {cps / d_cps:.2f}× |")
print()
g, b, s = med("select_tps", "gateway"), med("select_tps", "pgbouncer"), med("select_tps", "splice")
if g == g and b == b and s == s:
    print(f"Gateway `-S` vs PgBouncer: {g / b:.2f}×; vs bare splice: {g / s:.2f}×.")
print()
for line in validation.splitlines():
    print(f"    {line}")
print()
print("Raw runs (tps / ms):")
print()
for (m, t), v in sorted(data.items()):
    print(f"    {m:12} {t:10} " + " ".join(f"{x:.1f}" if m != "latency_ms" else f"{x:.3f}" for x in v))
PY
cat "$OUT"
