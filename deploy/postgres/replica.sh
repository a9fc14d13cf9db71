#!/usr/bin/env bash
# The standby: on first start, clone the primary with pg_basebackup -R (the slot `standby1`, made
# by primary-init.sh, keeps the WAL it still needs), then run as a hot standby. The API reads here (READ_DATABASE_URL);
# read-your-writes holds because a token's write counts only once it is visible in this server's
# snapshot (README "Read your writes on a replica").
set -euo pipefail
: "${PGDATA:?}" "${PRIMARY_HOST:?}" "${REPLICATION_PASSWORD:?}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  export PGPASSWORD="$REPLICATION_PASSWORD"
  until pg_basebackup --host="$PRIMARY_HOST" --username=replicator --pgdata="$PGDATA" \
      --write-recovery-conf --wal-method=stream --slot=standby1 --progress; do
    echo "replica: primary not ready, retrying" >&2
    rm -rf "$PGDATA"
    sleep 2
  done
  chmod 700 "$PGDATA"
fi
exec postgres -D "$PGDATA" -c hot_standby=on -c hot_standby_feedback=on "$@"
