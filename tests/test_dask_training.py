"""Training with xgboost.dask (predictor/engine/dask_training.py) on a real LocalCluster of two worker
processes, against the local engine's training on the real Online Retail and CDNOW logs: the same rows
from the buckets, the same choices, close accuracy; and the Dask engine picks it when the sample does not
fit a worker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from _dask_support import local_cluster
from predictor.engine.buckets import write_buckets
from predictor.engine.dask_engine import ClusterConfig, score_with_dask, train_task
from predictor.engine.dask_training import BucketRows, choose_training, train_with_xgboost_dask, training_footprint
from predictor.model.artifacts import load_model
from predictor.model.estimators import CLVModel, HistoryRows, TrainingConfig, training_cutoffs
from predictor.model.scoring import history_from_transactions, with_categories
from predictor.settings import Settings


@pytest.fixture(scope="module")
def cluster():
    with local_cluster() as running:
        yield running


@pytest.fixture(scope="module")
def retail_lines(online_retail):
    """The categorised lines, as both engines train on them."""
    return with_categories(online_retail.transactions)


@pytest.fixture(scope="module")
def retail_history(retail_lines):
    return history_from_transactions(retail_lines)


@pytest.fixture(scope="module")
def retail_buckets(retail_lines, tmp_path_factory):
    return write_buckets(retail_lines, tmp_path_factory.mktemp("b") / "buckets", buckets=4)


def test_training_rows_from_buckets_equal_the_local_rows(retail_history, retail_buckets, cluster, tmp_path):
    config = TrainingConfig.fast(180)
    end = retail_buckets.as_of
    pairs = training_cutoffs(retail_history.start, end, config)
    # The newest cutoff (the shortest label window, scaled up most by the BG/NBD curve) and the oldest.
    for pair in (pairs[0], pairs[-1]):
        local_x, local_y = HistoryRows(retail_history.before(end), config).stack([pair])
        x, y = BucketRows(cluster[1], retail_buckets, config, tmp_path).stack([pair])
        dask_rows = pd.concat([x.compute(), y.drop(columns="label_days").compute()], axis=1)
        local_rows = pd.concat([local_x, local_y.drop(columns=["cutoff", "label_days"])], axis=1)
        dask_rows = dask_rows.sort_values("customer_id", ignore_index=True)
        local_rows = local_rows.sort_values("customer_id", ignore_index=True)
        assert dask_rows["customer_id"].tolist() == local_rows["customer_id"].tolist()
        for column in local_rows.columns.drop("customer_id"):
            np.testing.assert_allclose(dask_rows[column].to_numpy(float), local_rows[column].to_numpy(float),
                                       rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=f"{pair}: {column}")


def test_xgboost_dask_training_is_as_accurate_as_one_worker(retail_history, retail_buckets, cluster, tmp_path):
    client = cluster[1]
    config = TrainingConfig.fast(180)
    paths, start, as_of = retail_buckets.paths, retail_buckets.data_start, retail_buckets.as_of
    one_worker: CLVModel = client.submit(train_task, paths, start, as_of, config, pure=False).result()
    distributed = train_with_xgboost_dask(client, retail_buckets, config, tmp_path)
    assert distributed.training_sample == {"customers": 4333, "of": 4333, "method": "all",
                                           "trained_with": "xgboost.dask"}
    # The same rows, cutoffs and choices; the trees differ only by the distributed histogram sums.
    assert distributed.training_window == one_worker.training_window
    assert distributed.validation["rows"] == one_worker.validation["rows"]
    assert distributed.params == one_worker.params and distributed.blend_weight == one_worker.blend_weight
    a, b = one_worker.validation_metrics, distributed.validation_metrics
    assert abs(a["churn_auc"] - b["churn_auc"]) < 0.01
    assert abs(a["spearman"] - b["spearman"]) < 0.02 and abs(a["normalized_gini"] - b["normalized_gini"]) < 0.02
    history = retail_history
    p1, p2 = one_worker.predict(history, history.end), distributed.predict(history, history.end)
    assert spearmanr(p1["predicted_value"], p2["predicted_value"]).statistic > 0.98
    assert abs(p2["predicted_value"].sum() / p1["predicted_value"].sum() - 1) < 0.05
    assert np.corrcoef(p1["churn_risk"], p2["churn_risk"])[0, 1] > 0.98


def test_the_dask_engine_trains_with_xgboost_dask_and_serves_the_model(cdnow, cluster, tmp_path):
    bucket_set = write_buckets(with_categories(cdnow.transactions), tmp_path / "buckets", buckets=3)
    settings = Settings(data_dir=tmp_path / "dask", dask_training="xgboost_dask")
    path, rows, bundle = score_with_dask(bucket_set, settings, TrainingConfig.fast(180),
                                         ClusterConfig(scheduler=cluster[0]))
    scores = pd.read_parquet(path)
    assert rows == len(scores) == scores["customer_id"].nunique() > 23_000
    assert bundle.model.training_sample["trained_with"] == "xgboost.dask"
    # The saved model is an ordinary one: it loads and rescores a customer to the value in the scores.
    saved = load_model(settings.model_dir)
    history = history_from_transactions(cdnow.transactions)
    one = history.subset(pd.Index([scores["customer_id"].iloc[0]]))
    again = saved.model.predict_features(saved.model.features_at(one, history.end, bg=saved.model.scoring_bg))
    assert again["predicted_value"].iloc[0] == pytest.approx(scores["predicted_value"].iloc[0], rel=1e-5)
    assert not [p for p in settings.data_dir.iterdir() if p.name.startswith(".")]  # no parts left behind


class _Workers:
    """A client's scheduler_info with workers of the given memory limits (the only thing auto reads)."""

    def __init__(self, *limits: int):
        self.limits = limits

    def scheduler_info(self):
        return {"workers": {f"tcp://w{i}": {"memory_limit": m} for i, m in enumerate(self.limits)}}


def test_auto_training_moves_to_xgboost_dask_when_the_sample_outgrows_a_worker(retail_buckets):
    config = TrainingConfig.fast(180)
    need = training_footprint(retail_buckets, config)
    assert choose_training("auto", retail_buckets, config, _Workers(4 * need, 4 * need)) == "one_worker"
    assert choose_training("auto", retail_buckets, config, _Workers(4 * need, need)) == "xgboost_dask"
    config.training_sample_share = 0.1  # a tenth of the customers fits again
    assert choose_training("auto", retail_buckets, config, _Workers(4 * need, need)) == "one_worker"
    assert choose_training("one_worker", retail_buckets, config, _Workers(1)) == "one_worker"
    with pytest.raises(ValueError, match="auto, one_worker, xgboost_dask"):
        choose_training("spark", retail_buckets, config, _Workers(1))


def test_bucket_rows_refuse_a_log_too_short_to_train(cdnow, cluster, tmp_path):
    from predictor.model.estimators import TrainingError

    lines = with_categories(cdnow.transactions)
    short = lines.loc[lines["timestamp"] < lines["timestamp"].min() + pd.Timedelta(days=40)]
    bucket_set = write_buckets(short, tmp_path / "buckets", buckets=2)
    with pytest.raises(TrainingError, match="too short"):
        train_with_xgboost_dask(cluster[1], bucket_set, TrainingConfig.fast(180), Path(tmp_path / "work"))
