"""A session-scoped real vLLM server for integration tests.

Use from any test module (tests/ is on sys.path under pytest's default import mode):

    from vllm_fixture import vllm_server, requires_vllm  # noqa: F401  (fixture import)

    @requires_vllm
    def test_something(vllm_server):
        client = openai.OpenAI(base_url=vllm_server.base_url, api_key="EMPTY")
        ... model=vllm_server.model ...

The server is started once per test session on a free port and stopped at the end. Without
`.venv-vllm` (scripts/setup_vllm.sh) the tests are skipped with that reason, unless
VALUEDESK_REQUIRE_VLLM=1 (set it in CI), which turns the skip into a failure so a broken setup
cannot pass silently. VALUEDESK_TEST_VLLM_BASE_URL=http://host:port/v1 reuses a running server.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.llm_server import LLMServer, served_model_name
from agent.settings import AgentSettings

# Read at import (collection), before conftest's per-test data-dir isolation kicks in: the
# converted model is a cache that scripts/setup_vllm.sh filled under the real data directory,
# and the server only reads it.
SERVING_SETTINGS = AgentSettings()


def vllm_unavailable_reason() -> str | None:
    python = Path(SERVING_SETTINGS.vllm_python)
    if not python.is_file():
        return f"vLLM venv missing ({python}); run `bash scripts/setup_vllm.sh`"
    if not (python.parent.parent / ".installed-vllm").is_file():
        return f"vLLM venv at {python.parent.parent} is incomplete; run `bash scripts/setup_vllm.sh`"
    return None


def _require() -> None:
    reason = vllm_unavailable_reason()
    if reason is None or os.environ.get("VALUEDESK_TEST_VLLM_BASE_URL"):
        return
    if os.environ.get("VALUEDESK_REQUIRE_VLLM") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


_reason = vllm_unavailable_reason()
_skip_without_vllm = pytest.mark.skipif(
    _reason is not None and os.environ.get("VALUEDESK_REQUIRE_VLLM") != "1"
    and not os.environ.get("VALUEDESK_TEST_VLLM_BASE_URL"),
    reason=_reason or "")


def requires_vllm(test):
    """Skip without .venv-vllm; allow for the server's startup inside the test's timeout."""
    return _skip_without_vllm(pytest.mark.timeout(1200)(test))


@dataclass(frozen=True)
class VLLMEndpoint:
    base_url: str  # ends in /v1, ready for openai.OpenAI(base_url=...)
    model: str
    server: LLMServer | None  # None when reusing an external server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory) -> VLLMEndpoint:
    settings = SERVING_SETTINGS
    external = os.environ.get("VALUEDESK_TEST_VLLM_BASE_URL")
    if external:
        yield VLLMEndpoint(base_url=external.rstrip("/"), model=served_model_name(settings), server=None)
        return
    _require()
    # Startup took 85 s idle and ~150 s with the 2 cores 8x oversubscribed; allow for worse.
    settings = settings.model_copy(update={"vllm_startup_timeout_s": max(settings.vllm_startup_timeout_s, 600.0)})
    server = LLMServer(settings, port=_free_port(), log_path=tmp_path_factory.mktemp("vllm") / "vllm.log")
    server.start()
    try:
        yield VLLMEndpoint(base_url=server.base_url, model=server.model_name, server=server)
    finally:
        server.stop()
