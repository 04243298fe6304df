"""Property-based fuzzing of the MCP stdio server (a real `valuedesk mcp` subprocess): every line that is
not a valid notification or response gets a JSON-RPC reply within a timeout. Strategies: tests/_fuzz_strategies.py."""

from __future__ import annotations

import errno
import itertools
import json
import os
import select
import subprocess
import time
from collections import Counter

import mcp_types as mtypes
import pytest
from hypothesis import given
from hypothesis import strategies as st

from _agent_support import no_real_llm  # noqa: F401
from _fuzz_strategies import (ARG_OBJECTS, FUZZ, NASTY, REPO, SCALARS, SERVER_COMMAND, VALUES, encode,
                              json_texts)
from _tools_data import tools_env
from agent.settings import AgentSettings
from predictor.settings import Settings
from tools.json_guard import max_depth_of
from tools.registry import TOOLS


# ------------------------------------------------------------------------------------------ MCP stdio


class StdioServer:
    """`valuedesk mcp` as a subprocess, spoken to line by line (the SDK client would hide what we test)."""

    def __init__(self):
        self.proc = subprocess.Popen([SERVER_COMMAND, "mcp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env={**os.environ, **tools_env()}, cwd=str(REPO))
        self.buffer = b""
        self.ids = itertools.count()

    def send(self, line: bytes) -> None:
        self.proc.stdin.write(line + b"\n")
        self.proc.stdin.flush()

    def read(self, deadline: float) -> dict | None:
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                return None
            chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
            assert chunk, "the MCP server closed stdout"
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def request(self, method: str, params: dict | None = None, timeout: float = 60) -> dict:
        rid = f"req-{next(self.ids)}"
        self.send(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method,
                              **({"params": params} if params is not None else {})}).encode())
        deadline = time.monotonic() + timeout
        while (reply := self.read(deadline)) is not None:
            if reply.get("id") == rid:
                return reply
        raise AssertionError(f"no reply to {method} within {timeout}s")

    def exchange(self, line: bytes, expect: int = 1, timeout: float = 15) -> list[dict]:
        """Send `line`, then a ping; the replies other than the ping's, read until the ping's reply and
        `expect` others have arrived (or `timeout`)."""
        self.send(line)
        sentinel = f"sentinel-{next(self.ids)}"
        self.send(json.dumps({"jsonrpc": "2.0", "id": sentinel, "method": "ping"}).encode())
        deadline = time.monotonic() + timeout
        replies, got_sentinel = [], False
        while not (got_sentinel and len(replies) >= expect) and (reply := self.read(deadline)) is not None:
            if reply.get("id") == sentinel:
                got_sentinel = True
            else:
                replies.append(reply)
        assert got_sentinel, f"no reply to a ping after {line[:200]!r}: the server stopped answering"
        return replies

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def mcp_stdio():
    server = StdioServer()
    try:
        init = server.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                             "clientInfo": {"name": "fuzz", "version": "1"}}, timeout=120)
        assert "result" in init, init
        server.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
        yield server
    finally:
        server.close()


def needs_reply(line: bytes) -> bool:
    """False for a blank line or a valid notification/response (JSON-RPC answers neither), unless it
    nests deeper than the server reads."""
    if not line.strip():
        return False
    if max_depth_of(line.decode("utf-8", "replace")) > AgentSettings().max_json_depth:
        return True
    try:
        message = mtypes.jsonrpc_message_adapter.validate_json(line, by_name=False)
    except Exception:  # noqa: BLE001 - anything the SDK cannot read must be answered
        return True
    if isinstance(message, mtypes.JSONRPCNotification):
        try:
            return "id" in json.loads(line)  # an id of the wrong type: a request gone wrong
        except ValueError:
            return True
    return isinstance(message, mtypes.JSONRPCRequest)


TOOL_NAMES = [t.name for t in TOOLS]


@st.composite
def rpc_lines(draw) -> bytes:
    kind = draw(st.sampled_from([0, 1, 2, 2, 2, 3, 3]))  # 2, 3: JSON-RPC envelopes
    if kind == 0:  # arbitrary bytes (no newline: one line each)
        return draw(st.binary(max_size=200)).replace(b"\n", b" ")
    if kind == 1:  # arbitrary JSON-ish text
        return draw(json_texts()).encode()
    # Mostly well-formed envelopes, so the fuzz reaches the SDK's dispatch and the tools, not only our checks.
    rid = draw(st.integers(0, 3).flatmap(lambda i: st.one_of(
        st.booleans(), st.none(), st.floats(allow_nan=False), NASTY) if i == 0 else st.integers(0, 10**6) | st.text(max_size=8)))
    version = draw(st.integers(0, 9).flatmap(lambda i: SCALARS if i == 0 else st.just("2.0")))
    message = {"jsonrpc": version, "id": rid}
    if kind == 2:  # a tool call with fuzzed arguments
        message["method"] = "tools/call"
        message["params"] = {"name": draw(st.sampled_from(TOOL_NAMES) | st.text(max_size=8)),
                             "arguments": draw(ARG_OBJECTS | VALUES)}
    else:  # any method, any params
        message["method"] = draw(st.sampled_from(["tools/list", "ping", "resources/list"]) | st.text(max_size=10)
                                 | SCALARS)
        message["params"] = draw(st.one_of(st.dictionaries(st.text(max_size=8), VALUES, max_size=3), VALUES))
    if draw(st.integers(0, 5)) == 0:
        del message[draw(st.sampled_from(sorted(message)))]
    return encode(message).encode()


def test_mcp_stdio_fuzz_every_line_answered(mcp_stdio):
    kinds: Counter[object] = Counter()

    @FUZZ
    @given(line=rpc_lines())
    def fuzz(line):
        answered = needs_reply(line)
        replies = mcp_stdio.exchange(line, expect=1 if answered else 0)
        if answered:
            assert len(replies) == 1, f"{line[:300]!r} -> {replies}"
            reply = replies[0]
            assert reply["jsonrpc"] == "2.0" and ("result" in reply or reply["error"]["message"]), reply
            kinds["result" if "result" in reply else reply["error"]["code"]] += 1
        else:
            assert replies == [], f"{line[:300]!r} -> {replies}"

    fuzz()
    print("MCP fuzz replies:", dict(kinds))
    # Lines reach the SDK and the tools (results, method-not-found), not only the line checks.
    assert {"result", mtypes.PARSE_ERROR, mtypes.INVALID_REQUEST, mtypes.INVALID_PARAMS} <= set(kinds), kinds


@pytest.mark.parametrize("line, code, rid, says", [
    (b"{not json", mtypes.PARSE_ERROR, None, "not valid JSON"),
    (b'{"jsonrpc":"2.0","id":41,"method":"tools/list"', mtypes.PARSE_ERROR, 41, "not valid JSON"),
    (b'\xff{"jsonrpc":"2.0","id":"u","method":"ping"}', mtypes.PARSE_ERROR, "u", "UTF-8"),
    (b"[" * 50_000 + b"]" * 50_000, mtypes.INVALID_REQUEST, None, "nested"),
    (b'{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"find_customers","arguments":{"a":'
     + b"[" * 5000 + b"]" * 5000 + b"}}}", mtypes.INVALID_PARAMS, 42, "nested"),
    (b'{"jsonrpc":"2.0","id":43,"method":"tools/list","params":{"x":' + b"1" * 5000 + b"}}",
     mtypes.INVALID_PARAMS, 43, "out of range"),
    (b'{"jsonrpc":"2.0","id":44,"method":"tools/call","params":{"name":"find_customers",'
     b'"arguments":{"countries":["\\ud800"]}}}', mtypes.INVALID_PARAMS, 44, "lone surrogate"),
    (b'{"jsonrpc":"2.0","id":45,"method":"ping","params":[1]}', mtypes.INVALID_PARAMS, 45, "params"),
    (b'{"jsonrpc":"2.0","id":true,"method":"ping"}', mtypes.INVALID_REQUEST, None, "id"),
    (b'[{"jsonrpc":"2.0","id":46,"method":"ping"}]', mtypes.INVALID_REQUEST, None, "batches"),
    (b'"hello"', mtypes.INVALID_REQUEST, None, "JSON object"),
    (b'{"id":47,"method":"ping"}', mtypes.INVALID_REQUEST, 47, "jsonrpc"),
    (b"NaN", mtypes.PARSE_ERROR, None, "NaN"),
])
def test_mcp_stdio_malformed_lines_get_specific_errors(mcp_stdio, line, code, rid, says):
    [reply] = mcp_stdio.exchange(line)
    assert reply["id"] == rid and reply["error"]["code"] == code and says in reply["error"]["message"], reply


def test_mcp_stdio_tool_errors_stay_structured(mcp_stdio):
    reply = mcp_stdio.request("tools/call", {"name": "find_customers", "arguments": {"limit": "many", "x": 1}})
    result = reply["result"]
    assert result["isError"] and result["structuredContent"]["error"]["code"] == "invalid_arguments"
    reply = mcp_stdio.request("tools/call", {"name": "find_customers", "arguments": {"limit": 1e400}})
    assert reply["result"]["isError"]


def test_mcp_stdio_oversized_line(mcp_stdio):
    big = b'{"jsonrpc":"2.0","id":48,"method":"tools/call","params":{"name":"score_customer","arguments":{"x":"' \
          + b"a" * 1_100_000 + b'"}}}'
    [reply] = mcp_stdio.exchange(big)
    assert reply["id"] == 48 and reply["error"]["code"] == mtypes.INVALID_REQUEST
    assert "longer than" in reply["error"]["message"]


# ------------------------------------------------------------------------------------------ registry


@pytest.mark.parametrize("number, code", [(errno.ENOSPC, "insufficient_storage"), (errno.EDQUOT, "insufficient_storage"),
                                          (errno.EROFS, "storage_unavailable"), (errno.EACCES, "storage_unavailable")])
def test_registry_maps_disk_failures_for_every_tool(tmp_path, number, code):
    """Any tool, raw or wrapped as internal_error: the disk's code, the file relative to the data directory."""
    from tools.api import STATUS
    from tools.deps import ToolDeps, ToolFailure
    from tools.health_models import ModelReportArgs, ModelReportResult
    from tools.registry import ToolRegistry, ToolSpec

    def writes(args, deps):
        path = deps.settings.data_dir / "exports" / "out.csv"  # noqa: F841 - named in the message
        raise OSError(number, os.strerror(number))

    def wraps(args, deps):
        try:
            writes(args, deps)
        except OSError as exc:
            raise ToolFailure("internal_error", f"Could not write: {exc}") from None

    specs = tuple(ToolSpec(name, func, ModelReportArgs, ModelReportResult) for name, func in
                  (("writes", writes), ("wraps", wraps)))
    registry = ToolRegistry(ToolDeps(Settings(data_dir=tmp_path)), tools=specs)
    for name in ("writes", "wraps"):
        result = registry.call(name, {})
        assert not result.ok and result.error.code == code, result
        assert "exports/out.csv" in result.error.message and str(tmp_path) not in result.error.message
        assert result.error.hint and "bug" not in result.error.hint
    assert STATUS[code] == (507 if code == "insufficient_storage" else 503)


def test_registry_maps_a_lone_surrogate_failure_to_invalid_arguments(tmp_path):
    from pydantic import BaseModel

    from tools.deps import ToolDeps
    from tools.health_models import ModelReportResult
    from tools.registry import ToolRegistry, ToolSpec

    class Args(BaseModel):
        text: str = ""

    def encodes(args, deps):
        args.text.encode("utf-8")  # what a library deep inside a tool does with the text

    registry = ToolRegistry(ToolDeps(Settings(data_dir=tmp_path)), tools=(
        ToolSpec("encodes", encodes, Args, ModelReportResult),))
    result = registry.call("encodes", {"text": "tea \ud800"})
    assert result.error.code == "invalid_arguments" and "lone surrogate" in result.error.message
    assert [f["field"] for f in result.error.fields] == ["text"]
