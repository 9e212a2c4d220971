#!/usr/bin/env bash
# The seed's closing step: the table owner grants the Service Connector role the tables it
# created, then validates with the seed's query. `pgentra grant` plays
# `az postgres flexible-server execute --querytext "GRANT …"`; psql checks each side:
#   1. the owner creates a table after the role was created (so the role has no grant on it);
#   2. the application (psql with PGPASSWORD=$(pgentra token)) is refused: permission denied;
#   3. `pgentra grant --role aad_<connection>` runs the GRANT and prints the validation query's rows;
#   4. the owner runs the seed's validation query with psql: the table is listed;
#   5. the application now reads the table.
# Usage: check.sh AUTH OWNER_HOST OWNER_PORT OWNER_USER DATABASE (owner over its unix socket, trust
# auth; the seed's "<owner password>" is any PGPASSWORD). Application settings come from the
# Service Connector variables (python client type). Prints the role on success.
set -euo pipefail

auth=$1 owner_host=$2 owner_port=$3 owner_user=$4 db=$5
here=$(cd "$(dirname "$0")" && pwd)
role=${AZURE_POSTGRESQL_CONNECTIONSTRING##*user=}
role=${role%% *}
table=interop_items_$auth

owner_psql() {
  PGPASSWORD=owner-password-unused-by-trust psql -X -A -t -v ON_ERROR_STOP=1 \
    -h "$owner_host" -p "$owner_port" -U "$owner_user" -d "$db" "$@"
}
app_psql() { "$here/../psql/connect.sh" "$auth" "$1"; }

owner_psql -q -c "drop table if exists $table; create table $table(id serial primary key, name text); insert into $table(name) values ('granted')"

if out=$(app_psql "select name from $table" 2>&1); then
  echo "the application read $table before the GRANT: $out" >&2
  exit 1
fi
case $out in
  *"permission denied for table $table"*) ;;
  *) echo "expected 'permission denied for table $table' before the GRANT, got: $out" >&2; exit 1 ;;
esac

granted=$(PGPASSWORD=owner-password-unused-by-trust pgentra --output tsv grant --role "$role" \
  --host "$owner_host" --port "$owner_port" --user "$owner_user" -d "$db" --sslmode disable)
grep -qx "$table" <<<"$granted" || { echo "pgentra grant did not list $table: $granted" >&2; exit 1; }

validated=$(owner_psql -c "SELECT distinct(table_name) FROM information_schema.table_privileges WHERE grantee='$role' AND table_schema='public';")
grep -qx "$table" <<<"$validated" || { echo "validation query did not list $table: $validated" >&2; exit 1; }

name=$(app_psql "select name from $table")
[ "$name" = granted ] || { echo "after the GRANT the application read '$name', not 'granted'" >&2; exit 1; }
echo "$role"
