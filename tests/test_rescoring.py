"""The one-customer fast path (predictor/model/rescoring.py) against the population path (score_frame):
same feature row, predictions and drivers for real Online Retail and CDNOW customers and the edge cases.
Then `build --rescore` on unchanged data: bit-identical models and scores, no tier move, nothing re-embedded,
and one new order re-embeds exactly that customer's profile."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from predictor.errors import DataError
from predictor.model.estimators import MODEL_FEATURES
from predictor.model.scoring import CustomerScorer

PRODUCT_COLUMNS = ["product_id", "product_name", "category", "country"]


@pytest.fixture(scope="module")
def scorer(scored_settings):
    return CustomerScorer.load(scored_settings)


def _missing(value) -> bool:
    return value is None or value is pd.NaT or (isinstance(value, float) and np.isnan(value))


def assert_same_scores(fast: dict, reference: dict, label: str) -> None:
    assert list(fast) == list(reference), label
    feature_keys = [f"f_{name}" for name in MODEL_FEATURES]
    got_row = np.array([fast[k] for k in feature_keys], dtype=float)
    want_row = np.array([reference[k] for k in feature_keys], dtype=float)
    assert np.allclose(got_row, want_row, rtol=1e-9, atol=1e-9, equal_nan=True), (
        label, [(k, fast[k], reference[k]) for k, a, b in zip(feature_keys, got_row, want_row)
                if not np.allclose(a, b, rtol=1e-9, atol=1e-9, equal_nan=True)])
    for key, want in reference.items():
        if key == "score_ms":
            continue
        got = fast[key]
        if _missing(want):
            assert _missing(got), (label, key, got, want)
        elif isinstance(want, float):
            assert type(got) is float and got == pytest.approx(want, rel=1e-9, abs=1e-9), (label, key, got, want)
        else:  # ids, dates, integer counts, the country, the driver sentences
            assert type(got) is type(want) and got == want, (label, key, got, want)


def check(scorer: CustomerScorer, orders: pd.DataFrame, customer_id: str = "new", as_of=None) -> dict:
    fast = scorer.score_orders(orders, customer_id=customer_id, as_of=as_of)
    reference = scorer.score_orders_population(orders, customer_id=customer_id, as_of=as_of)
    assert_same_scores(fast, reference, customer_id)
    return fast


def with_new_order(own: pd.DataFrame, day: pd.Timestamp, amount: float, order_id: str) -> pd.DataFrame:
    """The customer's lines plus one new order: a copy of their last line, re-dated and re-priced."""
    new = own.tail(1).copy()
    new["order_id"], new["timestamp"], new["amount"] = order_id, day + pd.Timedelta(hours=11), amount
    if "is_cancellation" in new:
        new["is_cancellation"] = False
    if "is_outlier" in new:
        new["is_outlier"] = False
    return pd.concat([own, new], ignore_index=True)


def test_fast_path_matches_population_path_on_200_online_retail_customers(scorer, online_retail):
    tx = online_retail.transactions
    rng = np.random.default_rng(11)
    ids = rng.choice(tx["customer_id"].unique(), 200, replace=False)
    end = tx["timestamp"].max().normalize()
    lines = tx[tx["customer_id"].isin(ids)]
    checked = with_products = with_country = 0
    for i, (customer, own) in enumerate(lines.groupby("customer_id", observed=True)):
        if not ((~own["is_cancellation"]) & ~own["is_outlier"] & (own["amount"] > 0)).any():
            continue  # only refunds or flagged lines: neither path scores them (tested below)
        orders = with_new_order(own, end - pd.Timedelta(days=int(rng.integers(0, 30))),
                                float(rng.uniform(5, 900)), f"N{customer}")
        # Half with product lines and countries, half as a plain order list (the API's usual input).
        if i % 2:
            orders = orders.drop(columns=PRODUCT_COLUMNS)
        row = check(scorer, orders, str(customer))
        checked += 1
        with_products += not np.isnan(row["f_distinct_products"])
        with_country += row["country"] is not None
    assert checked >= 190 and with_products >= 90 and with_country >= 90


def test_fast_path_matches_population_path_on_cdnow_customers(scorer, cdnow):
    """CDNOW histories (1997-98, many same-day orders, up to 18 months) scored on their own timeline:
    the history reaches back a year, so the same-window-last-year feature is computed too."""
    tx = cdnow.transactions
    rng = np.random.default_rng(3)
    counts = tx.groupby("customer_id", observed=True).size()
    ids = [*rng.choice(counts.index[counts == 1], 20, replace=False),
           *rng.choice(counts.index[counts > 1], 80, replace=False), counts.idxmax()]
    as_of = tx["timestamp"].max().normalize()
    seen_last_year = 0
    for customer in ids:
        own = tx[tx["customer_id"] == customer]
        row = check(scorer, own, str(customer), as_of=as_of)
        seen_last_year += not np.isnan(row["f_spend_same_window_last_year"])
    assert seen_last_year == len(ids)


def orders(*rows, **columns) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["timestamp", "amount"])
    for name, values in columns.items():
        frame[name] = values
    return frame


EDGE_CASES = {
    "one order": orders(("2011-05-01", 20.0)),
    "one order today": orders(("2011-12-09 18:00", 55.0)),
    "same-day orders": orders(("2011-03-01 09:00", 10.0), ("2011-06-01 09:00", 30.0),
                              ("2011-06-01 15:00", 45.0), ("2011-06-01 16:00", 5.0)),
    "a refund order": orders(("2011-02-01", 100.0), ("2011-02-10", -40.0), ("2011-08-01", 60.0)),
    "refunds above spend": orders(("2011-02-01", 50.0), ("2011-02-10", -80.0)),
    "an order netting a refund line": orders(("2011-02-01", 100.0), ("2011-04-01", 70.0), ("2011-04-01", -20.0),
                                             ("2011-09-01", 35.0), order_id=["A", "B", "B", "C"]),
    "no order ids (each row an order)": orders(("2011-01-05", 12.0), ("2011-01-05", 8.0), ("2011-10-01", 9.0)),
    "some rows without an order id": orders(("2011-01-05", 12.0), ("2011-03-05", 8.0), ("2011-10-01", 9.0),
                                            order_id=["A", None, "C"]),
    "quantity on some lines": orders(("2011-01-05", 12.0), ("2011-05-05", 8.0), ("2011-10-01", 9.0),
                                     quantity=[3.0, None, 7.0]),
    "products, no categories": orders(("2011-01-05", 12.0), ("2011-01-05", 8.0), ("2011-10-01", 9.0),
                                      order_id=["A", "A", "B"], product_id=["p1", "p2", "p1"]),
    "products and categories, no country": orders(
        ("2011-01-05", 12.0), ("2011-01-05", 8.0), ("2011-10-01", 9.0), ("2011-10-02", -4.0),
        order_id=["A", "A", "B", "C"], product_id=["p1", "p2", "p3", "p4"], category=["tea", "cups", "tea", "toys"]),
    "a category only on a refund line": orders(("2011-01-05", 12.0), ("2011-10-02", -4.0),
                                               category=[None, "toys"]),
    "countries tied": orders(("2011-01-05", 12.0), ("2011-06-05", 8.0), ("2011-10-01", 9.0), ("2011-10-02", 9.0),
                             product_id=["p1", "p2", "p3", None], country=["Spain", "France", "Spain", "France"]),
    "a country and categories, refund lines": orders(
        ("2011-01-05", 12.0), ("2011-01-05", -2.0), ("2011-07-01", 30.0), ("2011-11-01", 9.0),
        order_id=["A", "A", "B", "C"], product_id=["p1", "p1", "p2", "p3"], category=["tea", "tea", None, "cups"],
        country=["Spain", "Spain", None, "Spain"]),
    "a flagged outlier line": orders(("2011-01-05", 12.0), ("2011-02-05", 90000.0), ("2011-10-01", 9.0),
                                     is_outlier=[False, True, False]),
    "older than the model's data": orders(("2009-03-01", 40.0), ("2009-11-20", 25.0), ("2010-06-01", 30.0),
                                          ("2011-11-28", 45.0)),
}


@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_fast_path_matches_population_path_on_edge_cases(scorer, case):
    check(scorer, EDGE_CASES[case], customer_id=case)


def test_fast_path_matches_when_scoring_before_the_last_orders(scorer):
    history = orders(("2011-01-05", 12.0), ("2011-04-05", 80.0), ("2011-06-01", 9.0), ("2011-11-01", 300.0))
    row = check(scorer, history, as_of="2011-06-01")
    assert row["orders"] == 3 and row["historical_value"] == pytest.approx(101.0)


@pytest.mark.parametrize("history", [orders(("2011-02-10", -40.0)), orders(("2011-11-10", 40.0))],
                         ids=["only a refund", "every order after as_of"])
def test_no_purchase_to_score_is_a_data_error_on_both_paths(scorer, history):
    for score in (scorer.score_orders, scorer.score_orders_population):
        with pytest.raises(DataError, match="No purchase on or before 2011-06-01"):
            score(history, as_of="2011-06-01")


def test_rescoring_predicts_single_threaded_with_the_saved_feature_order(scorer):
    # One row at a time: a thread pool costs more than it saves and stalls on a busy machine.
    for booster, _ in scorer._boosters.values():
        assert booster.feature_names == MODEL_FEATURES
        assert json.loads(booster.save_config())["learner"]["generic_param"]["nthread"] == "1"


def test_orders_sent_without_an_id_still_count(scorer):
    """A request where only some orders carry an order_id: the others are separate orders, not dropped."""
    orders = pd.DataFrame({"timestamp": ["2011-05-01", "2011-08-01", "2011-11-01"], "amount": [50.0, 70.0, 90.0],
                           "order_id": ["A1", None, ""]})
    result = scorer.score_orders(orders, customer_id="mixed-ids")
    assert result["orders"] == 3 and result["historical_value"] == pytest.approx(210.0)
    check(scorer, orders, customer_id="mixed-ids")


# --------------------------------------------------------------------------- determinism of a rescore
# Rescoring unchanged data must change nothing: the same model bit for bit, the same tiers, no profile
# re-embedded. Found in issue 13: the first build trained on the log fresh from the source (products
# without categories) and a rescore on the build's cached log (categories derived), so the category
# features, every score and a dozen tiers moved; score_customers now categorises the log itself.

def _float_columns_identical(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    """Columns of two scores tables that differ at all (floats bit for bit, NaN equal to NaN)."""
    assert a["customer_id"].tolist() == b["customer_id"].tolist()
    differ = []
    for col in a.columns:
        if col == "model_version":  # a new version folder per training, by design
            continue
        x, y = a[col], b[col]
        if x.dtype.kind in "fiumM":
            same = np.array_equal(x.to_numpy(), y.to_numpy(), equal_nan=x.dtype.kind in "fM")
        else:
            same = [repr(list(v) if isinstance(v, np.ndarray) else v) for v in x] == \
                   [repr(list(v) if isinstance(v, np.ndarray) else v) for v in y]
        if not same:
            differ.append(col)
    return differ


def test_two_trainings_on_the_same_data_give_bit_identical_models_scores_and_tiers(tmp_path):
    """The raw log (as a first build sees it) and the build's cached, categorised log read back from
    Parquet (as a rescore sees it) train the same boosters byte for byte and give the same scores and tiers."""
    from _tiers_data import fast_config, make_settings, scored_sample
    from predictor.model.artifacts import load_model_bundle
    from predictor.model.scoring import score_customers, with_categories
    from predictor.customers.tiers import apply_tiers

    raw, a, settings_a = scored_sample()  # trained on the raw sample log (shared with the tiers tests)
    cached = tmp_path / "transactions.parquet"
    with_categories(raw).to_parquet(cached, index=False)
    settings_b = make_settings(tmp_path / "rescore")
    b, _ = score_customers(pd.read_parquet(cached), settings_b, fast_config(settings_b))
    model_a, model_b = load_model_bundle(settings_a).model, load_model_bundle(settings_b).model
    # Categories are derived for the raw log too, so both runs see the category features.
    assert a["f_distinct_categories"].notna().mean() > 0.99
    for name in ("value_model", "churn_model", "interval_model", "next_order_model"):
        raw_a = getattr(model_a, name).get_booster().save_raw("ubj")
        assert raw_a == getattr(model_b, name).get_booster().save_raw("ubj"), name
    assert model_a.calibrator.X_thresholds_.tobytes() == model_b.calibrator.X_thresholds_.tobytes()
    assert model_a.calibrator.y_thresholds_.tobytes() == model_b.calibrator.y_thresholds_.tobytes()
    assert (model_a.blend_weight, model_a.last_period_scale) == (model_b.blend_weight, model_b.last_period_scale)
    assert model_a.scoring_bg.bgf.params_.equals(model_b.scoring_bg.bgf.params_)
    assert model_a.scoring_bg.ggf.params_.equals(model_b.scoring_bg.ggf.params_)
    assert _float_columns_identical(a, b) == []
    tiers_a, tiers_b = apply_tiers(a), apply_tiers(b)
    for col in ("tier", "lifecycle", "rfm_segment"):
        assert tiers_a[col].tolist() == tiers_b[col].tolist(), col


def test_categorising_the_log_is_idempotent():
    from _tiers_data import loaded_sample
    from predictor.model.scoring import with_categories

    raw = loaded_sample()
    once = with_categories(raw)
    assert raw["category"].isna().all() and once.loc[once["product_id"].notna(), "category"].notna().all()
    assert with_categories(once) is once  # a categorised log (the build's cache) is left as it is
    twice = with_categories(once.assign(category=once["category"].mask(once.index % 7 == 0)))
    assert twice["category"].equals(once["category"])


def test_main_country_ties_go_to_the_first_name_for_every_customer():
    """Each customer's country depends only on their own lines: ties go to the name that sorts first
    (as in the one-customer path), never to whichever tied row an unstable sort of everyone's counts
    left first (that flipped about 1 tied customer in 10 and could change when others bought)."""
    from predictor.model.features import CustomerHistory
    from predictor.model.scoring import _main_country

    rng = np.random.default_rng(0)
    names = ["Spain", "France", "Germany", "Belgium", "Norway"]
    rows = []
    for i in range(300):
        first, second = rng.choice(names, 2, replace=False)
        n = int(rng.integers(1, 4))
        rows += [(f"c{i:03d}", first)] * n + [(f"c{i:03d}", second)] * n + [(f"c{i:03d}", None)]
    lines = pd.DataFrame(rows, columns=["customer_id", "country"]).astype("string")
    history = CustomerHistory(orders=pd.DataFrame(), lines=lines)
    ids = pd.Index(sorted(lines["customer_id"].unique()), dtype="string")
    want = lines.dropna().groupby("customer_id")["country"].min().reindex(ids)
    assert _main_country(history, ids).tolist() == want.tolist()
    # The same answer for a subset of customers (no dependence on anyone else's counts).
    some = ids[::7]
    assert _main_country(CustomerHistory(orders=pd.DataFrame(), lines=lines[lines["customer_id"].isin(some)]),
                         some).tolist() == want.reindex(some).tolist()


def _embedded(index_line: str) -> int:
    """Profiles the index embedded in a build, from the build report's `index` line (both formats:
    'N profiles; E embedded, ...' for a collection per build, 'A added, R re-embedded' incrementally)."""
    import re

    staged = re.search(r"profiles; (\d+) embedded", index_line)
    if staged:
        return int(staged.group(1))
    added, again = re.search(r"(\d+) added", index_line), re.search(r"(\d+) re-embedded", index_line)
    assert added and again, index_line
    return int(added.group(1)) + int(again.group(1))


def _with_one_more_order(source, dest) -> str:
    """A copy of the raw CSV plus one order (a copy of one line) for a one-order customer, on the last
    day of the data (before its last invoice, so the scoring day stays). Returns the customer's id."""
    raw = pd.read_csv(source, dtype=str, keep_default_na=False)
    buyers = raw[(raw["CustomerID"] != "") & ~raw["InvoiceNo"].str.startswith("C")]
    invoices = buyers.groupby("CustomerID")["InvoiceNo"].nunique()
    last = pd.to_datetime(buyers.groupby("CustomerID")["InvoiceDate"].max())
    cancelled = set(raw.loc[raw["InvoiceNo"].str.startswith("C"), "CustomerID"])
    candidates = sorted(set(invoices.index[invoices == 1]) & set(last.index[last < "2011-09-01"]) - cancelled)
    who = candidates[len(candidates) // 2]
    line = buyers[buyers["CustomerID"] == who].head(1).assign(InvoiceNo="599999", InvoiceDate="2011-12-09 08:00:00")
    pd.concat([raw, line], ignore_index=True).to_csv(dest, index=False)
    return str(int(float(who)))


def test_rescoring_unchanged_data_reembeds_nothing_and_moves_no_tier_and_one_order_reembeds_one(tmp_path):
    """build -> build --rescore on the same data -> build with one more order for one customer, with the
    index (the model-free hashing embedder keeps it quick; the texts are what matter)."""
    pytest.importorskip("chromadb")
    from _tiers_data import fast_config, make_settings, sample_csv
    from predictor.build import build
    from predictor.build_state import profiles_path

    settings = make_settings(tmp_path / "data", embedding_model="hashing-384")
    kwargs = dict(schema="online_retail", with_index=True, progress=False, training_config=fast_config(settings))
    first = build(settings, data_path=sample_csv(), **kwargs)
    assert _embedded(first.index) > 0.99 * first.customers
    before = pd.read_parquet(profiles_path(settings)).set_index("customer_id")
    scores_before = pd.read_parquet(settings.scores_path)

    again = build(settings, data_path=sample_csv(), rescore=True, **kwargs)
    assert not again.scores_reused and again.transactions_reused  # retrained, on the build's cached log
    assert again.changes.tier_moves == 0 and again.changes.changed == 0 and again.changes.new == 0
    assert _embedded(again.index) == 0, again.index
    assert _float_columns_identical(scores_before, pd.read_parquet(settings.scores_path)) == []
    rescored = pd.read_parquet(profiles_path(settings)).set_index("customer_id")
    assert rescored.equals(before)

    more = tmp_path / "one_more_order.csv.gz"
    who = _with_one_more_order(sample_csv(), more)
    after = build(settings, data_path=more, **kwargs)
    assert after.customers == first.customers
    profiles = pd.read_parquet(profiles_path(settings)).set_index("customer_id")
    changed = profiles.index[(profiles["embedding_text"] != before.loc[profiles.index, "embedding_text"]).to_numpy()]
    assert changed.tolist() == [who]  # a customer's embedding text depends on their own history only
    assert "Single order so far." in before.at[who, "embedding_text"]
    assert "Single order so far." not in profiles.at[who, "embedding_text"]
    assert _embedded(after.index) == 1, after.index
