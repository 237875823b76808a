#!/bin/sh
# PgBouncer in transaction mode in front of Postgres, configured from environment variables only
# (the pgbouncer image of docker/compose.yaml; tests/isolation/test_pgbouncer.py runs this very
# script). Row-level security stays exact behind it: the tenant setting is transaction-local
# (tenants/db_backend/base.py), so it never outlives the transaction PgBouncer pins.
set -eu
: "${DB_HOST:?DB_HOST: the Postgres host or socket folder}" "${APP_DB_PASSWORD:?}"
conf="${PGBOUNCER_CONF_DIR:-/tmp/pgbouncer}"
mkdir -p "$conf"
umask 077
# One role, the application's: SCRAM toward the clients and toward Postgres.
printf '"%s" "%s"\n' "${APP_DB_USER:-pricing_app}" "$APP_DB_PASSWORD" > "$conf/users.txt"
cat > "$conf/pgbouncer.ini" <<INI
[databases]
${DB_NAME:-pricing_saas} = host=${DB_HOST} port=${DB_PORT:-5432} dbname=${DB_NAME:-pricing_saas}
[pgbouncer]
listen_addr = ${PGBOUNCER_LISTEN_ADDR:-0.0.0.0}
listen_port = ${PGBOUNCER_PORT:-6432}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = ${conf}/users.txt
pool_mode = transaction
default_pool_size = ${PGBOUNCER_POOL_SIZE:-20}
min_pool_size = 0
reserve_pool_size = ${PGBOUNCER_RESERVE_POOL_SIZE:-5}
max_client_conn = ${PGBOUNCER_MAX_CLIENT_CONN:-500}
server_reset_query =
ignore_startup_parameters = extra_float_digits,options
INI
# PgBouncer refuses to run as root: PGBOUNCER_USER names the account to switch to.
if [ -n "${PGBOUNCER_USER:-}" ]; then
  exec pgbouncer -u "$PGBOUNCER_USER" "$conf/pgbouncer.ini"
fi
exec pgbouncer "$conf/pgbouncer.ini"
