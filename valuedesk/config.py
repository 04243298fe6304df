"""The one place that reads the environment: VALUEDESK_ variables into the settings of every layer."""

from __future__ import annotations

import os
from functools import lru_cache

from agent.settings import AgentSettings


@lru_cache(maxsize=1)
def load_settings() -> AgentSettings:
    """Every group (data and model, serving, LLM and agent), read once per process; entry points pass
    it down, so core code never reads the environment itself."""
    settings = AgentSettings()
    if "VALUEDESK_CURRENCY_SYMBOL" not in os.environ:
        # The currency a build recorded (`valuedesk build --currency USD`) is the data's: every answer uses it.
        built = built_currency(settings.data_dir)
        if built and built != settings.currency_symbol:
            settings = settings.model_copy(update={"currency_symbol": built})
    return settings


def built_currency(data_dir) -> str | None:
    from predictor.build_state import read_build_info
    from predictor.layout import current_version

    return (read_build_info(current_version(data_dir)).get("output_key") or {}).get("currency")
