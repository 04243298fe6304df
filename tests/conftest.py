"""Shared fixtures: real data loaded once per session, a scored data directory, and isolation of
every test from the user's own data directory."""

from __future__ import annotations

import os

import pytest

# The fixtures are cut small (251 customers) to keep builds fast: below the data minimums a build would
# stop. The refusal itself is tested with the setting back at "refuse" (tests/test_data_check.py).
os.environ.setdefault("VALUEDESK_DATA_CHECK", "warn")

from predictor.settings import Settings
from valuedesk.config import load_settings


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path_factory, monkeypatch):
    """No test may write into the repo's .valuedesk: each one gets its own default data dir."""
    monkeypatch.setenv("VALUEDESK_DATA_DIR", str(tmp_path_factory.mktemp("data_dir")))
    load_settings.cache_clear()
    yield
    load_settings.cache_clear()


@pytest.fixture(scope="session")
def online_retail():
    """The full UCI Online Retail log, loaded and cleaned (LoadResult)."""
    from predictor.data.load import load_transactions

    return load_transactions(None, "online_retail", settings=Settings())


@pytest.fixture(scope="session")
def cdnow():
    from predictor.data.load import load_transactions

    return load_transactions(None, "cdnow", settings=Settings())


@pytest.fixture(scope="session")
def cdnow_history(cdnow):
    from predictor.model.scoring import history_from_transactions

    return history_from_transactions(cdnow.transactions)


@pytest.fixture(scope="session")
def online_retail_history(online_retail):
    from predictor.model.scoring import history_from_transactions

    return history_from_transactions(online_retail.transactions)


@pytest.fixture(scope="session")
def scored_settings(tmp_path_factory, online_retail):
    """A data directory holding a model and scores for every Online Retail customer (small config)."""
    from predictor.model.estimators import TrainingConfig
    from predictor.model.scoring import score_customers

    settings = Settings(data_dir=tmp_path_factory.mktemp("scored"))
    config = TrainingConfig.fast(settings.horizon_days)
    scores, bundle = score_customers(online_retail.transactions, settings, config, online_retail.fingerprint)
    return settings


# The real vLLM server is started once per test session and shared by every module that uses it
# (a fixture imported into several modules would start one server per module).
from vllm_fixture import vllm_server  # noqa: E402,F401

# The profile-index fixtures likewise: one MiniLM export and one `chroma run` server per session.
from index_fixtures import chroma_server, embedder, make_index, minilm, profiles  # noqa: E402,F401


def pytest_collection_modifyitems(config, items):
    """Run the tests that use the real vLLM server last and back to back: the session-scoped server
    then starts just before the first of them and stops right after the last, instead of holding
    ~4 GB and a share of a core idle through the rest of the suite. Order within each group is kept."""
    items.sort(key=lambda item: "vllm_server" in getattr(item, "fixturenames", ()))
