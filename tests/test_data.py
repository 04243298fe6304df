"""Loading and cleaning transaction logs (predictor.data.load) on real data: the shape of the cleaned table
and every cleaning rule (removals, cancellations, outliers) on a fixture cut from UCI Online Retail
(tests/fixtures/make_fixtures.py).

Expected figures are computed independently with pandas from the raw rows (tests/_data_support.py), or
taken from the data set's README; nothing is copied from the loader's own output."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from predictor.data.cleaning_report import CleaningReport
from predictor.data.load import load_transactions, source_fingerprint
from predictor.data.schema import NON_PRODUCT_CODES, OUTPUT_DTYPES
from predictor.settings import Settings

from _data_support import FIXTURE, RAW_COLUMNS, expected, load, raw, result  # noqa: F401


# ----------------------------------------------------------------------------- shape


def test_columns_dtypes_and_order_follow_the_contract(result):
    tx = result.transactions
    assert list(tx.columns) == list(OUTPUT_DTYPES)
    for col, dtype in OUTPUT_DTYPES.items():
        assert str(tx[col].dtype) == dtype, col
    assert tx["category"].isna().all()  # Online Retail has no category
    keys = list(zip(tx["customer_id"], tx["timestamp"]))
    assert keys == sorted(keys)
    # Float-string ids are normalised: "17850.0" -> "17850".
    assert not tx["customer_id"].str.contains(r"\.").any()
    assert isinstance(result.report, CleaningReport)
    assert result.fingerprint == source_fingerprint(FIXTURE)
    assert result.source == str(FIXTURE.resolve())


def test_report_conserves_rows_and_money(result, raw, expected):
    rep = result.report
    tx = result.transactions
    assert rep.rows_read == len(raw)
    assert rep.amount_read == pytest.approx(expected["amount"])
    assert rep.customers_read == raw.loc[raw["CustomerID"] != "", "CustomerID"].nunique()
    assert rep.rows_kept == len(tx) and rep.customers_kept == tx["customer_id"].nunique()
    assert rep.amount_kept == pytest.approx(tx["amount"].sum())
    assert rep.rows_read - sum(r.rows_removed for r in rep.rules) == rep.rows_kept
    assert rep.amount_read - sum(r.amount_removed for r in rep.rules) == pytest.approx(rep.amount_kept)
    table = rep.to_table()
    for r in rep.rules:
        assert r.name in table and f"{r.rows_removed:,}" in table
    assert f"{rep.rows_read:,}" in table


# ----------------------------------------------------------------------------- removal rules


@pytest.mark.parametrize("rule", ["exact_duplicates", "missing_customer", "non_product_codes", "non_positive_price"])
def test_removal_rule_counts_match_an_independent_recount(result, expected, rule):
    rows, amount = expected[rule]
    assert rows > 0, f"the fixture must exercise {rule}"
    got = result.report.rule(rule)
    assert got.action == "removed"
    assert got.rows_removed == rows
    assert got.amount_removed == pytest.approx(amount, abs=1e-6)


def test_removed_lines_are_gone(result, raw):
    tx = result.transactions
    assert tx["customer_id"].notna().all()
    assert not tx["product_id"].str.upper().isin(NON_PRODUCT_CODES).any()
    assert not tx["product_id"].str.startswith("gift_").any()
    assert not tx["order_id"].str.startswith("A").any()
    assert ((tx["amount"] != 0) | tx["is_cancellation"]).all()
    # The bad-debt adjustments are in the fixture but not in the output.
    assert (raw["StockCode"] == "B").sum() == 3
    # Duplicates are kept once: every purchase line key appears once.
    buys = tx[~tx["is_cancellation"]]
    key = ["order_id", "product_id", "product_name", "quantity", "amount", "timestamp"]
    assert not buys.duplicated(subset=key).any()


# ----------------------------------------------------------------------------- cancellations


def test_cancellations_are_negative_lines_at_their_own_time(result, raw):
    tx = result.transactions
    canc = tx[tx["is_cancellation"]]
    assert len(canc) > 0 and (canc["amount"] < 0).all() and (canc["quantity"] < 0).all()
    assert canc["order_id"].str.startswith("C").all()
    src = raw[raw["InvoiceNo"].str.startswith("C")]
    when = dict(zip(src["InvoiceNo"], pd.to_datetime(src["InvoiceDate"])))
    assert all(when[o] == t for o, t in zip(canc["order_id"], canc["timestamp"]))
    assert result.report.rule("cancellations_netted").rows_flagged == len(canc)
    assert result.report.rule("cancellations_netted").amount_flagged == pytest.approx(canc["amount"].sum())


def test_net_quantity_never_goes_below_zero(result, raw):
    """Capping: no customer cancels more of a product than they bought before the cancellation."""
    tx = result.transactions.sort_values(["customer_id", "product_id", "timestamp", "is_cancellation"])
    running = tx.groupby(["customer_id", "product_id"])["quantity"].cumsum()
    assert (running >= -1e-9).all()
    capped = result.report.rule("cancellation_capped")
    assert capped.rows_flagged > 0  # the fixture has over-sized cancellations
    # A capped line keeps the cancellation's own unit price.
    src = raw[raw["InvoiceNo"].str.startswith("C")].drop_duplicates(subset=RAW_COLUMNS)
    price = {(o, p): float(u) for o, p, u in zip(src["InvoiceNo"], src["StockCode"], src["UnitPrice"])}
    canc = tx[tx["is_cancellation"]]
    unit = canc["amount"] / canc["quantity"]
    assert np.allclose(unit, [price[(o, p)] for o, p in zip(canc["order_id"], canc["product_id"])])


def test_cancellations_without_an_earlier_purchase_are_dropped(result, expected):
    s = expected["survivors"]
    s = s.assign(ts=pd.to_datetime(s["InvoiceDate"]), cancel=s["InvoiceNo"].str.startswith("C"))
    first_buy = s[~s["cancel"]].groupby(["CustomerID", "StockCode"])["ts"].min()
    canc = s[s["cancel"]].join(first_buy.rename("first"), on=["CustomerID", "StockCode"])
    orphan = canc[canc["first"].isna() | (canc["first"] > canc["ts"])]
    assert len(orphan) > 0
    kept = set(zip(result.transactions["order_id"], result.transactions["product_id"]))
    assert not any((o, p) in kept for o, p in zip(orphan["InvoiceNo"], orphan["StockCode"]))
    rule = result.report.rule("unmatched_cancellations")
    assert rule.rows_removed >= len(orphan)
    assert rule.amount_removed < 0


def test_a_cancellation_after_the_cutoff_does_not_change_earlier_lines(result, raw, tmp_path):
    """Lines up to a cutoff are identical whether or not the later cancellations exist."""
    cutoff = pd.Timestamp("2011-06-30")
    late = raw["InvoiceNo"].str.startswith("C") & (pd.to_datetime(raw["InvoiceDate"]) > cutoff)
    assert late.sum() > 10
    path = tmp_path / "no_late_cancellations.csv"
    raw[~late].to_csv(path, index=False)
    without = load(path).transactions
    with_ = result.transactions
    before = lambda df: df[df["timestamp"] <= cutoff].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(before(with_), before(without))
    # ...and the later cancellations do reduce later value, on their own dates.
    assert with_.loc[with_["timestamp"] > cutoff, "amount"].sum() < without.loc[without["timestamp"] > cutoff, "amount"].sum()


# ----------------------------------------------------------------------------- outliers


def test_giant_same_day_cancelled_lines_are_flagged_not_dropped(result):
    tx = result.transactions
    rep = result.report
    flagged = tx[tx["is_outlier"]]
    for qty in (80995, 74215):
        pair = tx[tx["quantity"].abs() == qty]
        assert len(pair) == 2 and pair["is_outlier"].all()
        assert pair["amount"].sum() == pytest.approx(0)
        assert pair["timestamp"].dt.date.nunique() == 1
    buys = tx[~tx["is_cancellation"]]
    assert (buys.loc[buys["is_outlier"], "amount"] > rep.outlier_threshold).all()
    assert (buys.loc[~buys["is_outlier"], "amount"] <= rep.outlier_threshold).all()
    # Each flagged cancellation follows a flagged purchase of the same product by the customer.
    for _, c in flagged[flagged["is_cancellation"]].iterrows():
        b = flagged[~flagged["is_cancellation"] & (flagged["customer_id"] == c["customer_id"])
                    & (flagged["product_id"] == c["product_id"]) & (flagged["timestamp"] <= c["timestamp"])]
        assert len(b) > 0
    assert rep.rule("extreme_outliers").rows_flagged == len(flagged)
    assert rep.rule("extreme_outliers").rows_removed == 0


def test_outlier_threshold_follows_the_setting(raw):
    loose = load_transactions(FIXTURE, "online_retail", settings=Settings(threads=1, outlier_robust_z=4.0))
    strict = load_transactions(FIXTURE, "online_retail", settings=Settings(threads=1, outlier_robust_z=12.0))
    assert loose.report.outlier_threshold < strict.report.outlier_threshold
    assert loose.transactions["is_outlier"].sum() > strict.transactions["is_outlier"].sum()
    assert len(loose.transactions) == len(strict.transactions)  # flagged, never dropped
