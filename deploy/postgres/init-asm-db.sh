#!/bin/sh
# Runs once, when the PostgreSQL data volume is first initialised (docker-entrypoint-initdb.d):
# the event store gets its own role and database, separate from Temporal's.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
CREATE ROLE asm LOGIN PASSWORD '${ASM_DB_PASSWORD:-asm}';
CREATE DATABASE asm OWNER asm;
SQL
