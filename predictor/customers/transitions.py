"""Tier transitions between two builds: who moved tier, which way, and the inputs that moved them."""

from __future__ import annotations

import pandas as pd

from predictor.customers.tiers import TIER_ORDER


_REASON_INPUTS = [("revenue_12m", "12-month revenue"), ("predicted_value", "predicted value"),
                  ("orders", "orders"), ("recency_days", "days since last order"), ("churn_risk", "churn risk")]


def _money(x: float) -> str:
    return f"{'+' if x >= 0 else '-'}{abs(x):,.0f}"


def tier_transitions(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Customers whose tier changed between two customer tables, with the reason.

    Both frames need customer_id, tier, customer_value, revenue_12m, predicted_value; orders,
    recency_days and churn_risk are used when present. Customers only in `new` appear with
    old_tier NA ("new customer"); customers only in `old` with new_tier NA ("removed").
    The reason names the inputs that changed most: customer_value = revenue_12m +
    predicted_value, so its change splits exactly into those two; when neither changed the
    move came from other customers shifting the quantile thresholds.
    """
    tier_rank = {t: i for i, t in enumerate(TIER_ORDER)}
    cols = ["customer_id", "tier", "customer_value"] + [c for c, _ in _REASON_INPUTS]
    a = old[[c for c in cols if c in old]].set_index("customer_id")
    b = new[[c for c in cols if c in new]].set_index("customer_id")
    joined = a.merge(b, how="outer", left_index=True, right_index=True, suffixes=("_old", "_new"))
    tier_old = joined["tier_old"].astype("string")
    tier_new = joined["tier_new"].astype("string")
    moved = (tier_old != tier_new).fillna(True) & ~(tier_old.isna() & tier_new.isna())
    rows = []
    for cid, r in joined.loc[moved].iterrows():
        to, tn = r["tier_old"], r["tier_new"]
        if pd.isna(to):
            direction, reason = "new", "new customer"
        elif pd.isna(tn):
            direction, reason = "removed", "no longer in the data"
        else:
            direction = "up" if tier_rank.get(tn, 99) < tier_rank.get(to, 99) else "down"
            reason = _reason(r)
        rows.append({"customer_id": cid, "old_tier": to, "new_tier": tn, "direction": direction,
                     "old_value": r.get("customer_value_old"), "new_value": r.get("customer_value_new"),
                     "reason": reason})
    out = pd.DataFrame(rows, columns=["customer_id", "old_tier", "new_tier", "direction", "old_value",
                                      "new_value", "reason"])
    return out.astype({"customer_id": "string", "old_tier": "string", "new_tier": "string",
                       "direction": "string", "old_value": "float64", "new_value": "float64",
                       "reason": "string"}).sort_values("customer_id").reset_index(drop=True)


def _reason(r: pd.Series) -> str:
    money = []
    for col, label in _REASON_INPUTS[:2]:
        if f"{col}_old" in r and f"{col}_new" in r:
            d = float(r[f"{col}_new"] or 0) - float(r[f"{col}_old"] or 0)
            if abs(d) >= 0.5:
                money.append((abs(d), f"{label} {_money(d)}"))
    money.sort(reverse=True)
    parts = [text for _, text in money]
    if "orders_old" in r and "orders_new" in r and r["orders_new"] != r["orders_old"]:
        d = int(r["orders_new"]) - int(r["orders_old"])
        parts.append(f"{d:+d} orders")
    if "churn_risk_old" in r and "churn_risk_new" in r:
        d = float(r["churn_risk_new"]) - float(r["churn_risk_old"])
        if abs(d) >= 0.05:
            parts.append(f"churn risk {r['churn_risk_old']:.0%} -> {r['churn_risk_new']:.0%}")
    if not money:
        parts.insert(0, "value unchanged; tier thresholds moved as other customers' values changed")
    return "; ".join(parts)
