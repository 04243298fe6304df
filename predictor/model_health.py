"""The model-health state of a data directory: a version's health report (computed from its model and
data, attached to the version as `health.json`), the record of retrain attempts (`retrain.json`) and the
kept model versions. Read by `valuedesk health|retrain|model` (predictor/health_commands.py) and by the
`model_health` tool.

Model versions are build versions (predictor/layout.py): each keeps the model that scored it with its
scores, tables and index collection, so rolling back the model rolls back everything derived from it in
one switch, and `builds_to_keep` is how many versions stay available.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from predictor.atomic import write_json_atomic
from predictor.errors import ValueDeskError

RETRAIN_LOG = "retrain.json"
RETRAIN_LOG_KEEP = 50  # attempts kept in the record


def health_inputs(settings, version, data_args=None):
    """The serving model and the history to judge it on: the version's own cleaned log, or the latest
    data (`data_args`: a source, schema and map, as `valuedesk build` takes them) for a retrain."""
    import pandas as pd

    from predictor.layout import TRANSACTIONS
    from predictor.model.artifacts import load_model
    from predictor.model.scoring import history_from_transactions, with_categories

    bundle = load_model(version.model_dir, verify=version.verify, shown=version.rel)
    if data_args is None:
        path = version.path(TRANSACTIONS)
        if not path.exists():
            raise ValueDeskError(f"No transactions in {path}; run `valuedesk build` first.")
        return bundle, history_from_transactions(pd.read_parquet(path))
    from predictor.data.load import load_transactions

    loaded = load_transactions(data_args["source"], data_args["schema"], data_args["column_map"], settings=settings)
    return bundle, history_from_transactions(with_categories(loaded.transactions))


def compute_health(settings, version, as_of=None, data_args=None, window=None) -> dict:
    """The health report of `version`'s model as of `as_of` (default: the data's last day), with the last
    retrain attempt; attached to the version when it can be written (a read-only replica just serves it)."""
    from predictor.model.estimators import TrainingConfig
    from predictor.model.health import HealthThresholds, health_report

    bundle, history = health_inputs(settings, version, data_args)
    if as_of is not None and not history.start < as_of <= history.end:
        raise ValueDeskError(f"--as-of {as_of.date()} is outside the data ({history.start.date()} to "
                             f"{history.end.date()}); expected a date inside it.")
    config = TrainingConfig.from_settings(settings, bundle.horizon_days)
    report = health_report(bundle.model, bundle.metadata, history, as_of if as_of is not None else history.end,
                           config, HealthThresholds.from_settings(settings), window=window)
    report["model"]["build_version"] = version.name
    report["computed_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    report["last_retrain"] = last_retrain(settings)
    if as_of is None and version.name is not None:
        try:
            version.attach_health(report)
        except OSError:
            pass  # a read-only data directory (an API replica): the report is still returned
    return report


def last_retrain(settings) -> dict | None:
    attempts = read_retrain_log(settings)
    return attempts[-1] if attempts else None


def read_retrain_log(settings) -> list[dict]:
    path = Path(settings.data_dir) / RETRAIN_LOG
    try:
        attempts = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ValueDeskError(f"{path} is unreadable ({exc}); expected the JSON list of retrain attempts.") from None
    return attempts if isinstance(attempts, list) else []


def record_retrain(settings, record: dict) -> None:
    attempts = (read_retrain_log(settings) + [record])[-RETRAIN_LOG_KEEP:]
    write_json_atomic(Path(settings.data_dir) / RETRAIN_LOG, attempts)


def model_versions(settings) -> list[dict]:
    """Every kept build version with its model: newest last, the serving one marked."""
    from predictor.layout import BUILDS_DIR, BuildVersion, current_name, list_versions

    serving = current_name(settings.data_dir)
    rows = []
    for name in list_versions(settings.data_dir):
        version = BuildVersion(data_dir=Path(settings.data_dir), root=Path(settings.data_dir) / BUILDS_DIR / name,
                               name=name)
        meta = _model_metadata(version)
        rows.append({"build_version": name, "model_version": meta.get("version"), "serving": name == serving,
                     "trained_at": meta.get("trained_at"), "data_end": (meta.get("data_range") or {}).get("end"),
                     "promotion": meta.get("promotion")})
    return rows


def _model_metadata(version) -> dict:
    try:
        return json.loads((version.model_dir / "current" / "metadata.json").read_text())
    except (OSError, ValueError):
        return {}


def retrain(settings, data_args: dict, *, if_needed: bool = False, config=None, with_index: bool = True) -> dict:
    """Train a challenger on the latest data (`data_args`: source, schema, column_map) and promote it only when
    it is not worse than the serving model on the last closed window (predictor/model/promotion.py). `config`
    overrides the settings' training configuration. Returns the outcome: status (not_needed, no_window, kept,
    promoted), a summary in words, the comparison record and the new build's report when promoted."""
    from predictor.layout import current_version
    from predictor.model.estimators import TrainingConfig
    from predictor.model.health import ClosedWindow, closed_window
    from predictor.model.promotion import compare

    version = current_version(settings.data_dir)
    champion, history = health_inputs(settings, version, data_args)
    config = config or TrainingConfig.from_settings(settings)
    if champion.horizon_days not in (None, config.horizon_days):
        raise ValueDeskError(f"The serving model forecasts {champion.horizon_days} days and the settings ask for "
                             f"{config.horizon_days}: a comparison needs one horizon; use `valuedesk build`.")
    window = closed_window(history, history.end, config)
    if if_needed:
        report = compute_health(settings, version, data_args=data_args,
                                window=window if isinstance(window, ClosedWindow) else None)
        if not report["recommendation"]["retrain_due"]:
            return {"status": "not_needed", "record": None, "build": None,
                    "summary": f"Retrain not needed: {report['recommendation']['summary']}"}
    if not isinstance(window, ClosedWindow):
        return {"status": "no_window", "record": None, "build": None,
                "summary": f"Not retrained: no window to compare the models on. {window}"}
    record = compare(champion.model, champion.metadata, window, history)
    record_retrain(settings, record)
    if not record["promoted"]:
        return {"status": "kept", "record": record, "build": None,
                "summary": f"Model {champion.metadata.get('version')} keeps serving."}
    from predictor.build import build

    report = build(settings, data_args["source"], data_args["schema"], data_args["column_map"], promotion=record,
                   progress=False, with_index=with_index, training_config=config)
    return {"status": "promoted", "record": record, "build": report,
            "summary": f"Promoted: model {report.model_version} serves ({report.customers:,} customers rescored)."}
