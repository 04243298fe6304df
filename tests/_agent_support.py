"""Shared pieces of the agent tests: a guard against real LLM/network connections, a scripted chat
model, and an offline agent service over the crude tools data (built once per process)."""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict

from _tools_data import tools_data_dir


class RealConnectionAttempt(AssertionError):
    """A unit test tried to reach something other than this machine (an LLM endpoint, most likely)."""


def _loopback(address: Any) -> bool:
    if isinstance(address, tuple) and address:
        host = address[0]
    else:
        return True  # unix sockets
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def no_real_llm(monkeypatch, request):
    """Fail any test that would open a connection off this machine, or call ChatOpenAI unless it
    uses the real vLLM server fixture (`vllm_server`)."""
    original = socket.socket.connect

    def guarded_connect(self, address):
        if not _loopback(address):
            raise RealConnectionAttempt(f"test tried to connect to {address!r}")
        return original(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    if "vllm_server" not in request.fixturenames:
        from langchain_openai import ChatOpenAI

        def refuse(*_a, **_k):
            raise RealConnectionAttempt("a unit test called a real OpenAI-compatible LLM; use ScriptedChatModel")

        monkeypatch.setattr(ChatOpenAI, "_generate", refuse)
        monkeypatch.setattr(ChatOpenAI, "_stream", refuse)
    yield


Step = AIMessage | Callable[[list[BaseMessage]], AIMessage]


class ScriptedChatModel(BaseChatModel):
    """Returns the given AI messages in order (or calls a step with the messages it was sent);
    records every call's messages and bind_tools arguments."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    steps: list[Any]
    calls: list[dict[str, Any]] = []
    bound: dict[str, Any] = {}

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools, **kwargs):
        # A bound copy that shares the script and records what the agent bound for this step.
        self.bound = {"tools": [getattr(t, "name", None) for t in tools], **kwargs}
        return _Bound(self, dict(self.bound))

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        return self._next(messages, {})

    def _next(self, messages, bound) -> ChatResult:
        if not self.steps:
            raise AssertionError("the scripted model ran out of steps")
        step = self.steps.pop(0)
        self.calls.append({"messages": list(messages), **bound})
        message = step(list(messages)) if callable(step) else step
        return ChatResult(generations=[ChatGeneration(message=message)])


class _Bound(BaseChatModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    inner: Any
    kwargs: dict[str, Any]

    def __init__(self, inner, kwargs):
        super().__init__(inner=inner, kwargs=kwargs)

    @property
    def _llm_type(self) -> str:
        return "scripted-bound"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        return self.inner._next(messages, self.kwargs)


@functools.lru_cache(maxsize=None)
def agent_data_dir() -> Path:
    return tools_data_dir()


def copy_tables(target: Path) -> Path:
    """A private flat data directory holding the shared test build's customers and transactions
    (tests that write sessions or exports must not write into the shared build)."""
    import shutil

    from predictor.layout import current_version

    built = current_version(agent_data_dir()).root
    for name in ("customers.parquet", "transactions.parquet"):
        shutil.copy(built / name, target / name)
    return target


@pytest.fixture(scope="session")
def agent_embedder(tmp_path_factory):
    from predictor.search.embeddings import get_embedder

    cache_dir = tmp_path_factory.mktemp("agent-embeddings")
    embedder = get_embedder("minilm", cache_dir, threads=1)
    embedder.cache_dir = cache_dir  # subprocess tests copy the ONNX export instead of exporting again
    return embedder


def make_settings(data_dir: Path, **kw):
    from agent.settings import AgentSettings

    return AgentSettings(data_dir=data_dir, threads=1, **kw)


def offline_service(settings, embedder, registry=None):
    """An offline AgentService whose planner uses the given (session-cached) embedder."""
    from agent.planner import IntentModel, Planner, PlannerChatModel
    from agent.service import AgentService
    from tools.deps import ToolDeps
    from tools.registry import ToolRegistry

    registry = registry or ToolRegistry(ToolDeps(settings))
    planner = Planner.for_registry(settings, registry, intent_model=IntentModel(settings, embedder=embedder))
    return AgentService(settings, registry=registry, model=PlannerChatModel(planner=planner), backend="offline")
