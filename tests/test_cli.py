"""`valuedesk evaluate` and `valuedesk score` as a user runs them, including every bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "online_retail_sample.csv.gz"
VALUEDESK = [sys.executable, "-m", "valuedesk.cli"]


def run(*args, env_dir: Path, **extra_env: str):
    import os

    env = {**os.environ, "VALUEDESK_DATA_DIR": str(env_dir), "VALUEDESK_TRAINING_PROFILE": "fast", **extra_env}
    return subprocess.run([*VALUEDESK, *args], capture_output=True, text=True, env=env, timeout=600)


def test_evaluate_prints_the_table_and_writes_the_json_contract(tmp_path):
    out = tmp_path / "report.json"
    # No --horizon-days: the horizon setting applies (it used to be ignored for a literal 180).
    result = run("evaluate", "--data", str(FIXTURE), "--schema", "online_retail", "--cutoff", "2011-06-09",
                 "--json", str(out), env_dir=tmp_path / "d", VALUEDESK_HORIZON_DAYS="120")
    assert result.returncode == 0, result.stderr
    assert "BG/NBD + Gamma-Gamma" in result.stdout and "Last-period spend" in result.stdout
    report = json.loads(out.read_text())
    assert report["horizon_days"] == 120
    assert report["population"] > 100
    assert set(report["models"]) == {"xgboost", "bgnbd_gg", "last_period"}
    for metrics in report["models"].values():
        assert {"spearman", "normalized_gini", "top_decile_capture", "mae", "total_predicted", "total_actual",
                "churn_auc", "brier", "fit_seconds", "predict_seconds"} <= set(metrics)


def test_score_writes_scores_and_model(tmp_path):
    data_dir = tmp_path / "d"
    result = run("score", "--data", str(FIXTURE), "--horizon-days", "90", "--quiet", env_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert (data_dir / "scores.parquet").exists()
    assert (data_dir / "models" / "current" / "metadata.json").exists()


@pytest.mark.parametrize("args, message", [
    (["--cutoff", "2009-01-01"], "outside"),
    (["--cutoff", "2011-11-01", "--horizon-days", "90"], "Horizon of 90 days"),
    (["--cutoff", "2011-13-45"], "cutoff"),
])
def test_evaluate_window_errors_are_specific(tmp_path, args, message):
    result = run("evaluate", "--data", str(FIXTURE), *args, env_dir=tmp_path / "d")
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_data_fails_cleanly_and_leaves_no_artifact(tmp_path):
    data_dir = tmp_path / "d"
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    for args, message in ((["--data", str(empty)], "empty"),
                          (["--data", str(tmp_path / "missing.csv")], "not found"),
                          (["--data", str(FIXTURE), "--schema", "generic", "--map", "customer_id=nope"], "nope")):
        result = run("score", *args, env_dir=data_dir)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr
        assert "Traceback" not in result.stderr
    assert not (data_dir / "scores.parquet").exists()
    assert not (data_dir / "models").exists() or not any((data_dir / "models").iterdir())


@pytest.mark.parametrize("command", [["evaluate", "--cutoff", "2011-06-09"], ["score"]])
def test_a_zero_horizon_is_refused_not_read_as_the_default(tmp_path, command):
    result = run(*command, "--data", str(FIXTURE), "--horizon-days", "0", env_dir=tmp_path / "d")
    assert result.returncode == 2
    assert "--horizon-days must be from 7 to 730 days, got 0" in result.stderr
    assert "Traceback" not in result.stderr


def test_score_refuses_a_data_dir_that_serves_builds(tmp_path):
    data_dir = tmp_path / "d"
    (data_dir / "builds" / "20260101T000000000000Z").mkdir(parents=True)
    (data_dir / "current").symlink_to(Path("builds") / "20260101T000000000000Z")
    result = run("score", "--data", str(FIXTURE), "--quiet", env_dir=data_dir)
    assert result.returncode == 2 and "valuedesk build --rescore" in result.stderr
    assert not any((data_dir / "builds" / "20260101T000000000000Z").iterdir())


def test_settings_are_read_once_in_groups_owned_by_each_layer(monkeypatch):
    from agent.settings import AgentSettings
    from predictor.settings import Settings
    from tools.settings import ServingSettings
    from valuedesk.config import load_settings

    monkeypatch.setenv("VALUEDESK_API_PORT", "8123")
    monkeypatch.setenv("VALUEDESK_AGENT_MAX_STEPS", "3")
    load_settings.cache_clear()
    settings = load_settings()
    assert settings is load_settings() and isinstance(settings, AgentSettings)
    assert settings.api_port == 8123 and settings.agent_max_steps == 3 and settings.horizon_days == 180
    assert not {"api_key", "max_body_bytes", "llm_backend", "agent_max_steps"} & set(Settings.model_fields)
    assert not {"llm_backend", "vllm_model", "agent_tools"} & set(ServingSettings.model_fields)


def test_rolling_origin_evaluation_reports_each_split_and_the_mean(tmp_path):
    out = tmp_path / "rolling.json"
    result = run("evaluate", "--data", str(FIXTURE), "--cutoffs", "2011-04-15, 2011-06-09,2011-08-01",
                 "--horizon-days", "120", "--json", str(out), env_dir=tmp_path / "d")
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["cutoffs"] == ["2011-04-15", "2011-06-09", "2011-08-01"]
    assert [s["cutoff"] for s in report["splits"]] == report["cutoffs"]
    # Each split has the single-cutoff shape; the mean is the mean of the splits' figures.
    for split in report["splits"]:
        assert split["horizon_days"] == 120 and set(split["models"]) == {"xgboost", "bgnbd_gg", "last_period"}
    for model, row in report["mean"].items():
        spearman = [s["models"][model]["spearman"] for s in report["splits"]]
        assert row["spearman"] == pytest.approx(sum(spearman) / 3)
        errors = [s["models"][model]["total_predicted"] / s["models"][model]["total_actual"] - 1
                  for s in report["splits"]]
        assert row["max_abs_total_error"] == pytest.approx(max(abs(e) for e in errors))
    assert "Mean over 3 cutoffs (2011-04-15, 2011-06-09, 2011-08-01)" in result.stdout


def test_rolling_cutoffs_spread_over_the_data_and_fit_the_horizon():
    from predictor.data.load import load_transactions
    from predictor.model.estimators import TrainingConfig
    from predictor.model.rolling import rolling_cutoffs
    from predictor.model.scoring import history_from_transactions
    from predictor.settings import Settings

    loaded = load_transactions(FIXTURE, "online_retail", settings=Settings(data_dir=Path("/nonexistent")))
    history = history_from_transactions(loaded.transactions)
    cutoffs = rolling_cutoffs(history, 4, 90)
    assert len(set(cutoffs)) == 4 and cutoffs == sorted(cutoffs)
    assert (cutoffs[0] - history.start).days >= TrainingConfig().min_training_days - 1
    assert (history.end - cutoffs[-1]).days >= 90


@pytest.mark.parametrize("args, message", [
    (["--rolling", "1"], "at least 2 splits"),
    (["--rolling", "400"], "no room for 400 cutoffs"),
    (["--cutoffs", "2011-06-09,2011-13-01"], "--cutoffs '2011-13-01' is not a date"),
    (["--cutoffs", "2011-06-09,2011-06-09"], "at least 2 different cutoffs"),
    (["--cutoffs", "2011-06-09,2011-11-20", "--horizon-days", "60"], "Horizon of 60 days"),
    (["--cutoff", "2011-06-09", "--rolling", "3"], "not allowed with"),
])
def test_rolling_evaluation_errors_are_specific(tmp_path, args, message):
    result = run("evaluate", "--data", str(FIXTURE), *args, env_dir=tmp_path / "d")
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_the_shortest_trainable_history_is_the_one_the_error_names():
    import pandas as pd

    from predictor.data.load import load_transactions
    from predictor.model.estimators import CLVModel, TrainingConfig, TrainingError
    from predictor.model.scoring import history_from_transactions
    from predictor.settings import Settings

    loaded = load_transactions(FIXTURE, "online_retail", settings=Settings(data_dir=Path("/nonexistent")))
    history = history_from_transactions(loaded.transactions)
    config = TrainingConfig.fast(120)
    shortest = config.min_training_days
    start = history.start.normalize()
    with pytest.raises(TrainingError, match=f"need at least {shortest} days"):
        CLVModel(config).fit(history, start + pd.Timedelta(days=shortest - 1))
    assert CLVModel(config).fit(history, start + pd.Timedelta(days=shortest)).validation["label_days"] >= 28
