"""model_report: how good the model is and what it was trained on, from the model bundle's metadata,
with the quality said in words (each sentence carrying its figure) next to the raw metrics."""

from __future__ import annotations

from typing import Any

from predictor.figures import pct
from tools.deps import ToolDeps, ToolFailure
from tools.functions.rows import jsonable
from tools.health_models import ModelReportArgs, ModelReportResult

BASELINE_NAMES = {"bgnbd_gg": "BG/NBD + Gamma-Gamma", "last_period": "last-period spend"}


def _ranking_words(m: dict[str, Any], window: str) -> str | None:
    gini, capture, spearman = m.get("normalized_gini"), m.get("top_decile_capture"), m.get("spearman")
    if gini is None and capture is None:
        return None
    how = ("ranks customers well" if (gini or 0) >= 0.75 else "ranks customers fairly well" if (gini or 0) >= 0.5
           else "ranks customers only weakly")
    notes = [f"normalized Gini {gini:.3f}" if gini is not None else "",
             f"Spearman {spearman:.3f}" if spearman is not None else ""]
    if capture is not None:
        text = f"It {how}: the top 10% of customers it picks brought in {pct(capture)} of the revenue of {window}"
        notes.insert(0, "picking at random would bring about 10%")
    else:
        text = (f"It {how}: its order of customers by predicted value gets {pct(gini)} of the way from a random "
                f"order to the perfect one, measured on {window}")
    notes = [n for n in notes if n]
    return text + (f" ({'; '.join(notes)})." if notes else ".")


def _churn_words(m: dict[str, Any], window: str) -> list[str]:
    out = []
    auc = m.get("churn_auc")
    if auc is not None:
        out.append(f"Churn risk tells customers apart: given one customer who stopped ordering and one who did "
                   f"not, it gives the higher risk to the one who stopped {pct(auc)} of the time (AUC {auc:.3f}; "
                   "a coin toss would be 50%).")
    better, brier, base = m.get("brier_improvement"), m.get("brier"), m.get("baseline_brier")
    if better is not None and brier is not None and base is not None:
        out.append(f"Its churn risks score {pct(better)} better than always guessing the average churn rate of "
                   f"{pct(m.get('churn_rate'))} (Brier score {brier:.3f} against {base:.3f}; lower is better).")
    elif m.get("churn_log_loss") is not None:
        out.append(f"Churn risk scores a log loss of {m['churn_log_loss']:.3f} on {window} (lower is better; "
                   "no baseline was stored with this model to compare it with).")
    return out


def _baseline_words(models: dict[str, Any]) -> str | None:
    picks = [f"{label} {pct(models[key]['top_decile_capture'])}" for key, label in BASELINE_NAMES.items()
             if (models.get(key) or {}).get("top_decile_capture") is not None]
    return ("On the same window the top 10% picked by the baselines brought in: " + "; ".join(picks) + "."
            if picks else None)


def quality_words(metadata: dict[str, Any]) -> list[str]:
    """The model's quality in words: the stored holdout evaluation when there is one (`valuedesk
    evaluate`), else the build's own validation window; every figure is one of the metrics shown."""
    evaluation = metadata.get("evaluation") or {}
    models = evaluation.get("models") or {}
    if models.get("xgboost"):
        window = f"the {evaluation.get('horizon_days')} days after {evaluation.get('cutoff')}, held out from training"
        words = [_ranking_words(models["xgboost"], window), *_churn_words(models["xgboost"], window),
                 _baseline_words(models)]
        return [w for w in words if w]
    validation, metrics = metadata.get("validation") or {}, metadata.get("metrics") or {}
    if not metrics:
        return []
    window = (f"the {validation['label_days']} days after {validation['cutoff']}, held out while the model was "
              "chosen" if validation.get("label_days") and validation.get("cutoff") else "the validation window")
    return [w for w in (_ranking_words(metrics, window), *_churn_words(metrics, window)) if w]


def model_report(args: ModelReportArgs, deps: ToolDeps) -> ModelReportResult:
    """How good the model is and what it was trained on: `quality` says it in words with the figures,
    then the evaluation against the BG/NBD + Gamma-Gamma and last-period baselines when one was run,
    the validation metrics, the training window, the data's date range and any warnings.
    """
    meta = dict(deps.bundle.metadata)
    try:
        scored = deps.customers.n
    except ToolFailure:
        scored = None
    horizon = deps.bundle.horizon_days
    return ModelReportResult(
        version=jsonable(meta.get("version")), trained_at=str(meta["trained_at"]) if meta.get("trained_at") else None,
        training_window=jsonable(meta.get("training_window")), data_range=jsonable(meta.get("data_range")),
        horizon_days=horizon, metrics=jsonable(meta.get("metrics")),
        evaluation=jsonable(meta.get("evaluation")), warnings=[str(w) for w in meta.get("warnings") or []],
        features=len(meta.get("features") or []), customers_scored=scored,
        validation=jsonable(meta.get("validation")), quality=quality_words(meta))
