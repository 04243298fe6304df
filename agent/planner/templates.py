"""Answer templates of the offline planner: one function per tool, `(result, arguments, settings) -> text`.

Every figure printed here is a field of the tool result (or an argument of the call), formatted with
rounding the grounding check accepts, so a planner answer never carries an unverified number.
Customer text (profile snippets, product names) is quoted as data.
"""

from __future__ import annotations

from typing import Any

from predictor.figures import money, name, pct, plural, roi
from predictor.settings import Settings
from predictor.campaigns.wording import playbook_label
from tools.functions.campaigns import campaign_label  # a playbook id in words: "Win-back", not win_back

# Figure names come from the one glossary (predictor.figures): the same column never has two names.
SORT_LABEL = {key: name(key) for key in ("value_at_risk", "predicted_value", "historical_value", "churn_risk",
                                         "customer_value")}
MAX_ROWS_SHOWN = 20
VALUE_AT_RISK_NOTE = (f"({name('value_at_risk').capitalize()} is {name('churn_risk')} x {name('value_if_retained')}, "
                      "the spend if they do order again, so it can be above predicted value, which is already "
                      "weighted by the chance that they order at all.)")


def _clip(text: str, n: int) -> str:
    """Cut at a word boundary, so a figure in customer text is never cut into a different one."""
    if len(text) <= n:
        return text
    return text[:n].rsplit(" ", 1)[0] + " ..."


def _threshold(value: Any) -> str:
    """A churn threshold the user set, as they set it: 0.005 reads "0.5%", not "under 1%"."""
    shown = pct(value)
    return f"{float(value) * 100:g}%" if shown.startswith(("under", "over")) else shown


def describe_filter(args: dict[str, Any], cur: str) -> str:
    parts = []
    if args.get("tiers"):
        parts.append("/".join(args["tiers"]))
    if args.get("segments"):
        parts.append("/".join(args["segments"]) + " segment")
    if args.get("lifecycle"):
        parts.append("/".join(args["lifecycle"]))
    if args.get("at_risk") is True:
        parts.insert(0, "at-risk")
    text = " ".join(parts + ["customers"]) + (" not at risk" if args.get("at_risk") is False else "")
    if args.get("countries"):
        cs = args["countries"]
        # no count of our own for a long list: every figure in an answer is one of the tool's
        text += " in " + (", ".join(cs) if len(cs) <= 4 else ", ".join(cs[:3]) + " and the other countries asked for")
    cond = []
    if args.get("min_churn_risk") is not None:
        cond.append(f"churn risk at least {_threshold(args['min_churn_risk'])}")
    if args.get("max_churn_risk") is not None:
        cond.append(f"churn risk at most {_threshold(args['max_churn_risk'])}")
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
    figures = [f"{name('value_at_risk')} {money(c.get('value_at_risk'), cur)}",
               f"{name('churn_risk')} {pct(c.get('churn_risk'))}",
               f"{name('predicted_value')} {money(c.get('predicted_value'), cur)}"]
    if sort_by in ("historical_value", "customer_value"):
        figures.append(f"{name(sort_by)} {money(c.get(sort_by), cur)}")
    return f"{i}. Customer {c['customer_id']} ({tags}): " + ", ".join(figures)


def find_customers(result: dict, args: dict, settings: Settings) -> str:
    cur = result.get("currency") or settings.currency_symbol
    who = describe_filter(args, cur)
    total, rows = result["total_matching"], result["customers"]
    if total == 0:
        return f"No {who} match." + _narrowing_text(result.get("narrowing"))
    sort_by = result.get("sort_by", "value_at_risk")
    shown = rows[:MAX_ROWS_SHOWN]
    if total == 1:
        head = f"One {who.replace('customers', 'customer', 1)} matches:"
    else:
        head = f"{total:,} {who} match. The top {len(rows)} by {SORT_LABEL.get(sort_by, sort_by)}:"
    lines = [head] + [_row(i + 1, c, sort_by, cur) for i, c in enumerate(shown)]
    if len(shown) < len(rows):
        lines.append("(The list goes on; ask me to export it to get every row as a CSV file.)")
    if any((c.get("value_at_risk") or 0) > (c.get("predicted_value") or 0) for c in shown):
        lines.append(VALUE_AT_RISK_NOTE)
    if result.get("horizon_days"):
        lines.append(f"Predicted value and churn risk cover the next {result['horizon_days']} days.")
    return "\n".join(lines)


def _narrowing_text(steps: list[dict[str, Any]] | None) -> str:
    """Which filter step emptied the list: "Of 4,333 customers, 43 pass tier in Platinum; none of those
    passes at risk." and what to relax."""
    if not steps:
        return " Try a wider filter (another tier, country or a lower churn threshold)."
    first, *rest = steps
    kept = [f"{s['customers']:,} pass {s['step']}" for s in rest if s["customers"] > 0]
    empty = next((s["step"] for s in rest if s["customers"] == 0), None)
    text = f" Of {first['customers']:,} customers, " + ("; then ".join(kept) if kept else "none")
    if empty and kept:
        text += f"; none of those passes {empty}."
    elif empty:
        text = f" Of {first['customers']:,} customers, none passes {empty}."
    return text + (f" Relax '{empty}' to see the nearest customers." if empty else "")


def segment_summary(result: dict, args: dict, settings: Settings) -> str:
    cur = result.get("currency") or settings.currency_symbol
    group = result["group_by"]
    who = describe_filter(args, cur)
    lines = [f"{result['total_customers']:,} {who}, by {group}:"]
    for g in result["groups"][:25]:
        lines.append(f"- {g['group']}: {g['customers']:,} customer{'' if g['customers'] == 1 else 's'} "
                     f"({pct(g['share'])}), {name('revenue_12m')} "
                     f"{money(g['revenue_12m'], cur)}, {name('predicted_value')} {money(g['predicted_value'], cur)}, "
                     f"{name('value_at_risk')} {money(g['value_at_risk'], cur)}, {name('mean_churn_risk')} "
                     f"{pct(g['mean_churn_risk'])}")
    if len(result["groups"]) > 25:
        lines.append("(Smaller groups are left out here; the tool result has all of them.)")
    return "\n".join(lines)


def get_customer(result: dict, args: dict, settings: Settings) -> str:
    cur = result.get("currency") or settings.currency_symbol
    c = result
    flagged = "at risk" if c.get("at_risk") else ("not at risk" if c.get("at_risk") is False else None)
    tags = ", ".join(x for x in (f"{c['tier']} tier" if c.get("tier") else None,
                                 f"RFM segment {c['segment']}" if c.get("segment") else None,
                                 f"lifecycle {c['lifecycle']}" if c.get("lifecycle") else None,
                                 flagged, c.get("country")) if x)
    horizon = c.get("horizon_days")
    lines = [f"Customer {c['customer_id']} ({tags}):",
             f"- Predicted value {money(c.get('predicted_value'), cur)}"
             + (f" over the next {horizon} days" if horizon else "")
             + (f" (likely range {money(c.get('value_p10'), cur)} to {money(c.get('value_p90'), cur)})"
                if c.get("value_p10") is not None and c.get("value_p90") is not None else ""),
             f"- Churn risk {pct(c.get('churn_risk'))}; value at risk {money(c.get('value_at_risk'), cur)}",
             f"- {name('historical_value').capitalize()} {money(c.get('historical_value'), cur)} (net of "
             f"cancellations) over {c.get('orders')} order{'' if c.get('orders') == 1 else 's'}"
             + (f"; last order {c['last_order']}" if c.get("last_order") else "")
             + (f"; next order expected around {c['expected_next_order']}" if c.get("expected_next_order") else
                "; no next order expected soon")]
    if c.get("value_at_risk_explained"):
        lines.append(f"- {c['value_at_risk_explained']}")
    if c.get("drivers"):
        lines.append("- Why: " + "; ".join(c["drivers"][:3]))
    if c.get("top_products"):
        lines.append("- Buys most: " + "; ".join(f'"{p}"' for p in c["top_products"][:3]))
    if c.get("suggested_products"):
        lines.append("- Suggested products: " + "; ".join(f'"{p}"' for p in c["suggested_products"][:3]))
    nba = c.get("next_best_action")
    if nba:
        lines.append(f"- Next best action: {campaign_label(nba['campaign'])}"
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
    goal = playbook_label(result["goal"]) if result.get("goal") else None  # "win-back", not win_back
    head = f"Campaign plan for {who}" + (f" ({goal})" if goal else "") + (
        f" with a budget of {money(budget, cur)}" if budget is not None else "") + ":"
    if not camps:
        notes = " ".join(result.get("notes") or [])
        return f"{head} no campaign has a positive expected net value for this audience. {notes}".strip()
    lines = [head]
    for c in camps[:8]:
        line = (f"- {c.get('label') or campaign_label(c['name'])}" + (f" ({c['channel']}" + (f", {c['offer_text']}" if c.get("offer_text") else "") + ")"
                                    if c.get("channel") else "")
                + f": {c['audience_size']:,} customers"
                + (f" plus a control group of {c['control_group_size']:,}" if c.get("control_group_size") else "")
                + f", {name('cost')} {money(c['cost'], cur)}, {name('expected_incremental_revenue')} "
                f"{money(c['expected_incremental_revenue'], cur)}, {name('expected_net_value')} "
                f"{money(c['expected_net_value'], cur)}")
        if c.get("roi") is not None:
            line += f", {name('roi')} {roi(c['roi'])} of its cost"
        lines.append(line)
    lines.append(f"Total cost {money(result['total_cost'], cur)}; expected net value "
                 f"{money(result['expected_net_value'], cur)}.")
    if result.get("assumptions"):
        lines.append("Assumptions: " + "; ".join(result["assumptions"][:2]) + ".")
    for note in (result.get("notes") or [])[:2]:
        lines.append(f"Note: {note}")
    lines.append("Ask me to export the audience to get the CSV.")
    return "\n".join(lines)


def export_audience(result: dict, args: dict, settings: Settings) -> str:
    cols = ", ".join(result.get("columns") or [])
    # A campaign export lists each campaign's control group too: say so, or a marketer mails them all.
    control = result.get("control_rows") or 0
    rows = plural(result["rows"], "customer")
    note = (f" {control:,} of them (group 'control') are the plan's control groups: do not contact them; their "
            "orders against the treated customers' measure the lift." if control else "")
    return (f"Exported {rows} to {result.get('file') or result['path']} (columns: {cols}).{note} "
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
    """Quality in words first (the tool's `quality` sentences, each with its figure), then what the model
    was trained on; the raw metrics stay in the tool result and appear here only inside those sentences."""
    r = result
    rng = r.get("data_range") or {}
    win = r.get("training_window") or {}
    lines = list(r.get("quality") or [])
    if not ((r.get("evaluation") or {}).get("models")):
        lines.append("No comparison against the baselines (BG/NBD + Gamma-Gamma, last-period spend) is stored with "
                     "this model; `valuedesk evaluate` runs one on a held-out period.")
    lines.append(f"Model {r.get('version') or 'unknown'}, trained {r.get('trained_at') or 'at an unknown time'}"
                 + (f" on data from {rng.get('start')} to {rng.get('end')}" if rng else "")
                 + (f" (training cutoffs {win.get('first_cutoff')} to {win.get('last_cutoff')})" if win else "")
                 + (f"; it predicts the next {r['horizon_days']} days" if r.get("horizon_days") else "") + ".")
    if r.get("customers_scored") is not None:
        lines.append(f"{r['customers_scored']:,} customers are scored with {r.get('features')} features.")
    for w in r.get("warnings") or []:
        lines.append(f"Warning: {w}")
    return "\n".join(lines)


def model_health(result: dict, args: dict, settings: Settings) -> str:
    """The verdict first (usable, retrain due or not, with every reason), then the quality band of the last
    closed window with its figures and thresholds, the estimates for the window in progress, drift and data."""
    r, currency = result, settings.currency_symbol
    rec, closed, est, drift, data = (r.get(k) or {} for k in ("recommendation", "backtest", "estimated", "drift",
                                                             "sufficiency"))
    model = r.get("model") or {}
    lines = [rec.get("summary") or "No recommendation was computed.",
             f"Model {model.get('version')}, data to {model.get('trained_through')}, "
             f"{model.get('horizon_days')}-day forecasts."]
    if closed.get("available"):
        window = closed.get("window") or {}
        lines.append(f"On the last closed window ({window.get('start')} to {window.get('end')}) the model's quality "
                     f"is {closed.get('band')} ({closed.get('quality', 0):.0%}): churn AUC {closed.get('churn_auc'):.3f}, "
                     f"predicted total {closed.get('total_error', 0):+.1%} off the actual, "
                     f"{closed.get('interval_coverage_p10_p90', 0):.0%} of customers inside their P10-P90 range.")
        lines.append(f"({closed.get('scale')})")
    else:
        lines.append(f"No closed window to judge it on: {closed.get('reason')}")
    if est.get("available"):
        lines.append(f"Estimated for the window in progress ({est['window']['start']} to {est['window']['end']}, "
                     f"before its outcomes are in): spend error {currency}{est['mae']:,.2f} per customer (DLE; "
                     f"{currency}{est['learnt_on']['realised_mae']:,.2f} on the last closed window) and churn AUC "
                     f"{est['churn_auc']:.3f} (CBPE).")
    if drift:
        names = ", ".join(drift.get("drifted") or [])
        lines.append(f"{drift.get('drifted_features')} of {drift.get('tested_features')} features have drifted "
                     f"since {((drift.get('reference') or {}).get('cutoff'))}" + (f" ({names})." if names else "."))
    last = r.get("last_retrain")
    if last:
        lines.append(f"Last retrain attempt: {'promoted' if last.get('promoted') else 'not promoted'} ({last.get('reason')}).")
    if data:
        lines.append(f"Data: {data.get('customers_with_orders', 0):,} customers with orders, {data.get('history_days')} "
                     f"days of history, {data.get('repeat_buyer_share', 0):.0%} repeat buyers ({data.get('status')}).")
        lines += [f"- {p['level']}: {p['reason']}" for p in data.get("problems") or []]
    return "\n".join(lines)
