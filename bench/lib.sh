# Shared setup of the side-by-side benchmarks (sourced by bench/gateway.sh and bench/sidecar.sh):
# a throwaway PostgreSQL with pgbench data and a SCRAM role `bench`, and PgBouncer in front of
# it, all on 127.0.0.1. Nothing here measures anything.

# Installs Debian's pgbouncer when it is missing.
ensure_pgbouncer() {
  command -v pgbouncer >/dev/null 2>&1 && return 0
  echo "bench: installing pgbouncer (Debian package)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d keeps the package from starting its own service.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null
  rm -f /usr/sbin/policy-rc.d
}

# Sets BIN to the PostgreSQL server binaries.
find_pg_bin() {
  BIN=$(pg_config --bindir 2>/dev/null || true)
  [ -x "$BIN/initdb" ] || BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
}

as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }

# Makes WORK (owned by the postgres user when root) and a trap that stops everything in PIDS,
# PgBouncer and PostgreSQL, then deletes WORK.
setup_workdir() { # PREFIX
  WORK=$(mktemp -d "/tmp/$1-XXXXXX")
  [ "$(id -u)" = 0 ] && chown postgres: "$WORK"
  PIDS=()
  trap cleanup EXIT
}

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$WORK/pgbouncer.pid" ] && kill "$(cat "$WORK/pgbouncer.pid")" 2>/dev/null || true
  as_pg "$BIN/pg_ctl -D $WORK/data -m immediate stop" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}

psql_su() { psql -X -q -h "$WORK/sock" -p "$PG_PORT" -U postgres -d postgres "$@"; }

# PostgreSQL on 127.0.0.1:$PG_PORT and $WORK/sock, pgbench data at $SCALE, role bench/benchpw.
start_postgres() { # MAX_CONNECTIONS
  echo "== PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT" >&2
  as_pg "$BIN/initdb -D $WORK/data -U postgres --auth-local=trust --auth-host=scram-sha-256 >/dev/null"
  mkdir -p "$WORK/sock" && [ "$(id -u)" = 0 ] && chown postgres: "$WORK/sock"
  cat >> "$WORK/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$WORK/sock'
max_connections = $1
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
CONF
  as_pg "$BIN/pg_ctl -D $WORK/data -l $WORK/pg.log -w start >/dev/null"
  psql_su -c "set password_encryption = 'scram-sha-256'; create role bench login password 'benchpw'"
  pgbench -q -i -s "$SCALE" -h "$WORK/sock" -p "$PG_PORT" -U postgres postgres >/dev/null 2>&1
  psql_su -c "grant select on all tables in schema public to bench"
}

# PgBouncer on 127.0.0.1:$PGB_PORT, session pooling, SCRAM with the client, unix socket upstream.
start_pgbouncer() { # MAX_CLIENT_CONN
  echo "== PgBouncer $(pgbouncer --version | head -1 | awk '{print $2}') on :$PGB_PORT" >&2
  cat > "$WORK/pgbouncer.ini" <<INI
[databases]
postgres = host=$WORK/sock port=$PG_PORT dbname=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $WORK/userlist.txt
pool_mode = session
max_client_conn = $1
default_pool_size = 40
logfile = $WORK/pgbouncer.log
pidfile = $WORK/pgbouncer.pid
INI
  echo '"bench" "benchpw"' > "$WORK/userlist.txt"
  [ "$(id -u)" = 0 ] && chown postgres: "$WORK/pgbouncer.ini" "$WORK/userlist.txt"
  as_pg "pgbouncer -d $WORK/pgbouncer.ini"
}
