"""The one place that reads the environment: VALUEDESK_ variables into the settings of every layer."""

from __future__ import annotations

from functools import lru_cache

from agent.settings import AgentSettings


@lru_cache(maxsize=1)
def load_settings() -> AgentSettings:
    """Every group (data and model, serving, LLM and agent), read once per process; entry points pass
    it down, so core code never reads the environment itself."""
    return AgentSettings()
