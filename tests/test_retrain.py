"""Safe retraining (`valuedesk retrain`, predictor/model/promotion.py) and model versions (`valuedesk model`)
on a real Online Retail cut: a worse challenger never serves, an equal one does, and any kept version can
serve again."""

from __future__ import annotations

import dataclasses
import json

import pytest

from _tiers_data import sample_csv
from predictor.layout import current_name
from predictor.model.estimators import TrainingConfig
from predictor.model_health import model_versions, read_retrain_log, retrain
from predictor.settings import Settings


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from predictor.build import build

    settings = Settings(data_dir=tmp_path_factory.mktemp("retrain"), training_profile="fast", horizon_days=90,
                        threads=1, embedding_model="hashing")
    data = {"source": str(sample_csv()), "schema": "online_retail", "column_map": {}}
    build(settings, data["source"], data["schema"], with_index=False, progress=False)
    return settings, data


def test_a_worse_challenger_is_never_promoted(built):
    settings, data = built
    serving, versions = current_name(settings.data_dir), model_versions(settings)
    # Stumps of five rounds: the same data and horizon, a far weaker model.
    weak = dataclasses.replace(TrainingConfig.from_settings(settings), value_grid=((1, 5),), churn_grid=((1, 5),))
    outcome = retrain(settings, data, config=weak, with_index=False)
    record = outcome["record"]
    assert outcome["status"] == "kept" and record["promoted"] is False
    assert record["challenger"]["churn_auc"] < record["champion"]["churn_auc"] or (
        record["challenger"]["mae"] > record["champion"]["mae"])
    assert "worse on the last closed window" in record["reason"]
    # The serving model saw the window's start: its own settings were refitted to compare like with like.
    assert record["champion_saw_window"] and "refitted" in record["champion_basis"]
    assert current_name(settings.data_dir) == serving and model_versions(settings) == versions
    assert read_retrain_log(settings)[-1] == record  # the attempt is on record, with its figures


def test_an_equal_challenger_is_promoted_and_the_old_model_can_serve_again(built, capsys, monkeypatch):
    from valuedesk.cli import main
    from valuedesk.config import load_settings

    settings, data = built
    before = current_name(settings.data_dir)
    old_model = next(v["model_version"] for v in model_versions(settings) if v["serving"])
    outcome = retrain(settings, data, with_index=False)
    assert outcome["status"] == "promoted" and outcome["record"]["promoted"]
    rows = model_versions(settings)
    serving = next(v for v in rows if v["serving"])
    assert serving["build_version"] != before and serving["promotion"] == outcome["record"]  # in its metadata
    for key, value in {"VALUEDESK_DATA_DIR": str(settings.data_dir), "VALUEDESK_TRAINING_PROFILE": "fast",
                       "VALUEDESK_HORIZON_DAYS": "90", "VALUEDESK_EMBEDDING_MODEL": "hashing"}.items():
        monkeypatch.setenv(key, value)
    load_settings.cache_clear()
    assert main(["model", "use", old_model]) == 0
    assert current_name(settings.data_dir) == before
    assert main(["model", "list"]) == 0
    listing = capsys.readouterr().out
    assert f"* {old_model}" in listing and "(promoted by retrain)" in listing
    assert main(["model", "use", "20990101T000000000000Z"]) == 2
    assert "No kept model version" in capsys.readouterr().err


def test_retrain_if_needed_leaves_a_fresh_model_alone(built, capsys, monkeypatch):
    from valuedesk.cli import main
    from valuedesk.config import load_settings

    settings, _ = built
    for key, value in {"VALUEDESK_DATA_DIR": str(settings.data_dir), "VALUEDESK_TRAINING_PROFILE": "fast",
                       "VALUEDESK_HORIZON_DAYS": "90", "VALUEDESK_EMBEDDING_MODEL": "hashing"}.items():
        monkeypatch.setenv(key, value)
    load_settings.cache_clear()
    versions = model_versions(settings)
    assert main(["retrain", "--if-needed", "--no-index"]) == 0
    out = capsys.readouterr().out
    assert "Retrain not needed" in out and model_versions(settings) == versions
    health = json.loads((settings.data_dir / "current" / "health.json").read_text())  # attached on the way
    assert health["recommendation"]["retrain_due"] is False and health["estimated"]["available"]
