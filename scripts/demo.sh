#!/usr/bin/env bash
# The library's main job on its embedded default: store a conversation, its items and a
# response chain in ./datacon-demo.db (SQLite), read them back, and show what persisted.
#
# It needs datacon alone: when .venv has no datacon yet (or an older copy of this tree), it
# installs the core package there, as a user would (no extras, no test or docs tools, no system
# packages), printing one line; pip's own output is shown only if the install fails. A .venv
# made by scripts/setup.sh (the test command) already has datacon, installed editable, and is
# used as it is.
set -euo pipefail
here="$(pwd)"
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"
core_stamp="$venv/.datacon-core"   # this script installed the core from the tree as it was then
full_stamp="$venv/.datacon-installed"   # scripts/setup.sh installed everything, editable

needs_install() {
  [ -x "$venv/bin/python" ] || return 0
  [ -f "$full_stamp" ] && return 1
  [ -f "$core_stamp" ] || return 0
  [ -n "$(find "$root/datacon" "$root/setup.cfg" "$root/setup.py" "$root/pyproject.toml" \
    -newer "$core_stamp" -print -quit)" ]
}

if needs_install; then
  echo "demo: installing datacon (the core package, no extras) into $venv"
  log="$(mktemp)"
  trap 'rm -f "$log"' EXIT
  if ! { [ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"; } >"$log" 2>&1 \
    || ! "$venv/bin/python" -m pip install --disable-pip-version-check --no-input "$root" >>"$log" 2>&1; then
    cat "$log" >&2
    echo "demo: installing datacon failed (pip's output above)" >&2
    exit 1
  fi
  touch "$core_stamp"
fi

cd "$here"
exec "$venv/bin/python" "$root/examples/quickstart.py" "$@"
