#!/usr/bin/env bash
# The library's main job on its embedded default: store a conversation, its items and a
# response chain in ./datacon-demo.db (SQLite), read them back, and show what persisted.
set -euo pipefail
here="$(pwd)"
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$here"
exec "$root/.venv/bin/python" "$root/examples/quickstart.py" "$@"
