"""`valuedesk check-data`, also run at the start of every build: can this log support the predictions?

The model-health report's data minimums (predictor/model/health.py `sufficiency`: customers with orders,
history against the horizon, repeat buyers; Klaviyo's 500 customers and 180 days, Segment's history of 3x
the prediction window) plus what a log can lack before training: product information (search, categories
and suggestions need it), cancellations (a log of mostly returns misstates spend), and gaps in the dates
(a missing month reads as churn). Each problem names the predictions it weakens. Below a hard minimum the
status is `refuse`: a build stops there unless the settings say `data_check: warn`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from predictor.model.features import CustomerHistory
from predictor.model.health import HealthThresholds, sufficiency

MIN_PRODUCT_COVERAGE = 0.5  # share of lines with a product name: below it, product-aware features are weak
MAX_CANCELLATION_SHARE = 0.25  # share of lines that are cancellations or returns
MAX_GAP_DAYS = 31  # days without a single order inside the log


def check_data(transactions: pd.DataFrame, history: CustomerHistory, horizon_days: int,
               limits: HealthThresholds) -> dict:
    """Facts, problems (level, reason, weak predictions) and status (ok, warn, refuse) of a cleaned log."""
    base = sufficiency(history, history.end, horizon_days, limits)
    weak_by_reason = {"customers with orders": ["every prediction", "tiers", "churn calibration"],
                      "days of history": ["every prediction"], "no past window": ["the spend level", "intervals"],
                      "3x the forecast": ["the spend level", "seasonality"],
                      "ordered twice": ["churn risk", "next-order timing"]}
    problems = [{**p, "weak": next((w for key, w in weak_by_reason.items() if key in p["reason"]), [])}
                for p in base["problems"]]
    facts = {k: base[k] for k in ("customers_with_orders", "history_days", "horizon_days", "repeat_buyer_share")}
    facts.update(_log_facts(transactions))
    problems += _log_problems(facts)
    status = ("refuse" if any(p["level"] == "refuse" for p in problems)
              else "warn" if problems else "ok")
    return {**facts, "status": status, "problems": problems,
            "minimums": {**base["minimums"], "product_coverage": MIN_PRODUCT_COVERAGE,
                         "max_cancellation_share": MAX_CANCELLATION_SHARE, "max_gap_days": MAX_GAP_DAYS}}


def _log_facts(tx: pd.DataFrame) -> dict:
    names = tx["product_name"] if "product_name" in tx else pd.Series("", index=tx.index)
    named = names.notna() & names.astype(str).str.strip().ne("")
    cancelled = tx["is_cancellation"] if "is_cancellation" in tx else pd.Series(False, index=tx.index)
    days = pd.to_datetime(tx["timestamp"]).dt.normalize().drop_duplicates().sort_values()
    gaps = days.diff().dt.days.dropna()
    longest = int(gaps.max() - 1) if len(gaps) else 0
    start = days.iloc[0] if len(days) else None
    return {"lines": int(len(tx)), "product_coverage": round(float(named.mean()), 4) if len(tx) else 0.0,
            "cancellation_share": round(float(np.mean(cancelled)), 4) if len(tx) else 0.0,
            "longest_gap_days": max(longest, 0),
            "longest_gap_from": str((days.iloc[int(np.argmax(gaps.to_numpy()))]).date()) if longest > 0 else None,
            "first_day": str(start.date()) if start is not None else None,
            "last_day": str(days.iloc[-1].date()) if len(days) else None}


def _log_problems(facts: dict) -> list[dict]:
    problems = []
    if facts["product_coverage"] < MIN_PRODUCT_COVERAGE:
        problems.append({"level": "warn", "weak": ["profile search by products", "categories", "product suggestions"],
                         "reason": f"{facts['product_coverage']:.0%} of lines name a product (at least "
                                   f"{MIN_PRODUCT_COVERAGE:.0%} expected): attach a products file (--products) or map "
                                   "product_name"})
    if facts["cancellation_share"] > MAX_CANCELLATION_SHARE:
        problems.append({"level": "warn", "weak": ["spend", "value tiers"],
                         "reason": f"{facts['cancellation_share']:.0%} of lines are cancellations or returns "
                                   f"(over {MAX_CANCELLATION_SHARE:.0%}): check the refund mapping"})
    if facts["longest_gap_days"] > MAX_GAP_DAYS:
        problems.append({"level": "warn", "weak": ["churn risk", "recency"],
                         "reason": f"no order at all for {facts['longest_gap_days']} days after "
                                   f"{facts['longest_gap_from']}: a missing export month reads as customers leaving"})
    return problems


def format_check(report: dict) -> str:
    lines = [f"Data check: {report['status']}. {report['customers_with_orders']:,} customers with orders, "
             f"{report['history_days']} days of history ({report['first_day']} to {report['last_day']}) for a "
             f"{report['horizon_days']}-day forecast, {report['repeat_buyer_share']:.0%} repeat buyers, "
             f"{report['product_coverage']:.0%} of lines name a product, {report['cancellation_share']:.0%} "
             f"cancellations, longest gap {report['longest_gap_days']} days."]
    for p in report["problems"]:
        weak = f" Weak: {', '.join(p['weak'])}." if p.get("weak") else ""
        lines.append(f"  {p['level']}: {p['reason']}.{weak}")
    m = report["minimums"]
    lines.append(f"  (minimums: {m['customers_with_orders']:,} customers with orders and {m['history_days']} days to "
                 f"predict at all; history of 3x the forecast and {m['repeat_buyer_share']:.0%} repeat buyers for "
                 f"a sound level and churn; {m['product_coverage']:.0%} of lines with a product)")
    return "\n".join(lines)
