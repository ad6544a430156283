#!/usr/bin/env bash
# Set up everything datacon's tests and demo need on a fresh Debian machine (idempotent):
# system packages (redis-server; PostgreSQL 15 server binaries; pgbouncer), and a .venv with datacon
# installed in editable mode with every backend driver and the test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ -x /usr/lib/postgresql/15/bin/postgres ] || command -v pg_ctl >/dev/null 2>&1 || missing+=(postgresql-15)
command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: missing ${missing[*]} (run as root, or install them); tests needing them will fail in CI" >&2
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.datacon-installed
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ requirements-dev.txt -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[all,test,docs]' -r requirements-dev.txt 2>&1 \
    | grep -v '^WARNING: Location' || true
  .venv/bin/python -c "import datacon, psycopg, psycopg_pool, redis, oracledb, anyio, trio, hypothesis, opentelemetry.sdk, opentelemetry.instrumentation.psycopg, opentelemetry.instrumentation.redis, opentelemetry.exporter.otlp.proto.http" 
  touch "$stamp"
fi
