"""LLM and agent settings: the chat model, the vLLM server it may run, and the agent's bounds.

Read from the same VALUEDESK_ environment variables, once per process, by valuedesk.config.load_settings.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from predictor.settings import REPO_ROOT
from tools.settings import ServingSettings


class AgentSettings(ServingSettings):
    # The chat UI's sign-in: principal names (keys from `valuedesk keys`) allowed in; each signs in with its
    # name and its key, and its tool calls are checked and audited as that principal. Unset: no sign-in.
    ui_users: str | None = None

    # LLM
    llm_backend: str = Field("offline", pattern="^(offline|openai|vllm)$")
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: str = "EMPTY"
    llm_timeout_s: float = 60.0

    # vLLM serving (agent.llm_server; the server runs in its own .venv-vllm)
    vllm_model: str = Field("smollm2-135m", description="Key of agent.llm_model.MODELS, or a HF id / local model dir.")
    vllm_host: str = "127.0.0.1"
    vllm_port: int = 8001
    vllm_python: Path = REPO_ROOT / ".venv-vllm" / "bin" / "python"
    vllm_startup_timeout_s: float = Field(300.0, gt=0)
    vllm_extra_args: str = Field("", description="Extra vLLM CLI arguments, shell-quoted.")
    vllm_kvcache_gb: int = Field(1, ge=1, description="VLLM_CPU_KVCACHE_SPACE for the CPU backend.")
    llm_tool_choice: str = Field("required", pattern="^(auto|required)$",
                                 description="'required' on the first step for weak models, 'auto' for capable ones.")

    # Agent (agent/: LangChain agent, offline planner, sessions)
    agent_tools: str = Field("", description="Comma-separated tool names the LLM sees; empty means all tools.")
    agent_max_steps: int = Field(6, ge=1, le=20, description="Model calls per question before the agent stops.")
    agent_history_turns: int = Field(6, ge=1, description="Past question/answer turns sent to the LLM.")
    agent_max_tool_chars: int = Field(12000, ge=500, description="Tool output size sent to the LLM; lists are shortened to fit.")
    agent_few_shot: bool = Field(True, description="Send prompts/examples.yaml to the LLM as example turns.")
    agent_grounding_retries: int = Field(1, ge=0, le=3, description="Times the LLM is asked to fix unverified numbers.")
    agent_session_max_turns: int = Field(24, ge=1, description="Turns a session keeps (older ones are dropped).")
    agent_session_max_bytes: int = Field(262144, ge=4096, description="Stored bytes a session keeps (oldest turns dropped).")
    agent_session_max_age_days: float = Field(30.0, gt=0, description="Turns older than this are forgotten.")
    agent_session_store_max_mb: float = Field(256.0, gt=0, description=(
        "Stored turns in all sessions together; past it the least recently used sessions are dropped."))
    agent_session_prune_every: int = Field(500, ge=1, description=(
        "Session writes between prunes of the whole store (also pruned at start and every 10 minutes)."))
    sessions_url: str | None = Field(None, pattern=r"^postgres(ql)?://", description=(
        "PostgreSQL URL (postgresql://user:password@host:port/db) of a session store that API replicas "
        "share (agent/memory_postgres.py); unset, sessions are kept in SQLite under the data directory."))
    llm_max_tokens: int = Field(1024, ge=16)
    llm_max_call_tokens: int = Field(2048, ge=16, description=(
        "Cap on the token budget of a required tool call (the longest call the tools' bounded schemas "
        "admit); above it the call keeps llm_max_tokens."))
    llm_seed: int | None = Field(42, description="Sampling seed sent to the LLM (with temperature 0: repeatable answers).")
    llm_temperature: float = Field(0.0, ge=0.0, le=2.0)
