"""The model-health card shown beside a model_health answer: the verdict, the quality band with its scale,
the last closed window's figures, the estimates for the window in progress, drift and data sufficiency,
and the lift by decile (predicted against realised spend and churn). Every figure is the tool's."""

from __future__ import annotations

from html import escape
from typing import Any

from predictor.figures import money, pct


def _fig(label: str, value: Any) -> str:
    return f"<div class='vd-fig'><span>{escape(label)}</span><b>{escape(str(value))}</b></div>"


def _lift_table(rows: list[dict[str, Any]], currency: str) -> str:
    if not rows:
        return ""
    head = ("<tr><th>Decile</th><th>Predicted spend</th><th>Realised spend</th><th>Predicted churn</th>"
            "<th>Realised churn</th></tr>")
    body = "".join(
        f"<tr><td>{r.get('decile')}</td><td>{money(r.get('mean_predicted'), currency)}</td>"
        f"<td>{money(r.get('mean_spend'), currency)}</td><td>{pct(r.get('churn_risk_predicted'))}</td>"
        f"<td>{pct(r.get('churn_rate_realised'))}</td></tr>" for r in rows)
    return f"<table class='vd-lift'>{head}{body}</table>"


def health_card(result: dict[str, Any], currency: str = "£") -> str:
    """One model_health result as an HTML card."""
    rec, closed, est = (result.get(k) or {} for k in ("recommendation", "backtest", "estimated"))
    drift, data, model = (result.get(k) or {} for k in ("drift", "sufficiency", "model"))
    band = result.get("band") or "not judged"
    verdict = ("Retrain due" if rec.get("retrain_due") else "Do not use" if rec.get("usable") is False
               else "Watch" if rec.get("reasons") else "Holding up")
    figures = [("Quality band", f"{band} ({pct(result.get('quality'))})" if result.get("quality") is not None else band)]
    if closed.get("available"):
        figures += [("Churn AUC, last window", f"{closed['churn_auc']:.3f}"),
                    ("Total vs actual", f"{closed['total_error']:+.1%}" if closed.get("total_error") is not None else "n/a"),
                    ("P10-P90 coverage", pct(closed.get("interval_coverage_p10_p90")))]
    if est.get("available"):
        figures += [("Estimated MAE now (DLE)", money(est.get("mae"), currency)),
                    ("Estimated AUC now (CBPE)", f"{est['churn_auc']:.3f}")]
    if drift:
        figures.append(("Drifted features", f"{drift.get('drifted_features')} of {drift.get('tested_features')}"))
    if data:
        figures.append(("Data", str(data.get("status"))))
    reasons = "".join(f"<li>{escape(str(r.get('reason')))}</li>" for r in rec.get("reasons") or [])
    window = closed.get("window") or {}
    caption = (f"Last closed window {window.get('start')} to {window.get('end')}. " if window else "") + \
        str(result.get("band_scale") or "")
    return (f"<div class='vd-card vd-health'><h3>Model health: {escape(verdict)}</h3>"
            + (f"<p>{escape(str(rec.get('summary') or ''))}</p>" if not reasons or not rec.get("retrain_due")
               else "") + (f"<ul>{reasons}</ul>" if reasons else "")
            + f"<div class='vd-figs'>{''.join(_fig(label, value) for label, value in figures)}</div>"
            + _lift_table(closed.get("lift_by_decile") or [], currency)
            + f"<p class='vd-caption'>{escape(caption)}</p>"
            + f"<p class='vd-caption'>Model {escape(str(model.get('version')))}, data to "
              f"{escape(str(model.get('trained_through')))}, {escape(str(model.get('horizon_days')))}-day forecasts.</p>"
            + "</div>")
