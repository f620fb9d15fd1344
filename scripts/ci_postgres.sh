#!/usr/bin/env bash
# Starts a PostgreSQL server for the call-log tests and exports its URL as
# TIERWISE_TEST_POSTGRES_URL. Installs PostgreSQL (Debian/Ubuntu apt) when missing.
# Idempotent: a second run finds the cluster, user and database and only checks them.
#
#   source scripts/ci_postgres.sh     # exports TIERWISE_TEST_POSTGRES_URL
#   bash scripts/ci_postgres.sh       # prints: export TIERWISE_TEST_POSTGRES_URL=...
#
# Settings (environment): TIERWISE_PG_PORT (54329), TIERWISE_PG_USER, TIERWISE_PG_PASSWORD,
# TIERWISE_PG_DB (all "tierwise"), TIERWISE_PG_CLUSTER ("tierwise").

if (return 0 2>/dev/null); then
    # Sourced: do the work in a child shell, where `set -e` cannot leak into the caller.
    if _tierwise_pg_url=$(bash "${BASH_SOURCE[0]}" --url-only); then
        export TIERWISE_TEST_POSTGRES_URL=$_tierwise_pg_url
        unset _tierwise_pg_url
        echo "ci_postgres: TIERWISE_TEST_POSTGRES_URL is set" >&2
        return 0
    fi
    unset _tierwise_pg_url
    echo "ci_postgres: could not start PostgreSQL" >&2
    return 1
fi

set -euo pipefail
port=${TIERWISE_PG_PORT:-54329}
user=${TIERWISE_PG_USER:-tierwise}
password=${TIERWISE_PG_PASSWORD:-tierwise}
db=${TIERWISE_PG_DB:-tierwise}
cluster=${TIERWISE_PG_CLUSTER:-tierwise}
as_root=()
if [ "$(id -u)" != 0 ]; then as_root=(sudo); fi

if ! command -v pg_lsclusters >/dev/null || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    echo "ci_postgres: installing PostgreSQL" >&2
    "${as_root[@]}" apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq postgresql >&2
fi
version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)

cluster_field() {  # prints column $1 of `pg_lsclusters` for our cluster, nothing if absent
    pg_lsclusters -h | awk -v v="$version" -v c="$cluster" -v f="$1" '$1 == v && $2 == c {print $f}'
}

if [ -z "$(cluster_field 2)" ]; then
    echo "ci_postgres: creating cluster $version/$cluster on port $port" >&2
    "${as_root[@]}" pg_createcluster "$version" "$cluster" --port "$port" >&2
    echo "listen_addresses = '127.0.0.1'" |
        "${as_root[@]}" tee "/etc/postgresql/$version/$cluster/conf.d/tierwise.conf" >/dev/null
fi
if [ "$(cluster_field 4)" != online ]; then
    "${as_root[@]}" pg_ctlcluster "$version" "$cluster" start >&2
fi
port=$(cluster_field 3)

for _ in $(seq 1 60); do
    if pg_isready -q -h 127.0.0.1 -p "$port"; then break; fi
    sleep 0.5
done
pg_isready -h 127.0.0.1 -p "$port" >&2

as_postgres=(runuser -u postgres --)
if [ "$(id -u)" != 0 ]; then as_postgres=(sudo -u postgres); fi
psql_admin() {
    "${as_postgres[@]}" psql -q -X -v ON_ERROR_STOP=1 -p "$port" -d postgres "$@" >&2
}
psql_admin -v user="$user" -v password="$password" <<'SQL'
SELECT format('CREATE ROLE %I', :'user')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user') \gexec
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'user', :'password') \gexec
SQL
psql_admin -v user="$user" -v db="$db" <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SQL

url="postgresql://$user:$password@127.0.0.1:$port/$db"
if [ "${1:-}" = --url-only ]; then
    echo "$url"
else
    echo "export TIERWISE_TEST_POSTGRES_URL=$url"
fi
