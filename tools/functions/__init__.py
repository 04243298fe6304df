"""The public tools: plain typed functions `(args, deps) -> result`; each docstring is the tool's description.

Every surface (CLI, HTTP, MCP, agent, UI) reaches these through `tools.registry`; none computes numbers
on its own. Functions raise `ToolFailure` (or a predictor error) and the registry turns it into data.

One module per group of tools: `customers` (find_customers, get_customer, segment_summary,
score_customer), `search` (search_profiles, also while the index is still being built), `campaigns`
(recommend_campaigns, export_audience), `report` (model_report), `health` (model_health). They share `rows` (customers-table
rows as JSON), `filters` (the call's customer filter, countries checked) and `warmup` (`prepare`).
The names below are the package's API: `tools.functions.<tool>` is what the registry serves.
"""

from tools.functions.campaigns import export_audience, recommend_campaigns
from tools.functions.customers import find_customers, get_customer, score_customer, segment_summary
from tools.functions.health import model_health
from tools.functions.report import model_report
from tools.functions.rows import dumps, jsonable
from tools.functions.search import search_profiles
from tools.functions.warmup import prepare

__all__ = [
    "dumps", "export_audience", "find_customers", "get_customer", "jsonable", "model_health", "model_report", "prepare",
    "recommend_campaigns", "score_customer", "search_profiles", "segment_summary",
]
