#!/usr/bin/env bash
# Quick start: set everything up and run Qasar on its embedded default
# (one process, SQLite, local disk, in-process worker) on 127.0.0.1:8000 with data under ./data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HOST="${HOST:-127.0.0.1}"
export PORT="${PORT:-8000}"
export STORAGE_ROOT="${STORAGE_ROOT:-./data/storage}"
export DATABASE_URL="${DATABASE_URL:-sqlite:./data/qasar.sqlite}"
# Through its shebang, with the node flags it ships with.
exec ./bin/qasar.js serve
