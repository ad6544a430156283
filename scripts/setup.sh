#!/usr/bin/env bash
# Set up everything datacon's tests need on a fresh Debian machine (idempotent): system
# packages (redis-server; PostgreSQL 15 server binaries; pgbouncer), and a .venv with datacon
# installed in editable mode with every backend driver, the framework adapters' packages (OpenAI
# Agents SDK, langchain-core), the test and docs tools, and tox (for
# the docs' `tox -e ...` lines). pip's output is shown only when an install fails.
# (scripts/demo.sh needs none of this: it installs the core package alone.)
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)  # builds the test Redis Cluster
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
if [ ! -f "$stamp" ] || [ -n "$(find setup.cfg setup.py pyproject.toml requirements-dev.txt -newer "$stamp" -print -quit)" ]; then
  log="$(mktemp)"
  trap 'rm -f "$log"' EXIT
  # The distribution used to be called datacon (a name taken on PyPI): remove that old
  # install, whose metadata would declare a second `datacon` command beside datacon-store's.
  if ! { .venv/bin/python -m pip install --disable-pip-version-check --upgrade pip \
      && { ! .venv/bin/python -m pip show -q datacon >/dev/null 2>&1 \
           || .venv/bin/python -m pip uninstall --disable-pip-version-check -y datacon; } \
      && .venv/bin/python -m pip install --disable-pip-version-check -e '.[all,openai-agents,langchain,test,docs]' -r requirements-dev.txt; } \
      >"$log" 2>&1; then
    cat "$log" >&2
    echo "setup: pip install failed (its output above)" >&2
    exit 1
  fi
  .venv/bin/python -c "import datacon, psycopg, psycopg_pool, redis, oracledb, anyio, trio, hypothesis, build, twine, opentelemetry.sdk, opentelemetry.instrumentation.psycopg, opentelemetry.instrumentation.redis, opentelemetry.exporter.otlp.proto.http, fastapi, httpx2, agents, langchain_core"
  .venv/bin/tox --version >/dev/null
  rm -rf datacon.egg-info  # that old name's build metadata, which importlib.metadata would also find here
  rm -f .venv/.datacon-core  # scripts/demo.sh's core install, replaced by this editable one
  touch "$stamp"
fi
