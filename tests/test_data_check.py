"""`valuedesk check-data` and the build's own check on real data: Online Retail passes; a 90-day,
200-customer cut of it is refused before any training, naming what would be weak."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from _tiers_data import sample_csv
from predictor.settings import Settings


@pytest.fixture
def small_log(tmp_path):
    """The last 90 days of 200 real customers."""
    raw = pd.read_csv(sample_csv(), dtype=str, keep_default_na=False)
    when = pd.to_datetime(raw["InvoiceDate"])
    recent = raw[when >= when.max() - pd.Timedelta(days=89)]
    keep = sorted(c for c in recent["CustomerID"].unique() if c)[:200]
    path = tmp_path / "small.csv"
    recent[recent["CustomerID"].isin(keep)].to_csv(path, index=False)
    return path


def _cli(monkeypatch, tmp_path, *argv):
    from valuedesk.cli import main
    from valuedesk.config import load_settings

    monkeypatch.setenv("VALUEDESK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VALUEDESK_DATA_CHECK", "refuse")
    load_settings.cache_clear()
    return main(list(argv))


def test_check_data_refuses_a_90_day_200_customer_log_and_names_what_is_weak(small_log, tmp_path, monkeypatch,
                                                                              capsys):
    assert _cli(monkeypatch, tmp_path, "check-data", "--data", str(small_log), "--json", str(tmp_path / "c.json")) == 3
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "c.json").read_text())
    assert report["status"] == "refuse" and report["customers_with_orders"] <= 200 and report["history_days"] <= 90
    assert "200 customers with orders" in out or f"{report['customers_with_orders']} customers with orders" in out
    assert "at least 500" in out and "at least 180" in out and "Weak: every prediction" in out


def test_a_build_below_the_minimums_stops_before_training_and_builds_nothing(small_log, tmp_path, monkeypatch,
                                                                             capsys):
    assert _cli(monkeypatch, tmp_path, "build", "--data", str(small_log), "--no-index", "--quiet") == 2
    err = capsys.readouterr().err
    assert "Data check: refuse" in err and "Nothing was built" in err and "VALUEDESK_DATA_CHECK=warn" in err
    assert not (tmp_path / "data" / "current").exists()


def test_online_retail_passes_with_its_warnings_stated(online_retail):
    from predictor.model.data_check import check_data
    from predictor.model.health import HealthThresholds
    from predictor.model.scoring import history_from_transactions

    tx = online_retail.transactions
    report = check_data(tx, history_from_transactions(tx), 180, HealthThresholds.from_settings(Settings()))
    assert report["status"] == "warn" and report["customers_with_orders"] > 4000
    assert report["product_coverage"] > 0.99 and report["longest_gap_days"] < 31
    assert [p["reason"] for p in report["problems"]] == [
        "history under 3x the forecast (540 days): the level and seasonality are weakly supported"]
