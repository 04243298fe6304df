"""Pydantic input and output models of the public tools.

Argument models forbid unknown fields and give every optional argument a `None` default, so the
OpenAI strict-mode schema (every property required, nullable) and the plain JSON schema describe
the same call: a client may omit an argument or send null, and both mean "use the default".
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from predictor.campaigns.allocation import MAX_BUDGET, budget_problem
from predictor.campaigns.catalogue import GOALS
from predictor.customers.audience import LIFECYCLE_STAGES, RFM_SEGMENTS, TIERS, CustomerFilter
from tools.strict_numbers import refuse_bool_numbers

SortKey = Literal["value_at_risk", "predicted_value", "historical_value", "churn_risk", "customer_value"]
GroupKey = Literal["tier", "lifecycle", "segment", "country"]

DEFAULT_LIMIT = 20
MAX_LIMIT = 500


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_numbers(cls, value: Any, info) -> Any:
        return refuse_bool_numbers(cls, value, info.field_name)


def _names(allowed: tuple[str, ...]):
    # Validation stays CustomerFilter's (case-insensitive, with "did you mean"); the schema lists the
    # canonical names so strict-mode LLM decoding and API clients only produce valid ones.
    return list[Annotated[str, WithJsonSchema({"type": "string", "enum": list(allowed)})]] | None


class FilterArgs(CustomerFilter):
    """The shared customer filter (validated by predictor.customers.audience.CustomerFilter) as tool arguments."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_numbers(cls, value: Any, info) -> Any:
        return refuse_bool_numbers(cls, value, info.field_name)

    # The enums list the names; the descriptions stay short (every audience tool repeats them to the LLM).
    tiers: _names(TIERS) = Field(None, description="Value tiers to include.")
    lifecycle: _names(LIFECYCLE_STAGES) = Field(None, description="Lifecycle stages to include.")
    segments: _names(RFM_SEGMENTS) = Field(None, description="RFM segments to include.")

    def customer_filter(self) -> CustomerFilter:
        return CustomerFilter(**{k: getattr(self, k) for k in CustomerFilter.model_fields})


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- errors


ErrorCode = Literal[
    "invalid_arguments", "unknown_tool", "not_found", "not_built", "index_unavailable",
    "campaign_error", "scoring_error", "internal_error",
    # The disk under the data directory failed (full or quota: 507; read-only or not permitted: 503).
    "insufficient_storage", "storage_unavailable",
    # Transport-level kinds the HTTP surface adds around a call.
    "unauthorized", "forbidden", "payload_too_large", "method_not_allowed", "bad_request"]


class ToolError(Out):
    code: ErrorCode = Field(description="Machine-readable error kind.")
    message: str = Field(description="What went wrong, in words a user can act on.")
    hint: str | None = Field(None, description="What to do about it.")
    fields: list[dict[str, str]] | None = Field(
        None, description="For invalid_arguments: one {field, reason} per rejected argument.")


class ToolResult(Out):
    """Envelope every surface receives from the registry: a result or an error, never an exception."""

    tool: str
    ok: bool
    result: dict[str, Any] | None = None
    error: ToolError | None = None
    elapsed_ms: float | None = None


# ---------------------------------------------------------------- shared output rows


class CustomerRow(Out):
    customer_id: str
    tier: str | None = Field(None, description="Value tier: Platinum, Gold, Silver or Bronze.")
    lifecycle: str | None = Field(None, description="new, active, at risk, lapsing or lapsed.")
    at_risk: bool | None = Field(None, description="At risk: lifecycle 'at risk' or 'lapsing' and churn risk at or "
                                                   "above the population's lowest quarter (the filter at_risk).")
    segment: str | None = Field(None, description="Classic RFM segment name.")
    country: str | None = None
    predicted_value: float | None = Field(None, description="Predicted spend over the horizon.")
    value_p10: float | None = None
    value_p90: float | None = None
    churn_risk: float | None = Field(None, description="Probability of no order within the horizon (0 to 1).")
    value_at_risk: float | None = Field(None, description="Churn risk times the value if retained.")
    customer_value: float | None = Field(None, description="Trailing 12-month revenue plus predicted value.")
    historical_value: float | None = Field(None, description="Lifetime revenue: net revenue over all history.")
    revenue_12m: float | None = Field(None, description="Revenue over the last 12 months (net).")
    orders: int | None = None
    recency_days: float | None = None
    last_order: str | None = None
    expected_next_order: str | None = None


# ---------------------------------------------------------------- find_customers


class FindCustomersArgs(FilterArgs):
    sort_by: SortKey | None = Field(
        None, description="Ranking: value_at_risk (default; the 'at-risk top customers' order), predicted_value, "
                          "historical_value, churn_risk or customer_value; always descending.")
    limit: int | None = Field(None, ge=1, le=MAX_LIMIT,
                              description=f"How many customers to return (default {DEFAULT_LIMIT}, max {MAX_LIMIT}).")
    offset: int | None = Field(None, ge=0, description="Rows to skip (next page).")


class FilterStep(Out):
    step: str = Field(description="One filter condition as a marketer reads it, e.g. 'tier in Platinum', 'at risk'.")
    customers: int = Field(description="Customers left after this step and every step before it.")


class FindCustomersResult(Out):
    total_matching: int = Field(description="How many customers pass the filter.")
    returned: int
    sort_by: SortKey
    currency: str
    horizon_days: int | None = None
    customers: list[CustomerRow]
    narrowing: list[FilterStep] | None = Field(
        None, description="Only when no customer matches: how many remained after each filter step, so the "
                          "step that emptied the list (and what to relax) is visible.")


# ---------------------------------------------------------------- get_customer


class GetCustomerArgs(Args):
    customer_id: str = Field(min_length=1, max_length=64, description="The customer's id as in the data, e.g. '12347'.")
    recent_orders: int | None = Field(None, ge=0, le=50, description="How many recent orders to include (default 5).")


class OrderSummary(Out):
    order_id: str
    date: str
    amount: float = Field(description="Net value of the order (cancellations negative).")
    lines: int
    products: list[str] = Field(description="Up to three product names from the order.")


class NextBestAction(Out):
    campaign: str = Field(description="Campaign playbook name from the catalogue.")
    offer: str | None = None
    channel: str | None = None
    expected_net_value: float | None = Field(None, description="Expected net value of targeting this customer.")
    reason: str


class CustomerDetail(CustomerRow):
    horizon_days: int | None = None
    currency: str
    next_order_days: float | None = None
    first_order: str | None = None
    tenure_days: float | None = None
    aov: float | None = Field(None, description="Average order value.")
    mean_gap_days: float | None = None
    trend: float | None = Field(None, description="Last-90-day spend rate over lifetime rate.")
    r_score: int | None = None
    f_score: int | None = None
    m_score: int | None = None
    value_if_retained: float | None = Field(
        None, description="What they would spend over the horizon if they do order again.")
    value_at_risk_explained: str | None = Field(
        None, description="Why value at risk is above predicted value, with the figures (only when it is).")
    drivers: list[str] = Field(default_factory=list, description="Top reasons behind the prediction, in words.")
    top_categories: list[str] = Field(default_factory=list)
    top_products: list[str] = Field(default_factory=list)
    suggested_products: list[str] = Field(default_factory=list)
    recent_orders: list[OrderSummary] = Field(default_factory=list)
    next_best_action: NextBestAction | None = None
    profile_text: str | None = None
    notes: list[str] = Field(default_factory=list, description="Why a part of the answer is missing, if any.")


# ---------------------------------------------------------------- segment_summary


class SegmentSummaryArgs(FilterArgs):
    group_by: GroupKey | None = Field(None, description="Grouping: tier (default), lifecycle, segment or country.")


class SegmentGroup(Out):
    group: str
    customers: int
    share: float = Field(description="Share of the filtered customers in this group (0 to 1).")
    revenue_12m: float
    historical_value: float
    predicted_value: float
    value_at_risk: float
    mean_churn_risk: float
    predicted_value_quantiles: dict[str, float] | None = Field(None, description="P10, P25, median (p50), P75, P90.")


class SegmentSummaryResult(Out):
    group_by: GroupKey
    total_customers: int
    currency: str
    groups: list[SegmentGroup]


# ---------------------------------------------------------------- search_profiles


class SearchProfilesArgs(FilterArgs):
    query: str = Field(min_length=1, max_length=500,
                       description="What to look for in customer profiles, e.g. 'buys vintage tea sets, lapsing'.")
    limit: int | None = Field(None, ge=1, le=100, description="How many profiles to return (default 10, max 100).")


class ProfileHit(CustomerRow):
    score: float = Field(description="Similarity of the profile to the query (higher is closer).")
    snippet: str


class SearchProfilesResult(Out):
    query: str
    returned: int
    hits: list[ProfileHit]
    # Set only while the profile index is still being built (first run): the hits then come from
    # the profiles embedded so far, and `note` says so in words.
    index_state: str | None = Field(None, description="'embedding', 'writing', 'interrupted' or 'failed' "
                                                      "while the profile index is not ready; absent once it is.")
    profiles_searched: int | None = Field(None, description="Profiles the hits were chosen from (while indexing).")
    profiles_total: int | None = Field(None, description="Profiles in total (while indexing).")
    note: str | None = Field(None, description="What the state of the index (or the data) means for these hits.")
    product_information: bool | None = Field(None, description="False when the data names no products: no hits.")


# ---------------------------------------------------------------- recommend_campaigns / export_audience


class CampaignArgs(FilterArgs):
    # The planner also takes aliases ("win back", "cross-sell") and playbook names; the schema offers the
    # canonical goals so strict-mode decoding picks one of them.
    goal: Annotated[str, WithJsonSchema({"type": "string", "enum": list(GOALS)})] | None = Field(
        None, max_length=100,
        description="Campaign goal: retain (VIPs, at-risk ones too), win_back (at risk or lapsed), reactivate "
                    "(lapsed), grow (cross-sell, second order), upgrade (near the next tier). Omit for every playbook.")
    budget: float | None = Field(None, ge=0, le=MAX_BUDGET,
                                 description="Total spend limit in the data's currency, above 0; omit for no limit.")

    @field_validator("budget", mode="before")
    @classmethod
    def _budget(cls, value: Any) -> Any:
        # Before the range check, so the caller reads why (not finite, not above 0, too large), and an
        # out-of-range budget is refused, never clamped or planned without.
        number = value
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                return value  # pydantic says it is not a number
        if isinstance(number, (int, float)) and not isinstance(number, bool):
            try:
                number = float(number)
            except OverflowError:  # an integer too large for a float
                number = math.inf if number > 0 else -math.inf
            problem = budget_problem(number)
            if problem is not None:
                raise ValueError(problem)
        return value


class CampaignPlanItem(Out):
    # The planner may add fields; the tool contract is the ones named here.
    model_config = ConfigDict(extra="ignore")

    name: str
    label: str | None = Field(None, description="The campaign's name in words, e.g. 'Win-back'.")
    description: str | None = None
    goal: str | None = None
    channel: str | None = None
    offer: dict[str, Any] | None = Field(None, description="Offer terms (discount, free shipping, gift, ...).")
    offer_text: str | None = None
    audience_size: int = Field(description="Customers to contact (the control group is not counted).")
    eligible: int | None = None
    customer_ids: list[str] = Field(description="Targeted customers (the first ones only when customer_ids_truncated).")
    customer_ids_truncated: bool = False
    control_group_size: int = 0
    cost: float
    expected_incremental_revenue: float
    expected_net_value: float
    roi: float | None = None
    uplift: float | None = None
    uplift_source: str | None = None
    contact_cost: float | None = None
    assumptions: list[str] = Field(default_factory=list)
    measurement: str | None = Field(None, description="How to measure the real lift against the control group.")


class RecommendCampaignsResult(Out):
    model_config = ConfigDict(extra="ignore")

    campaigns: list[CampaignPlanItem]
    total_cost: float
    budget: float | None = None
    expected_net_value: float
    expected_incremental_revenue: float | None = None
    audience_size: int | None = Field(None, description="Customers matching the filter before eligibility and budget.")
    targeted: int | None = None
    control_size: int | None = None
    holdout_share: float | None = None
    goal: str | None = None
    currency: str
    assumptions: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class ExportAudienceArgs(CampaignArgs):
    source: Literal["filter", "campaigns"] | None = Field(
        None, description="'filter' (default when neither goal nor budget is given) exports the filtered customers; "
                          "'campaigns' exports the audience of a campaign plan for the same filter, goal and budget.")
    campaign: str | None = Field(None, max_length=100,
                                 description="With source 'campaigns': export only this campaign of the plan.")
    sort_by: SortKey | None = Field(None, description="Row order for source 'filter' (default value_at_risk).")
    max_rows: int | None = Field(None, ge=1, le=2_000_000,
                                 description="Cap on exported rows (default: every matching customer).")
    include_contact: bool | None = Field(None, description=(
        "Add the customers' contact data (e-mail, names, phone, address from the imported customers file) to "
        "the file; needs a key with the 'export:contact' scope. The result's preview never shows it."))


class ExportAudienceResult(Out):
    path: str = Field(description="The CSV file's full path on the server (what the UI offers as a download); "
                                  "messages name it by `file`.")
    file: str = Field(description="The CSV file relative to the data directory, named for the audience, the date and "
                                  "the row count, e.g. 'exports/at-risk-gold-customers-2026-12-06-931.csv'.")
    expires_at: str = Field(description="When the file may be deleted (ISO 8601, UTC): exports older than "
                                        "export_max_age_hours are removed when a later export is written.")
    rows: int = Field(description="Data rows in the file: a campaign export counts its control rows too.")
    control_rows: int = Field(0, description="Rows of the plan's control groups (group 'control'): not to be "
                                             "contacted; 0 for a filter export.")
    columns: list[str]
    preview: list[dict[str, Any]] = Field(description="The first rows of the file.")


# ---------------------------------------------------------------- score_customer


class OrderIn(Args):
    timestamp: str = Field(min_length=4, max_length=40, description="When the order happened, ISO 8601 (2011-05-17 or 2011-05-17T10:30:00).")
    amount: float = Field(ge=-1e7, le=1e7, description="Net order value (negative for a refund).")
    order_id: str | None = Field(None, max_length=64, description="Order id; orders without one count each row as an order.")
    quantity: float | None = Field(None, ge=-1e7, le=1e7)
    product_id: str | None = Field(None, max_length=64)
    product_name: str | None = Field(None, max_length=200)
    category: str | None = Field(None, max_length=100)
    country: str | None = Field(None, max_length=100)


class ScoreCustomerArgs(Args):
    orders: list[OrderIn] = Field(min_length=1, max_length=5000, description="The customer's order history.")
    customer_id: str | None = Field(None, max_length=64, description="Id to report (default 'new').")
    as_of: str | None = Field(None, max_length=40,
                              description="Score as of this date (ISO); default: the model's scoring date.")


class ScoreCustomerResult(Out):
    customer_id: str
    as_of: str | None
    horizon_days: int | None
    currency: str
    predicted_value: float | None
    value_p10: float | None
    value_p90: float | None
    churn_risk: float | None
    expected_next_order: str | None
    next_order_days: float | None
    historical_value: float | None
    orders: int | None
    recency_days: float | None
    customer_value: float | None = Field(description="revenue_12m + predicted_value, the tiering measure.")
    estimated_tier: str | None = Field(description="The tier this value would fall in among current customers.")
    drivers: list[str]
