#!/usr/bin/env bash
# psql with an Entra token as the password: PGPASSWORD=$(pgentra token), the connection string
# Service Connector set (libpq keywords, sslmode=require), `select current_user`.
# $1 = system | user | sp: which identity `pgentra token` signs in as; $2 = other SQL to run
# (grant/check.sh uses it). Service Connector's
# variables name the identity AZURE_POSTGRESQL_*; the token command reads the Azure SDKs' standard
# AZURE_CLIENT_ID / AZURE_TENANT_ID / AZURE_CLIENT_SECRET, so they are mapped here, as an
# application's start-up script would.
# Prints current_user (or the SQL's rows); any failure exits non-zero.
set -euo pipefail

auth=${1:-system}
sql=${2:-select current_user}
case $auth in
  system) token=$(pgentra token) ;;
  user) token=$(AZURE_CLIENT_ID=$AZURE_POSTGRESQL_CLIENTID pgentra token) ;;
  sp)
    token=$(AZURE_TENANT_ID=$AZURE_POSTGRESQL_TENANTID AZURE_CLIENT_ID=$AZURE_POSTGRESQL_CLIENTID \
      AZURE_CLIENT_SECRET=$AZURE_POSTGRESQL_CLIENTSECRET pgentra token --ca-file "$SSL_CERT_FILE")
    ;;
  *) echo "unknown authentication type '$auth': use system, user or sp" >&2; exit 2 ;;
esac

PGPASSWORD=$token exec psql -X -A -t -v ON_ERROR_STOP=1 -c "$sql" \
  "$AZURE_POSTGRESQL_CONNECTIONSTRING"
