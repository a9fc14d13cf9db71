#!/usr/bin/env bash
# Runs once, when the primary's data directory is first initialised (docker-entrypoint-initdb.d):
# a login for streaming replication, the standby's slot, and the pg_hba line for the standby.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set=password="$REPLICATION_PASSWORD" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'password';
-- The standby's slot: the primary keeps the WAL the standby has not received yet.
SELECT pg_create_physical_replication_slot('standby1');
SQL
echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
