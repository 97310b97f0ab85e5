#!/bin/sh
# Temporal's persistence on PostgreSQL: create the two databases and bring their schema to the
# version this admin-tools image ships. Safe to re-run: `create` of an existing database is
# tolerated, `setup-schema -v 0.0` only creates the version table if missing, and
# `update-schema` applies only versions newer than the database's.
set -eu

PLUGIN=postgres12
HOST=${POSTGRES_SEEDS:-postgresql}
PORT=${DB_PORT:-5432}
USER=${POSTGRES_USER:-temporal}
SCHEMA_DIR=/etc/temporal/schema/postgresql/v12

echo "waiting for PostgreSQL at $HOST:$PORT"
until nc -z -w 2 "$HOST" "$PORT"; do sleep 1; done

for DB in temporal temporal_visibility; do
  case $DB in
    temporal) DIR=$SCHEMA_DIR/temporal/versioned ;;
    *) DIR=$SCHEMA_DIR/visibility/versioned ;;
  esac
  sql() { temporal-sql-tool --plugin "$PLUGIN" --ep "$HOST" -p "$PORT" -u "$USER" --db "$DB" "$@"; }
  sql create || echo "database $DB exists"
  sql setup-schema -v 0.0
  sql update-schema -d "$DIR"
  echo "database $DB is at the current Temporal schema"
done
