"""`prepare`: the per-process caches the fast tools use, built when a registry starts."""

from __future__ import annotations

import logging

from predictor.errors import ValueDeskError
from tools.deps import ToolDeps
from tools.functions.rows import horizon_days, row_reader

log = logging.getLogger(__name__)


def prepare(deps: ToolDeps) -> None:
    """Build the per-process caches the fast tools use, so no request pays for them."""
    deps.warm()
    row_reader(deps)
    horizon_days(deps)
    deps.customers.tier_floors()
    try:
        deps.planning_customers
    except ValueDeskError as exc:  # recommend_campaigns reports it per call; the rest still serves
        log.warning("campaign planning unavailable: %s", exc)
    try:
        # One search opens Chroma's segments and the index's 8-bit vector copy (seconds at 1M profiles),
        # so the first marketer's search does not wait for them.
        deps.index.search("customer", None, 1)
    except Exception as exc:  # noqa: BLE001 - search_profiles reports the real problem per call
        log.info("profile index not warmed: %s", exc)
