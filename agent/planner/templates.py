"""Answer templates of the offline planner: one function per tool, `(result, arguments, settings) -> text`.

Every figure printed here is a field of the tool result (or an argument of the call), formatted with
rounding the grounding check accepts, so a planner answer never carries an unverified number.
Customer text (profile snippets, product names) is quoted as data.
"""

from __future__ import annotations

from typing import Any

from predictor.settings import Settings

SORT_LABEL = {"value_at_risk": "value at risk", "predicted_value": "predicted value",
              "historical_value": "lifetime revenue", "churn_risk": "churn risk", "customer_value": "customer value"}
MAX_ROWS_SHOWN = 20


def _clip(text: str, n: int) -> str:
    """Cut at a word boundary, so a figure in customer text is never cut into a different one."""
    if len(text) <= n:
        return text
    return text[:n].rsplit(" ", 1)[0] + " ..."


def money(value: Any, cur: str) -> str:
    if value is None:
        return "n/a"
    v = float(value)
    return f"{'-' if v < 0 else ''}{cur}{abs(v):,.0f}" if abs(v) >= 1000 else f"{'-' if v < 0 else ''}{cur}{abs(v):,.2f}"


def pct(value: Any) -> str:
    return "n/a" if value is None else f"{float(value) * 100:.0f}%"


def describe_filter(args: dict[str, Any], cur: str) -> str:
    parts = []
    if args.get("tiers"):
        parts.append("/".join(args["tiers"]))
    if args.get("segments"):
        parts.append("/".join(args["segments"]) + " segment")
    if args.get("lifecycle"):
        parts.append("/".join(args["lifecycle"]))
    text = " ".join(parts + ["customers"])
    if args.get("countries"):
        cs = args["countries"]
        text += " in " + (", ".join(cs) if len(cs) <= 4 else f"{len(cs)} countries")
    cond = []
    if args.get("min_churn_risk") is not None:
        cond.append(f"churn risk at least {pct(args['min_churn_risk'])}")
    if args.get("max_churn_risk") is not None:
        cond.append(f"churn risk at most {pct(args['max_churn_risk'])}")
    if args.get("min_value") is not None:
        cond.append(f"predicted value at least {money(args['min_value'], cur)}")
    if args.get("max_value") is not None:
        cond.append(f"predicted value at most {money(args['max_value'], cur)}")
    if args.get("min_recency_days") is not None:
        cond.append(f"no order for at least {args['min_recency_days']:.0f} days")
    if args.get("max_recency_days") is not None:
        cond.append(f"an order within the last {args['max_recency_days']:.0f} days")
    if cond:
        text += " with " + " and ".join(cond)
    return text


def _row(i: int, c: dict[str, Any], sort_by: str, cur: str) -> str:
    tags = ", ".join(x for x in (c.get("tier"), c.get("segment"), c.get("lifecycle"), c.get("country")) if x)
    figures = [f"value at risk {money(c.get('value_at_risk'), cur)}", f"churn risk {pct(c.get('churn_risk'))}",
               f"predicted value {money(c.get('predicted_value'), cur)}"]
    if sort_by == "historical_value":
        figures.append(f"lifetime revenue {money(c.get('historical_value'), cur)}")
    if sort_by == "customer_value":
        figures.append(f"customer value {money(c.get('customer_value'), cur)}")
    return f"{i}. Customer {c['customer_id']} ({tags}): " + ", ".join(figures)


def find_customers(result: dict, args: dict, settings: Settings) -> str:
    cur = result.get("currency") or settings.currency_symbol
    who = describe_filter(args, cur)
    total, rows = result["total_matching"], result["customers"]
    if total == 0:
        return f"No {who} match. Try a wider filter (another tier, country or a lower churn threshold)."
    sort_by = result.get("sort_by", "value_at_risk")
    shown = rows[:MAX_ROWS_SHOWN]
    if total == 1:
        head = f"One {who.replace('customers', 'customer', 1)} matches:"
    else:
        head = f"{total:,} {who} match. The top {len(rows)} by {SORT_LABEL.get(sort_by, sort_by)}:"
    lines = [head] + [_row(i + 1, c, sort_by, cur) for i, c in enumerate(shown)]
    if len(shown) < len(rows):
        lines.append("(The list goes on; ask me to export it to get every row as a CSV file.)")
    if result.get("horizon_days"):
        lines.append(f"Predicted value and churn risk cover the next {result['horizon_days']} days.")
    return "\n".join(lines)


def segment_summary(result: dict, args: dict, settings: Settings) -> str:
    cur = result.get("currency") or settings.currency_symbol
    group = result["group_by"]
    who = describe_filter(args, cur)
    lines = [f"{result['total_customers']:,} {who}, by {group}:"]
    for g in result["groups"][:25]:
        lines.append(f"- {g['group']}: {g['customers']:,} customers ({pct(g['share'])}), revenue over the last year "
                     f"{money(g['revenue_12m'], cur)}, predicted value {money(g['predicted_value'], cur)}, "
                     f"value at risk {money(g['value_at_risk'], cur)}, mean churn risk {pct(g['mean_churn_risk'])}")
    if len(result["groups"]) > 25:
        lines.append("(Smaller groups are left out here; the tool result has all of them.)")
    return "\n".join(lines)


def get_customer(result: dict, args: dict, settings: Settings) -> str:
    cur = result.get("currency") or settings.currency_symbol
    c = result
    tags = ", ".join(x for x in (f"{c['tier']} tier" if c.get("tier") else None, c.get("segment"),
                                 c.get("lifecycle"), c.get("country")) if x)
    horizon = c.get("horizon_days")
    lines = [f"Customer {c['customer_id']} ({tags}):",
             f"- Predicted value {money(c.get('predicted_value'), cur)}"
             + (f" over the next {horizon} days" if horizon else "")
             + (f" (likely range {money(c.get('value_p10'), cur)} to {money(c.get('value_p90'), cur)})"
                if c.get("value_p10") is not None and c.get("value_p90") is not None else ""),
             f"- Churn risk {pct(c.get('churn_risk'))}; value at risk {money(c.get('value_at_risk'), cur)}",
             f"- Lifetime revenue {money(c.get('historical_value'), cur)} over {c.get('orders')} orders"
             + (f"; last order {c['last_order']}" if c.get("last_order") else "")
             + (f"; next order expected around {c['expected_next_order']}" if c.get("expected_next_order") else
                "; no next order expected soon")]
    if c.get("drivers"):
        lines.append("- Why: " + "; ".join(c["drivers"][:3]))
    if c.get("top_products"):
        lines.append("- Buys most: " + "; ".join(f'"{p}"' for p in c["top_products"][:3]))
    if c.get("suggested_products"):
        lines.append("- Suggested products: " + "; ".join(f'"{p}"' for p in c["suggested_products"][:3]))
    nba = c.get("next_best_action")
    if nba:
        lines.append(f"- Next best action: {nba['campaign']}"
                     + (f" ({nba['offer']})" if nba.get("offer") else "")
                     + (f" via {nba['channel']}" if nba.get("channel") else "")
                     + (f", expected net value {money(nba['expected_net_value'], cur)}"
                        if nba.get("expected_net_value") is not None else ""))
    for note in c.get("notes") or []:
        lines.append(f"- Note: {note}")
    return "\n".join(lines)


def search_profiles(result: dict, args: dict, settings: Settings) -> str:
    cur = settings.currency_symbol
    hits = result.get("hits") or []
    where = describe_filter({k: v for k, v in args.items() if k != "query"}, cur)
    note = result.get("note")  # the index is still being built: say so before any hit
    if not hits:
        none = f"No {where} have profiles close to \"{result.get('query')}\"."
        if note:
            return f"{note}\n\n{none}" if result.get("profiles_searched") else note
        return none
    lines = ([note] if note else []) + [f"{where.capitalize()} whose profiles are closest to \"{result.get('query')}\":"]
    for i, h in enumerate(hits[:MAX_ROWS_SHOWN]):
        tags = ", ".join(x for x in (h.get("tier"), h.get("segment"), h.get("country")) if x)
        lines.append(f"{i + 1}. Customer {h['customer_id']} ({tags}): predicted value "
                     f"{money(h.get('predicted_value'), cur)}, churn risk {pct(h.get('churn_risk'))}; "
                     f"profile: \"{_clip(h.get('snippet') or '', 160)}\"")
    return "\n".join(lines)


def recommend_campaigns(result: dict, args: dict, settings: Settings) -> str:
    cur = result.get("currency") or settings.currency_symbol
    who = describe_filter(args, cur)
    camps = result.get("campaigns") or []
    budget = result.get("budget")
    head = f"Campaign plan for {who}" + (f" ({result['goal']})" if result.get("goal") else "") + (
        f" with a budget of {money(budget, cur)}" if budget is not None else "") + ":"
    if not camps:
        notes = " ".join(result.get("notes") or [])
        return f"{head} no campaign has a positive expected net value for this audience. {notes}".strip()
    lines = [head]
    for c in camps[:8]:
        line = (f"- {c['name']}" + (f" ({c['channel']}" + (f", {c['offer_text']}" if c.get("offer_text") else "") + ")"
                                    if c.get("channel") else "")
                + f": {c['audience_size']:,} customers"
                + (f" plus a control group of {c['control_group_size']:,}" if c.get("control_group_size") else "")
                + f", cost {money(c['cost'], cur)}, expected incremental revenue "
                f"{money(c['expected_incremental_revenue'], cur)}, expected net value {money(c['expected_net_value'], cur)}")
        if c.get("roi") is not None:
            line += f", ROI {c['roi']:.2f}"
        lines.append(line)
    lines.append(f"Total cost {money(result['total_cost'], cur)}; expected net value "
                 f"{money(result['expected_net_value'], cur)}.")
    if result.get("assumptions"):
        lines.append("Assumptions: " + " ".join(result["assumptions"][:2]))
    for note in (result.get("notes") or [])[:2]:
        lines.append(f"Note: {note}")
    lines.append("Ask me to export the audience to get the CSV.")
    return "\n".join(lines)


def export_audience(result: dict, args: dict, settings: Settings) -> str:
    cols = ", ".join(result.get("columns") or [])
    return (f"Exported {result['rows']:,} customers to {result.get('file') or result['path']} (columns: {cols}). "
            "The file stays on this machine for you to download; nothing was sent anywhere.")


def score_customer(result: dict, args: dict, settings: Settings) -> str:
    cur = result.get("currency") or settings.currency_symbol
    r = result
    horizon = r.get("horizon_days")
    lines = [f"Scored the order history ({r.get('orders')} orders, as of {r.get('as_of')}):",
             f"- Predicted value {money(r.get('predicted_value'), cur)}"
             + (f" over the next {horizon} days" if horizon else "")
             + (f" (likely range {money(r.get('value_p10'), cur)} to {money(r.get('value_p90'), cur)})"
                if r.get("value_p10") is not None and r.get("value_p90") is not None else ""),
             f"- Churn risk {pct(r.get('churn_risk'))}"
             + (f"; next order expected around {r['expected_next_order']}" if r.get("expected_next_order")
                else "; no next order expected soon"),
             f"- Estimated tier: {r.get('estimated_tier') or 'unknown'}"]
    if r.get("drivers"):
        lines.append("- Why: " + "; ".join(r["drivers"][:3]))
    return "\n".join(lines)


def model_report(result: dict, args: dict, settings: Settings) -> str:
    r = result
    rng = r.get("data_range") or {}
    win = r.get("training_window") or {}
    lines = [f"Model {r.get('version') or 'unknown'}, trained {r.get('trained_at') or 'at an unknown time'}"
             + (f" on data from {rng.get('start')} to {rng.get('end')}" if rng else "")
             + (f" (training cutoffs {win.get('first_cutoff')} to {win.get('last_cutoff')})" if win else "")
             + (f"; it predicts the next {r['horizon_days']} days" if r.get("horizon_days") else "") + "."]
    models = ((r.get("evaluation") or {}).get("models")) or {}
    names = {"xgboost": "ValueDesk model", "bgnbd_gg": "BG/NBD + Gamma-Gamma", "last_period": "last-period spend"}
    if models:
        ev = r["evaluation"]
        lines.append(f"Holdout evaluation ({ev.get('population')} customers, cutoff {ev.get('cutoff')}):")
        for key, m in models.items():
            bits = [f"Spearman {m['spearman']:.3f}" if m.get("spearman") is not None else None,
                    f"normalized Gini {m['normalized_gini']:.3f}" if m.get("normalized_gini") is not None else None,
                    f"top-decile capture {m['top_decile_capture']:.3f}" if m.get("top_decile_capture") is not None else None,
                    f"MAE {m['mae']:.1f}" if m.get("mae") is not None else None,
                    f"churn AUC {m['churn_auc']:.3f}" if m.get("churn_auc") is not None else None,
                    f"Brier {m['brier']:.3f}" if m.get("brier") is not None else None]
            lines.append(f"- {names.get(key, key)}: " + ", ".join(b for b in bits if b))
    elif r.get("metrics"):
        flat = {k: v for k, v in r["metrics"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if flat:
            lines.append("Validation metrics: " + ", ".join(f"{k} {v:.3f}" for k, v in list(flat.items())[:8]))
        lines.append("No holdout evaluation against the baselines is stored; run `valuedesk evaluate` for one.")
    if r.get("customers_scored") is not None:
        lines.append(f"{r['customers_scored']:,} customers are scored with {r.get('features')} features.")
    for w in (r.get("warnings") or [])[:3]:
        lines.append(f"Warning: {w}")
    return "\n".join(lines)
