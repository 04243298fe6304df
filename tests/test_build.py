"""`valuedesk build` end to end on real Online Retail customers: outputs, idempotency, failure safety, CLI."""

from __future__ import annotations

import argparse
import hashlib
import json
import re

import pandas as pd
import pytest

import predictor.build as build_mod
from _tiers_data import fast_config, make_settings, sample_csv
from predictor.build import build
from predictor.build_cli import register_build
from predictor.build_report import BuildError

CUSTOMER_COLUMNS = [
    "customer_id", "as_of", "horizon_days", "predicted_value", "value_p10", "value_p90", "churn_risk",
    "expected_next_order", "next_order_days", "historical_value", "revenue_12m", "orders", "first_order",
    "last_order", "recency_days", "tenure_days", "mean_gap_days", "aov", "spend_90d", "trend", "country", "drivers",
    "tier", "lifecycle", "rfm_segment", "r_score", "f_score", "m_score", "customer_value", "value_if_retained",
    "value_at_risk", "top_categories", "top_products", "suggested_products", "cluster", "profile_text",
]


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One real build into a fresh data dir (scores once, with the small model configuration)."""
    settings = make_settings(tmp_path_factory.mktemp("build"))
    first = build(settings, data_path=sample_csv(), schema="online_retail", with_index=False, progress=False,
                  training_config=fast_config(settings))
    return settings, first


def test_build_writes_the_customer_tables(built):
    settings, report = built
    customers = pd.read_parquet(settings.customers_path)
    missing = [c for c in CUSTOMER_COLUMNS if c not in customers]
    assert not missing
    assert customers["customer_id"].is_unique and len(customers) == report.customers
    assert report.customers > 1000 and report.transactions > 90_000
    assert not report.scores_reused and not report.no_changes
    assert report.changes.new == report.customers
    assert sum(report.tier_counts.values()) == report.customers
    assert list(report.tier_counts) == ["Platinum", "Gold", "Silver", "Bronze"]
    assert report.category_coverage is not None and report.category_coverage > 0.9
    assert report.kmeans_k is not None and report.kmeans_silhouette > 0
    profiles = pd.read_parquet(settings.build_root / "profiles.parquet")
    assert (profiles["profile_text"].to_numpy() == customers["profile_text"].to_numpy()).all()
    mapping = pd.read_parquet(settings.build_root / "categories.parquet")
    assert set(mapping["product_id"]) >= set(pd.read_parquet(settings.build_root / "transactions.parquet")["product_id"])
    info = json.loads((settings.build_root / "build.json").read_text())
    assert info["fingerprint"] == report.fingerprint and info["report"]["customers"] == report.customers
    assert not list(settings.data_dir.glob(".*.tmp"))
    # Nearly every customer gets product suggestions from the recommender.
    assert customers["suggested_products"].map(len).gt(0).mean() > 0.9


def test_second_build_reports_no_changes_and_writes_nothing(built, capsys, monkeypatch):
    settings, _ = built
    before = {p.name: _sha(p) for p in (settings.customers_path, settings.build_root / "profiles.parquet")}
    report = build(settings, data_path=sample_csv(), schema="online_retail", with_index=False, progress=False)
    assert report.no_changes and report.scores_reused and report.transactions_reused
    assert report.files == [] and "no changes" in report.summary()
    after = {p.name: _sha(p) for p in (settings.customers_path, settings.build_root / "profiles.parquet")}
    assert after == before

    # The CLI says the same: register the subcommand and run it.
    parser = argparse.ArgumentParser(prog="valuedesk")
    register_build(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["build", "--data", str(sample_csv()), "--schema", "online_retail", "--no-index",
                              "--quiet"])
    args.settings = settings  # what the CLI entry (valuedesk.cli) sets
    assert args.handler(args) == 0
    assert "no changes" in capsys.readouterr().out


def test_changed_settings_rebuild_and_report_tier_moves(built):
    settings, first = built
    wider = settings.model_copy(update={"tier_thresholds": "Platinum=0.02,Gold=0.08,Silver=0.25"})
    report = build(wider, data_path=sample_csv(), schema="online_retail", with_index=False, progress=False)
    assert report.scores_reused and not report.no_changes
    assert report.changes.tier_up > 0 and report.changes.tier_down == 0
    assert report.changes.changed >= report.changes.tier_up and report.changes.new == 0
    moves = pd.read_parquet(settings.build_root / "tier_transitions.parquet")
    assert (moves["direction"] == "up").sum() == report.changes.tier_up
    assert moves["reason"].str.contains("thresholds moved").all()
    # Back to the default settings: the original tiers return.
    back = build(settings, data_path=sample_csv(), schema="online_retail", with_index=False, progress=False)
    assert back.tier_counts == first.tier_counts and back.changes.tier_down == report.changes.tier_up


def test_failed_build_leaves_the_previous_tables_intact(built, monkeypatch):
    settings, _ = built
    paths = [settings.customers_path, settings.build_root / "profiles.parquet", settings.build_root / "build.json"]
    before = {p.name: _sha(p) for p in paths}

    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(build_mod, "profile_table", explode)
    changed = settings.model_copy(update={"tier_thresholds": "Platinum=0.03,Gold=0.1,Silver=0.3"})
    with pytest.raises(BuildError, match="profiles.*disk on fire.*previous build still serves"):
        build(changed, data_path=sample_csv(), schema="online_retail", with_index=False, progress=False)
    assert {p.name: _sha(p) for p in paths} == before

    # A failure while the files are being moved into place also leaves no temp files behind.
    monkeypatch.undo()
    real_to_parquet = pd.DataFrame.to_parquet

    def fail_profiles(self, path, *args, **kwargs):
        if "profiles.parquet" in str(path):
            raise OSError(28, "No space left on device")
        return real_to_parquet(self, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", fail_profiles)
    with pytest.raises(BuildError, match="No space left"):
        build(changed, data_path=sample_csv(), schema="online_retail", with_index=False, progress=False)
    monkeypatch.undo()
    assert {p.name: _sha(p) for p in paths} == before
    assert not [p for p in settings.data_dir.iterdir() if p.name.endswith(".tmp")]
    assert not [p for p in (settings.data_dir / "builds").iterdir() if p.name.startswith(".")]


def test_bad_tier_settings_fail_before_anything_runs(tmp_path):
    from predictor.customers.tiers import TierConfigError

    settings = make_settings(tmp_path, tier_thresholds="Platinum=0.5,Gold=0.1")
    with pytest.raises(TierConfigError, match="increasing"):
        build(settings, data_path=sample_csv(), schema="online_retail", with_index=False, progress=False)
    assert not settings.customers_path.exists()


def test_build_indexes_profiles_and_resyncs_only_changes(built):
    """The Chroma index follows the build: a full index first, then only changed profiles re-embedded.

    The model-free hashing embedder keeps this fast; the MiniLM embedder has its own tests.
    """
    pytest.importorskip("chromadb")
    from predictor.search.index import ProfileIndex

    settings = built[0].model_copy(update={"embedding_model": "hashing-384"})
    report = build(settings, data_path=sample_csv(), schema="online_retail", progress=False)
    # The first index embeds every distinct text (identical profiles share one vector).
    embedded = int(re.search(r"(\d+) embedded", report.index).group(1))
    assert f"{report.customers} profiles" in report.index and report.customers - 10 < embedded <= report.customers
    again = build(settings, data_path=sample_csv(), schema="online_retail", progress=False)
    assert again.no_changes and again.index.startswith("unchanged")
    # New tier thresholds change the profiles of the customers who move, but not what they buy: those
    # profiles get new metadata and display text in the new build's collection, and nothing is re-embedded.
    moved = build(settings.model_copy(update={"tier_thresholds": "Platinum=0.02,Gold=0.06,Silver=0.2"}),
                  data_path=sample_csv(), schema="online_retail", progress=False)
    assert 0 < moved.changes.changed < moved.customers / 10
    assert f"{moved.customers} profiles; 0 embedded" in moved.index
    index = ProfileIndex(settings)
    try:
        assert index.count() == report.customers
        hits = index.search("Christmas decorations", {"tier": ["Platinum", "Gold"]}, limit=3)
        assert hits and all(h.metadata["tier"] in {"Platinum", "Gold"} for h in hits)
    finally:
        index.close()
