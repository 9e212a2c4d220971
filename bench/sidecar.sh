#!/usr/bin/env bash
# Sidecar benchmark: pgbench with no password through the pgentra sidecar (→ PostgreSQL, and
# → the pgentra gateway → PostgreSQL) vs direct PostgreSQL (SCRAM), PgBouncer (SCRAM) and a bare
# byte-splicing tokio proxy, side by side on one throwaway cluster, interleaved rounds, medians.
# Then memory per idle proxied connection: RSS of the proxy process before and after opening
# 1000 idle connections through it.
#
#   bench/sidecar.sh            # ROUNDS=3 DURATION=10 by default
#   ROUNDS=5 DURATION=20 bench/sidecar.sh
#
# Everything listens on 127.0.0.1 only. Runs as root (PostgreSQL and PgBouncer drop to the
# `postgres` OS user) or as a user that can run initdb. Installs the Debian `pgbouncer` package
# when it is missing. Reuses the gateway bench's `splice_proxy` and `bench_gateway` examples.
# Results: a markdown table on stdout and in $OUT (default target/bench/sidecar.md).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-8}
SCALE=${SCALE:-5}
IDLE=${IDLE:-1000}
OUT=${OUT:-target/bench/sidecar.md}
BASE_PORT=${BASE_PORT:-55530}
PG_PORT=$BASE_PORT; PGB_PORT=$((BASE_PORT + 1)); SPLICE_PORT=$((BASE_PORT + 2))
SC_PORT=$((BASE_PORT + 3)); GW_PORT=$((BASE_PORT + 4)); SCGW_PORT=$((BASE_PORT + 5))

. bench/lib.sh
ensure_pgbouncer
find_pg_bin

echo "== building release examples" >&2
cargo build --release -q -p pgentra-proxy --example bench_sidecar --example splice_proxy --example bench_gateway
EX=target/release/examples

setup_workdir pgentra-sidecar-bench
start_postgres $((IDLE + 200))
start_pgbouncer 2000

echo "== bare splice proxy on :$SPLICE_PORT -> 127.0.0.1:$PG_PORT" >&2
$EX/splice_proxy "127.0.0.1:$SPLICE_PORT" "127.0.0.1:$PG_PORT" >"$WORK/splice.log" 2>&1 &
SPLICE_PID=$!; PIDS+=($SPLICE_PID)

echo "== pgentra gateway on :$GW_PORT -> unix socket (trust), for sidecar -> gateway" >&2
$EX/bench_gateway "$WORK/sock" "$PG_PORT" "127.0.0.1:$GW_PORT" bench_entra "$WORK/token" >"$WORK/gw.out" 2>"$WORK/gw.err" &
PIDS+=($!)
for _ in $(seq 1 100); do grep -q ready "$WORK/gw.out" 2>/dev/null && break; sleep 0.2; done
grep -q ready "$WORK/gw.out" || { cat "$WORK/gw.err" >&2; exit 1; }
psql_su -c "grant select on all tables in schema public to bench_entra"

# The sidecar straight to PostgreSQL logs in with SCRAM, the token (an emulator-signed JWT of
# realistic size) being the role's password, as with any server that takes tokens as passwords.
psql_su -c "set password_encryption = 'scram-sha-256'; create role bench_sidecar login password '$(cat "$WORK/token")'"
psql_su -c "grant select on all tables in schema public to bench_sidecar"
echo "== token: $(wc -c < "$WORK/token") bytes" >&2

start_sidecar() { # listen port, upstream port, role -> pid
  $EX/bench_sidecar serve "127.0.0.1:$1" "127.0.0.1:$2" "$3" "$WORK/token" >"$WORK/sc$1.out" 2>"$WORK/sc$1.err" &
  local pid=$!
  for _ in $(seq 1 100); do grep -q ready "$WORK/sc$1.out" 2>/dev/null && break; sleep 0.1; done
  grep -q ready "$WORK/sc$1.out" || { cat "$WORK/sc$1.err" >&2; exit 1; }
  echo "$pid"
}
echo "== pgentra sidecar on :$SC_PORT -> PostgreSQL; on :$SCGW_PORT -> gateway" >&2
SC_PID=$(start_sidecar "$SC_PORT" "$PG_PORT" bench_sidecar); PIDS+=($SC_PID)
SCGW_PID=$(start_sidecar "$SCGW_PORT" "$GW_PORT" bench_entra); PIDS+=($SCGW_PID)

# target -> "port user password" (no password for the sidecars: that is the point)
declare -A TARGET=(
  [direct]="$PG_PORT bench benchpw"
  [pgbouncer]="$PGB_PORT bench benchpw"
  [splice]="$SPLICE_PORT bench benchpw"
  [sidecar]="$SC_PORT app -"
  [sidecar_gateway]="$SCGW_PORT app -"
)
ORDER=(direct pgbouncer splice sidecar sidecar_gateway)

run_pgbench() { # target, extra args... -> prints the pgbench output
  local t=$1; shift
  read -r port user pass <<<"${TARGET[$t]}"
  if [ "$pass" = - ]; then
    env -u PGPASSWORD PGSSLMODE=disable pgbench -n -h 127.0.0.1 -p "$port" -U "$user" -T "$DURATION" "$@" postgres 2>&1
  else
    PGPASSWORD=$pass PGSSLMODE=disable pgbench -n -h 127.0.0.1 -p "$port" -U "$user" -T "$DURATION" "$@" postgres 2>&1
  fi
}
RESULTS="$WORK/results.tsv"
: > "$RESULTS"
for r in $(seq 1 "$ROUNDS"); do
  # Rotate the order each round so no target always runs first (or right after another).
  rot=$(( (r - 1) % ${#ORDER[@]} ))
  order=("${ORDER[@]:$rot}" "${ORDER[@]:0:$rot}")
  for t in "${order[@]}"; do
    out=$(run_pgbench "$t" -S -c "$CLIENTS" -j 2)
    tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -1)
    [ -n "$tps" ] || echo "$out" >&2
    echo -e "select_tps\t$t\t$tps" >> "$RESULTS"
    out=$(run_pgbench "$t" -S -c 1 -j 1)
    lat=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' <<<"$out" | head -1)
    echo -e "latency_ms\t$t\t$lat" >> "$RESULTS"
    out=$(run_pgbench "$t" -S -C -c "$CLIENTS" -j 2)
    cps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -1)
    echo -e "connect_tps\t$t\t$cps" >> "$RESULTS"
    echo "round $r $t: -S ${tps:-?} tps, 1-client ${lat:-?} ms, -C ${cps:-?} tps" >&2
  done
done

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
MEM="$WORK/memory.tsv"
: > "$MEM"
measure_idle() { # name, pid, port, user, [password]
  local name=$1 pid=$2 port=$3 user=$4 pass=${5:-}
  local before after fifo=$WORK/hold.$name
  before=$(rss_kib "$pid")
  mkfifo "$fifo"
  $EX/bench_sidecar hold "127.0.0.1:$port" "$IDLE" "$user" $pass < "$fifo" > "$WORK/hold.$name.out" 2>&1 &
  local hold=$!
  exec 9>"$fifo"
  for _ in $(seq 1 600); do grep -q ready "$WORK/hold.$name.out" 2>/dev/null && break; sleep 0.1; done
  grep -q ready "$WORK/hold.$name.out" || { cat "$WORK/hold.$name.out" >&2; exit 1; }
  sleep 1
  after=$(rss_kib "$pid")
  exec 9>&-
  wait "$hold" || true
  echo -e "$name\t$before\t$after" >> "$MEM"
  echo "idle $name: RSS ${before} KiB -> ${after} KiB with $IDLE connections" >&2
}
measure_idle sidecar "$SC_PID" "$SC_PORT" app
measure_idle splice "$SPLICE_PID" "$SPLICE_PORT" bench benchpw

mkdir -p "$(dirname "$OUT")"
python3 - "$RESULTS" "$MEM" "$ROUNDS" "$DURATION" "$CLIENTS" "$IDLE" "$(wc -c < "$WORK/token")" > "$OUT" <<'PY'
import statistics, sys
path, mem, rounds, duration, clients, idle, token_len = sys.argv[1:8]
data = {}
for line in open(path):
    metric, target, value = line.rstrip("\n").split("\t")
    if value:
        data.setdefault((metric, target), []).append(float(value))
med = lambda m, t: statistics.median(data.get((m, t), [float("nan")]))
targets = ["direct", "pgbouncer", "splice", "sidecar", "sidecar_gateway"]
names = {"direct": "direct PostgreSQL (SCRAM)", "pgbouncer": "PgBouncer (SCRAM, session)",
         "splice": "bare splice proxy", "sidecar": "pgentra sidecar → PostgreSQL",
         "sidecar_gateway": "pgentra sidecar → gateway → PostgreSQL"}
d_tps, d_lat, d_cps = med("select_tps", "direct"), med("latency_ms", "direct"), med("connect_tps", "direct")
print(f"Rounds: {rounds} interleaved, {duration} s per run, medians. `-S` with {clients} clients / 2 threads;")
print("latency: `-S -c 1`; connects: `-S -C` (a new connection per transaction). Plaintext on loopback;")
print(f"the sidecars get no password from pgbench and log in upstream with a {token_len}-byte token.")
print()
print("| target | `-S` tps | vs direct | 1-client latency | vs direct | `-C` tps | vs direct |")
print("|---|---|---|---|---|---|---|")
for t in targets:
    tps, lat, cps = med("select_tps", t), med("latency_ms", t), med("connect_tps", t)
    print(f"| {names[t]} | {tps:,.0f} | {tps / d_tps:.2f}× | {lat * 1000:.0f} µs | {(lat - d_lat) * 1000:+.0f} µs | {cps:,.0f} | {cps / d_cps:.2f}× |")
print()
s, b, sp = med("select_tps", "sidecar"), med("select_tps", "pgbouncer"), med("select_tps", "splice")
print(f"Sidecar `-S` vs PgBouncer: {s / b:.2f}× (goal ≥ 1.0); vs bare splice: {s / sp:.2f}× (goal ≥ 0.95).")
print(f"Sidecar 1-client latency above direct: {(med('latency_ms', 'sidecar') - d_lat) * 1000:+.0f} µs (goal ≤ 20 µs).")
print(f"Sidecar connects vs direct SCRAM: {med('connect_tps', 'sidecar') / d_cps:.2f}× (goal ≥ 1.0).")
print()
print(f"Memory with {idle} idle proxied connections (RSS of the proxy process):")
print()
print("| proxy | RSS before | RSS with idle connections | per connection |")
print("|---|---|---|---|")
for line in open(mem):
    name, before, after = line.split()
    per = (int(after) - int(before)) / int(idle)
    print(f"| {names.get(name, name)} | {int(before):,} KiB | {int(after):,} KiB | {per:.1f} KiB |")
print()
print("Raw runs (tps / ms):")
print()
for (m, t), v in sorted(data.items()):
    print(f"    {m:12} {t:16} " + " ".join(f"{x:.1f}" if m != "latency_ms" else f"{x:.3f}" for x in v))
PY
cat "$OUT"
