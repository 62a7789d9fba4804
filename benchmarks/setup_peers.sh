#!/usr/bin/env bash
# The environment of sentence-transformers' ONNX / OpenVINO peers (benchmarks/peer_st_backends.py), beside llembed's:
# optimum-onnx and optimum-intel need transformers 4.x, so they cannot share llembed's .venv (transformers 5.23).
# torch is pinned to the CPU wheel llembed uses; huggingface-hub below 1.0 is what transformers 4.x accepts.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
[ -x .venv-peers/bin/python ] || "$python" -m venv .venv-peers
.venv-peers/bin/python -m pip install -q --upgrade pip
.venv-peers/bin/python -m pip install -q torch==2.13.0 "sentence-transformers[onnx,openvino]" datasets "huggingface-hub<1.0" \
    2>&1 | grep -v "^WARNING: Location" || true
