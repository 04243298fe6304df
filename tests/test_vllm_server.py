"""vLLM serving: launcher behaviour (no vLLM needed) and the real server over the wire."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path
from typing import Literal

import jinja2
import pytest
from pydantic import BaseModel, ConfigDict, Field

from agent.llm_server import PROMPTS_DIR, LLMServer, LLMServerError
from agent.tool_schema import bound_schema, max_call_tokens
from agent.settings import AgentSettings
from vllm_fixture import requires_vllm


# -- a tool schema shaped like the project's typed tools --------------------------------------
class FindCustomersArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tier: Literal["Platinum", "Gold", "Silver", "Bronze"] = Field(description="Customer value tier")
    country: str = Field(description="Country name, e.g. Germany")
    limit: int = Field(description="How many customers to return")


def find_customers_tool() -> dict:
    """The tool as the agent sends it: every value bounded (agent.tool_schema), strict."""
    schema = bound_schema(FindCustomersArgs.model_json_schema())
    schema.pop("title", None)
    return {
        "type": "function",
        "function": {
            "name": "find_customers",
            "description": "List customers of a value tier in a country, highest predicted value first.",
            "parameters": schema,
            "strict": True,
        },
    }


# -- launcher, without vLLM --------------------------------------------------------------------
def _fake_python(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "fake-python"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def _settings(tmp_path: Path, **kw) -> AgentSettings:
    base = dict(data_dir=tmp_path / "data", vllm_model="org/some-model", vllm_port=1, vllm_startup_timeout_s=20)
    return AgentSettings(**{**base, **kw})


def test_missing_interpreter_says_how_to_fix(tmp_path):
    server = LLMServer(_settings(tmp_path, vllm_python=tmp_path / "nope" / "python"))
    with pytest.raises(LLMServerError, match="setup_vllm.sh"):
        server.start()


def test_server_dying_at_startup_reports_log_tail(tmp_path):
    fake = _fake_python(tmp_path, 'echo "engine failed: out of memory"; exit 3')
    server = LLMServer(_settings(tmp_path, vllm_python=fake), port=_unused_port())
    with pytest.raises(LLMServerError) as err:
        server.start()
    assert "code 3" in str(err.value) and "out of memory" in str(err.value)
    assert server.process is None


def test_startup_timeout_kills_the_process(tmp_path):
    pidfile = tmp_path / "pid"
    fake = _fake_python(tmp_path, f'echo $$ > {pidfile}; exec sleep 60')
    server = LLMServer(_settings(tmp_path, vllm_python=fake, vllm_startup_timeout_s=2), port=_unused_port())
    started = time.monotonic()
    with pytest.raises(LLMServerError, match="did not answer /health within 2 s"):
        server.start()
    assert time.monotonic() - started < 15
    pid = int(pidfile.read_text())
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


def test_failed_model_conversion_is_reported(tmp_path):
    fake = _fake_python(tmp_path, 'echo "ModelConversionError: package missing" >&2; exit 2')
    server = LLMServer(_settings(tmp_path, vllm_python=fake, vllm_model="smollm2-135m"))
    with pytest.raises(LLMServerError, match="converting smollm2-135m .* failed:\n.*package missing"):
        server.ensure_model()


def test_serve_llm_command_prints_actionable_error(tmp_path, monkeypatch, capsys):
    from valuedesk.cli import main
    from valuedesk.config import load_settings

    monkeypatch.setenv("VALUEDESK_VLLM_PYTHON", str(tmp_path / "missing" / "python"))
    load_settings.cache_clear()
    assert main(["serve-llm", "--model", "org/some-model", "--port", str(_unused_port())]) == 2
    assert "setup_vllm.sh" in capsys.readouterr().err


FAKE_VLLM = """#!{python}
# Stands in for vLLM: answers /health on --port and keeps a child alive, like the engine core.
import http.server, os, subprocess, sys
port = int(sys.argv[sys.argv.index("--port") + 1])
child = subprocess.Popen(["sleep", "300"])
open(os.environ["FAKE_PIDS"], "w").write(f"{{os.getpid()}} {{child.pid}}")

class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
"""


def _alive(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except FileNotFoundError:
        return False


def _fake_vllm(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    script = tmp_path / "fake-vllm-python"
    script.write_text(FAKE_VLLM.format(python=sys.executable))
    script.chmod(0o755)
    pids = tmp_path / "pids"
    monkeypatch.setenv("FAKE_PIDS", str(pids))
    return script, pids


def test_start_waits_for_health_and_stop_ends_the_process_group(tmp_path, monkeypatch):
    fake, pids = _fake_vllm(tmp_path, monkeypatch)
    with LLMServer(_settings(tmp_path, vllm_python=fake), port=_unused_port()) as server:
        assert server.is_healthy() and server.startup_seconds < 20
        assert server.base_url.endswith("/v1")
        parent, child = map(int, pids.read_text().split())
        assert _alive(parent) and _alive(child)
    deadline = time.monotonic() + 10
    while (_alive(parent) or _alive(child)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(parent) and not _alive(child)


def test_serve_llm_stops_vllm_on_sigterm(tmp_path, monkeypatch):
    import signal
    import subprocess

    fake, pids = _fake_vllm(tmp_path, monkeypatch)
    env = {**os.environ, "VALUEDESK_VLLM_PYTHON": str(fake), "VALUEDESK_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "valuedesk.cli", "serve-llm", "--model", "org/some-model",
         "--port", str(_unused_port())], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        ready = proc.stdout.readline()
        assert "vLLM ready" in ready, proc.stderr.read() if proc.poll() is not None else ready
        parent, child = map(int, pids.read_text().split())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 10
    while (_alive(parent) or _alive(child)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(parent) and not _alive(child)


def test_command_carries_tool_calling_flags_per_model(tmp_path):
    fake = _fake_python(tmp_path, "exit 0")
    tiny = LLMServer(_settings(tmp_path, vllm_python=fake, vllm_model="smollm2-135m",
                               vllm_extra_args="--max-num-seqs 4"))
    cmd = tiny.command("/models/smol")
    assert cmd[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert cmd[cmd.index("--tool-call-parser") + 1] == "hermes"
    assert "--enable-auto-tool-choice" in cmd
    assert Path(cmd[cmd.index("--chat-template") + 1]).is_file()
    assert cmd[cmd.index("--served-model-name") + 1] == "smollm2-135m"
    assert cmd[-2:] == ["--max-num-seqs", "4"]

    qwen = LLMServer(_settings(tmp_path, vllm_python=fake, vllm_model="qwen3-8b")).command("Qwen/Qwen3-8B")
    assert qwen[qwen.index("--reasoning-parser") + 1] == "qwen3"
    assert json.loads(qwen[qwen.index("--default-chat-template-kwargs") + 1]) == {"enable_thinking": False}
    llama = LLMServer(_settings(tmp_path, vllm_python=fake, vllm_model="llama-3.1-8b")).command("x")
    assert llama[llama.index("--tool-call-parser") + 1] == "llama3_json"


def test_hermes_template_renders_tools_calls_and_results():
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(PROMPTS_DIR))
    prompt = env.get_template("hermes_tool_template.jinja").render(
        messages=[
            {"role": "system", "content": "You help marketers."},
            {"role": "user", "content": "Top gold customers in Germany?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "find_customers", "arguments": '{"tier": "Gold", "country": "Germany", "limit": 3}'}}]},
            {"role": "tool", "tool_call_id": "c1", "content": '[{"customer_id": "12345"}]'},
        ],
        tools=[find_customers_tool()], add_generation_prompt=True)
    system = prompt.split("<|im_end|>")[0]
    assert system.startswith("<|im_start|>system\nYou help marketers.") and '"name": "find_customers"' in system
    assert '<tool_call>\n{"name": "find_customers", "arguments": {"tier": "Gold", "country": "Germany", "limit": 3}}\n</tool_call>' in prompt
    assert '<|im_start|>user\n<tool_response>\n[{"customer_id": "12345"}]\n</tool_response><|im_end|>' in prompt
    assert prompt.endswith("<|im_start|>assistant\n")
    assert prompt.count("You help marketers.") == 1


def _unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- the real server ---------------------------------------------------------------------------
@requires_vllm
def test_real_server_lists_the_served_model(vllm_server):
    import openai

    client = openai.OpenAI(base_url=vllm_server.base_url, api_key="EMPTY", timeout=120)
    assert vllm_server.model in [m.id for m in client.models.list().data]


@requires_vllm
def test_real_server_tool_call_round_trip(vllm_server):
    """Wire path: a strict tool schema + tool_choice=required gives a parsed, schema-valid call;
    feeding the tool result back gives a text answer."""
    import openai

    client = openai.OpenAI(base_url=vllm_server.base_url, api_key="EMPTY", timeout=300)
    tools = [find_customers_tool()]
    messages = [
        {"role": "system", "content": "You are a marketing assistant. Use the tools to answer."},
        {"role": "user", "content": "Show me 5 Gold customers in Germany."},
    ]
    budget = max_call_tokens({"find_customers": tools[0]["function"]["parameters"]})
    first = client.chat.completions.create(
        model=vllm_server.model, messages=messages, tools=tools, tool_choice="required",
        parallel_tool_calls=False, max_tokens=budget, temperature=0, seed=42)
    assert first.choices[0].finish_reason != "length", "the call was cut off by max_tokens"
    msg = first.choices[0].message
    assert msg.tool_calls, f"no tool call parsed; content={msg.content!r}"
    call = msg.tool_calls[0]
    assert call.function.name == "find_customers"
    args = FindCustomersArgs.model_validate_json(call.function.arguments)  # schema-valid, no extras

    result = json.dumps([{"customer_id": "12583", "tier": args.tier, "country": args.country,
                          "predicted_value": 1520.5}])
    messages += [
        {"role": "assistant", "content": msg.content,
         "tool_calls": [{"id": call.id, "type": "function",
                         "function": {"name": call.function.name, "arguments": call.function.arguments}}]},
        {"role": "tool", "tool_call_id": call.id, "content": result},
    ]
    second = client.chat.completions.create(
        model=vllm_server.model, messages=messages, tools=tools, tool_choice="none",
        max_tokens=64, temperature=0, seed=42)
    answer = second.choices[0].message
    assert not answer.tool_calls
    assert isinstance(answer.content, str) and answer.content.strip()
    # The tool result reached the model: the same request without the call and its result is shorter
    # (with tool_choice="none" the server leaves the tools out of both prompts).
    without = client.chat.completions.create(
        model=vllm_server.model, messages=messages[:2], tools=tools, tool_choice="none", max_tokens=1)
    assert second.usage.prompt_tokens > without.usage.prompt_tokens + 10


@requires_vllm
def test_real_server_streams_tool_call_deltas(vllm_server):
    """The UI streams: with stream=True the call arrives as deltas that join into valid arguments."""
    import openai

    client = openai.OpenAI(base_url=vllm_server.base_url, api_key="EMPTY", timeout=300)
    tool = find_customers_tool()
    stream = client.chat.completions.create(
        model=vllm_server.model, messages=[{"role": "user", "content": "Show me 5 Gold customers in Germany."}],
        tools=[tool], tool_choice="required", parallel_tool_calls=False, temperature=0, seed=42, stream=True,
        max_tokens=max_call_tokens({"find_customers": tool["function"]["parameters"]}))
    deltas = [tc for chunk in stream if chunk.choices for tc in (chunk.choices[0].delta.tool_calls or [])]
    assert deltas, "no tool-call deltas streamed"
    names = {tc.function.name for tc in deltas if tc.function and tc.function.name}
    assert names == {"find_customers"}
    arguments = "".join(tc.function.arguments or "" for tc in deltas if tc.function and tc.index == 0)
    FindCustomersArgs.model_validate_json(arguments)
