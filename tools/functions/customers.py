"""The customer tools: find_customers (a ranked audience), get_customer (one customer in full),
segment_summary (totals per tier, lifecycle, segment or country) and score_customer (an order history
scored by the trained model without retraining)."""

from __future__ import annotations

import logging
import weakref

import numpy as np
import pandas as pd

from predictor.customers.audience import TIERS
from predictor.customers.tiers import quantiles_by_group
from predictor.errors import ValueDeskError
from predictor.figures import value_at_risk_explained
from tools.deps import ToolDeps
from tools.stores import CustomerStore, ToolFailure
from tools.functions.filters import customer_filter
from tools.functions.rows import DETAIL_FIELDS, ROW_FIELDS, horizon_days, jsonable, row_reader
from tools.models import (
    DEFAULT_LIMIT, CustomerDetail, FindCustomersArgs, FindCustomersResult, GetCustomerArgs, NextBestAction,
    OrderSummary, ScoreCustomerArgs, ScoreCustomerResult, SegmentGroup, SegmentSummaryArgs, SegmentSummaryResult,
)

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- find_customers


def find_customers(args: FindCustomersArgs, deps: ToolDeps) -> FindCustomersResult:
    """Find customers matching a filter, ranked, with their value, churn risk and tier.

    Filter by tier, lifecycle stage, RFM segment, country, at_risk, churn-risk range, predicted-value
    range and days since the last order; rank by value_at_risk (default), predicted_value,
    historical_value, churn_risk or customer_value, highest first. "Who are my at-risk top
    customers?" is one call: tiers ["Platinum", "Gold"], at_risk true. Returns total_matching and up
    to `limit` rows (default 20, max 500).
    """
    # The docstring is the LLM's tool description (kept short: the CPU test model has an 8k window).
    # Value at risk is churn risk x value if retained, so it can exceed predicted value; an empty list
    # carries `narrowing`, the count after each filter step.
    store = deps.customers
    sort_by = args.sort_by or "value_at_risk"
    flt = customer_filter(args, deps)
    # `offset` pages through the same ordering: total_matching stays the filter's count, and an offset
    # past the end is an empty page (returned 0), not an error.
    idx, total = store.top(flt, sort_by, args.limit or DEFAULT_LIMIT, args.offset or 0)
    rows = row_reader(deps).rows(idx, ROW_FIELDS)
    narrowing = None
    if total == 0:  # say which step emptied the list, in the filter's own order
        narrowing = [{"step": "all customers", "customers": store.n}] + [
            {"step": step, "customers": n} for step, n in store.audience.narrowing(flt)]
    # Validated in one pydantic-core pass (faster than constructing each row model in Python).
    return FindCustomersResult.model_validate({
        "total_matching": total, "returned": len(rows), "sort_by": sort_by, "currency": deps.settings.currency_symbol,
        "horizon_days": horizon_days(deps), "customers": rows, "narrowing": narrowing})


# ---------------------------------------------------------------- get_customer


def _recent_orders(deps: ToolDeps, customer_id: str, n: int) -> list[OrderSummary]:
    store = deps.transactions
    if store is None or n == 0:
        return []
    start, stop = store.span(customer_id)
    if start == stop:
        return []
    # A customer has tens of lines: plain Python over array slices beats a pandas groupby by ~100x.
    stamps, amounts = store.timestamp[start:stop], store.amount[start:stop]
    order_ids, names = store.order_id[start:stop], store.product_name[start:stop]
    orders: dict[str, list] = {}
    for oid, ts, amount, name in zip(order_ids, stamps, amounts, names):
        entry = orders.get(oid)
        if entry is None:
            entry = orders[oid] = [ts, 0.0, 0, []]
        entry[0] = min(entry[0], ts)
        entry[1] += amount
        entry[2] += 1
        if isinstance(name, str) and len(entry[3]) < 3 and name not in entry[3]:
            entry[3].append(name)
    latest = sorted(orders.items(), key=lambda kv: kv[1][0], reverse=True)[:n]
    return [OrderSummary(order_id=oid, date=str(np.datetime_as_string(ts, unit="D")), amount=round(total, 2),
                         lines=count, products=products) for oid, (ts, total, count, products) in latest]


def _next_best_action(deps: ToolDeps, pos: int) -> tuple[NextBestAction | None, str | None]:
    """The catalogue playbook with the best expected net value for this customer, or why there is none."""
    try:
        table = deps.next_best_actions
    except ValueDeskError as exc:  # a broken catalogue must not hide the customer's numbers
        log.warning("next best action unavailable: %s", exc)
        return None, f"No next best action: {getattr(exc, 'message', exc)}"
    choice = table.for_position(pos)
    if choice is None:
        return None, "No campaign in the catalogue has a positive expected net value for this customer."
    return NextBestAction.model_validate(choice), None


def get_customer(args: GetCustomerArgs, deps: ToolDeps) -> CustomerDetail:
    """Everything about one customer: predicted value with its P10-P90 interval, churn risk, tier,
    RFM segment, lifecycle stage, value at risk, expected next-order date, the drivers behind the
    prediction, recent orders, suggested products and the next best action. Look up ids with
    find_customers or search_profiles first.
    """
    # value_at_risk_explained says why value at risk is above predicted value, when it is.
    store = deps.customers
    pos = store.position(args.customer_id.strip())
    if pos is None:
        raise ToolFailure("not_found", f"No customer with id '{args.customer_id}'.",
                          "Use find_customers or search_profiles to look up customer ids.")
    reader = row_reader(deps)
    row = reader.get(pos, ROW_FIELDS)
    detail = reader.get(pos, DETAIL_FIELDS)
    detail["recent_orders"] = _recent_orders(deps, row["customer_id"], 5 if args.recent_orders is None
                                             else args.recent_orders)
    detail["next_best_action"], note = _next_best_action(deps, pos)
    detail["notes"] = [note] if note else []
    detail.setdefault("horizon_days", horizon_days(deps))
    currency = deps.settings.currency_symbol
    # Said in the result, so every backend can explain a value at risk above predicted value the same way.
    detail["value_at_risk_explained"] = value_at_risk_explained({**row, **detail}, currency)
    return CustomerDetail(**row, **detail, currency=currency)


# ---------------------------------------------------------------- segment_summary


# Each table's unfiltered spreads per grouping, computed once (tens of ms on a million customers).
_SPREADS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _value_spread(store: CustomerStore, group_by: str, codes: np.ndarray, keep: np.ndarray | None) -> list:
    """P10, P25, median, P75 and P90 of predicted value per group (predictor.customers.tiers), over the
    table's cached value order; the whole table's once per grouping."""
    cached = _SPREADS.setdefault(store, {})
    if keep is None and group_by in cached:
        return cached[group_by]
    spread = quantiles_by_group(store.numbers["predicted_value"], codes if keep is None else np.where(keep, codes, -1),
                                len(store.labels[group_by].categories) + 1, store.orders["predicted_value"])
    if keep is None:
        cached[group_by] = spread
    return spread


def segment_summary(args: SegmentSummaryArgs, deps: ToolDeps) -> SegmentSummaryResult:
    """Customer counts, revenue (trailing 12 months and all history), predicted value, value at risk
    and mean churn risk, grouped by tier (default), lifecycle, segment or country, for all customers
    or those passing the filter. Groups come largest value first.
    """
    store = deps.customers
    group_by = args.group_by or "tier"
    labels = store.labels[group_by]
    codes = labels.codes.astype(np.int64) + 1  # 0 = missing label
    keep = store.mask(customer_filter(args, deps))
    spread = _value_spread(store, group_by, codes, keep)
    if keep is not None:
        codes = codes[keep]
    k = len(labels.categories) + 1
    total = int(len(codes))

    def sums(column: str) -> np.ndarray:
        values = store.numbers.get(column)
        if values is None:
            return np.zeros(k)
        values = values if keep is None else values[keep]
        return np.bincount(codes, weights=np.nan_to_num(values), minlength=k)

    counts = np.bincount(codes, minlength=k)
    revenue, history, predicted, risk = (sums(c) for c in ("revenue_12m", "historical_value", "predicted_value",
                                                           "value_at_risk"))
    churn = sums("churn_risk")
    names = ["unknown", *[str(c) for c in labels.categories]]
    groups = [SegmentGroup(group=names[g], customers=int(counts[g]), share=round(counts[g] / total, 4),
                           revenue_12m=round(revenue[g], 2), historical_value=round(history[g], 2),
                           predicted_value=round(predicted[g], 2), value_at_risk=round(risk[g], 2),
                           mean_churn_risk=round(churn[g] / counts[g], 4), predicted_value_quantiles=spread[g])
              for g in range(k) if counts[g]]
    if group_by == "tier":
        rank = {t: i for i, t in enumerate(TIERS)}
        groups.sort(key=lambda g: rank.get(g.group, len(rank)))
    else:
        groups.sort(key=lambda g: -(g.revenue_12m + g.predicted_value))
    return SegmentSummaryResult(group_by=group_by, total_customers=total,
                                currency=deps.settings.currency_symbol, groups=groups)


# ---------------------------------------------------------------- score_customer


def _tier_for(store: CustomerStore, value: float | None) -> str | None:
    if value is None:
        return None
    floors = store.tier_floors()
    for tier in TIERS[:-1]:
        if tier in floors and value >= floors[tier]:
            return tier
    return TIERS[-1]


EARLIEST_ORDER, LATEST_ORDER = pd.Timestamp("1970-01-01"), pd.Timestamp("2100-01-01")


def score_customer(args: ScoreCustomerArgs, deps: ToolDeps) -> ScoreCustomerResult:
    """Score an order history sent in the request (a new customer, or an existing one with new orders)
    with the trained model, without retraining: predicted value over the horizon with a P10-P90
    interval, churn risk, expected next-order date, drivers in words, and the tier the resulting
    customer value would fall in among current customers.
    """
    orders = pd.DataFrame([o.model_dump() for o in args.orders])
    try:
        orders["timestamp"] = pd.to_datetime(orders["timestamp"], format="ISO8601").dt.tz_localize(None)
        as_of = pd.Timestamp(args.as_of).tz_localize(None) if args.as_of else None
    except (ValueError, TypeError) as exc:
        raise ToolFailure("invalid_arguments", f"Unparseable date in orders or as_of: {exc}.",
                          "Use ISO 8601 dates such as 2011-05-17 or 2011-05-17T10:30:00.") from exc
    stamps = list(orders["timestamp"]) + ([as_of] if as_of is not None else [])
    if any(pd.isna(t) or not EARLIEST_ORDER <= t <= LATEST_ORDER for t in stamps):
        raise ToolFailure("invalid_arguments", "An order date or as_of is missing or outside 1970-2100.",
                          "Use real ISO 8601 dates such as 2011-05-17.")
    orders = orders.dropna(axis=1, how="all")
    customer_id = args.customer_id or "new"
    scores = deps.scorer.score_orders(orders, customer_id=customer_id, as_of=as_of)
    scores = {k: jsonable(v) for k, v in dict(scores).items()}
    predicted, revenue = scores.get("predicted_value"), scores.get("revenue_12m")
    value = None if predicted is None else predicted + (revenue or 0.0)
    try:
        tier = _tier_for(deps.customers, value)
    except ToolFailure:
        tier = None  # no customers table yet: the scores still stand on their own
    return ScoreCustomerResult(
        customer_id=str(customer_id), as_of=scores.get("as_of"), horizon_days=scores.get("horizon_days"),
        currency=deps.settings.currency_symbol, predicted_value=predicted, value_p10=scores.get("value_p10"),
        value_p90=scores.get("value_p90"), churn_risk=scores.get("churn_risk"),
        expected_next_order=scores.get("expected_next_order"), next_order_days=scores.get("next_order_days"),
        historical_value=scores.get("historical_value"), orders=scores.get("orders"),
        recency_days=scores.get("recency_days"), customer_value=None if value is None else round(value, 2),
        estimated_tier=tier, drivers=[str(d) for d in scores.get("drivers") or []])
