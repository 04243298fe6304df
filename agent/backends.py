"""The chat model behind the agent, chosen by one setting (`VALUEDESK_LLM_BACKEND`).

- `offline` (default): the no-LLM planner (agent.planner) wrapped as a LangChain chat model, so it
  runs through the same agent graph, memory, streaming and grounding as a real LLM.
- `vllm`: the local vLLM OpenAI-compatible server (`valuedesk serve-llm`); base URL and model name
  come from the vLLM settings unless VALUEDESK_LLM_BASE_URL / VALUEDESK_LLM_MODEL override them.
- `openai`: any OpenAI-compatible endpoint (VALUEDESK_LLM_BASE_URL, VALUEDESK_LLM_MODEL, VALUEDESK_LLM_API_KEY).

Nothing here runs at import time; the factory is called when the agent service is first used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.settings import AgentSettings
from predictor.errors import ValueDeskError


class AgentConfigError(ValueDeskError):
    """The LLM backend settings are incomplete or inconsistent."""


@dataclass(frozen=True)
class BackendInfo:
    backend: str
    model: str | None
    base_url: str | None


def backend_info(settings: AgentSettings) -> BackendInfo:
    backend = settings.llm_backend
    if backend == "offline":
        return BackendInfo("offline", "valuedesk-planner", None)
    if backend == "vllm":
        from agent.llm_server import served_model_name

        base_url = settings.llm_base_url or f"http://{settings.vllm_host}:{settings.vllm_port}/v1"
        return BackendInfo("vllm", settings.llm_model or served_model_name(settings), base_url.rstrip("/"))
    if not settings.llm_base_url or not settings.llm_model:
        raise AgentConfigError(
            "The openai backend needs VALUEDESK_LLM_BASE_URL and VALUEDESK_LLM_MODEL (and VALUEDESK_LLM_API_KEY "
            "if the endpoint wants one); or set VALUEDESK_LLM_BACKEND=offline to answer without an LLM.")
    return BackendInfo("openai", settings.llm_model, settings.llm_base_url.rstrip("/"))


def build_chat_model(settings: AgentSettings, *, registry: Any = None) -> Any:
    """A LangChain chat model for the configured backend."""
    info = backend_info(settings)
    if info.backend == "offline":
        from agent.planner import PlannerChatModel, get_planner

        return PlannerChatModel(planner=get_planner(settings, registry))
    from langchain_openai import ChatOpenAI

    # timeout is per request; no retry, so a question never waits more than agent_max_steps timeouts.
    return ChatOpenAI(model=info.model, base_url=info.base_url, api_key=settings.llm_api_key or "EMPTY",
                      timeout=settings.llm_timeout_s, max_retries=0, temperature=settings.llm_temperature,
                      seed=settings.llm_seed, max_tokens=settings.llm_max_tokens)
