"""Data for the tools-layer tests and the API load benchmark.

`tools_data_dir` is a real `valuedesk build` (see below). `crude_data_dir` writes a customers table and
cleaned transactions from the real Online Retail file with simple rules (last-period spend as the "prediction", recency-based churn risk). It served the tools
tests before `valuedesk build` existed and remains the benchmark's `--source crude` for machines
without a build; the numbers it writes are placeholders, never accuracy claims.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from predictor.customers.audience import LIFECYCLE_STAGES, RFM_SEGMENTS
from predictor.campaigns.products import name_category
from predictor.customers.tiers import flag_at_risk
from predictor.settings import SHARED_DATA, Settings
from tools.settings import ServingSettings

ONLINE_RETAIL = SHARED_DATA / "online_retail" / "online_retail.csv.gz"


def crude_transactions(path: Path = ONLINE_RETAIL, nrows: int | None = None) -> pd.DataFrame:
    raw = pd.read_csv(path, nrows=nrows, dtype={"InvoiceNo": str, "StockCode": str, "CustomerID": "Float64"})
    raw = raw.dropna(subset=["CustomerID"])
    raw = raw[raw["UnitPrice"] > 0]
    tx = pd.DataFrame({
        "customer_id": raw["CustomerID"].astype("Int64").astype(str),
        "order_id": raw["InvoiceNo"].astype(str),
        "timestamp": pd.to_datetime(raw["InvoiceDate"]),
        "amount": raw["Quantity"] * raw["UnitPrice"],
        "quantity": raw["Quantity"].astype(float),
        "product_id": raw["StockCode"].astype(str),
        "product_name": raw["Description"].astype("string"),
        "country": raw["Country"].astype("string"),
    })
    tx["is_cancellation"] = tx["order_id"].str.startswith("C")
    tx["is_outlier"] = False
    return tx.sort_values(["customer_id", "timestamp"], kind="stable").reset_index(drop=True)


def crude_customers(tx: pd.DataFrame, horizon_days: int = 180) -> pd.DataFrame:
    as_of = tx["timestamp"].max()
    g = tx.groupby("customer_id", sort=True)
    out = pd.DataFrame({
        "historical_value": g["amount"].sum(),
        "orders": g["order_id"].nunique(),
        "first_order": g["timestamp"].min(),
        "last_order": g["timestamp"].max(),
        "country": g["country"].agg(lambda s: s.mode().iloc[0] if s.notna().any() else pd.NA),
    })
    recent = tx[tx["timestamp"] > as_of - pd.Timedelta(days=365)].groupby("customer_id")["amount"].sum()
    last_period = tx[tx["timestamp"] > as_of - pd.Timedelta(days=horizon_days)].groupby("customer_id")["amount"].sum()
    out["revenue_12m"] = recent.reindex(out.index).fillna(0.0)
    out["predicted_value"] = last_period.reindex(out.index).fillna(0.0).clip(lower=0)
    out["value_p10"] = out["predicted_value"] * 0.5
    out["value_p90"] = out["predicted_value"] * 1.6
    out["recency_days"] = (as_of - out["last_order"]).dt.total_seconds() / 86400
    out["tenure_days"] = (as_of - out["first_order"]).dt.total_seconds() / 86400
    out["mean_gap_days"] = np.where(out["orders"] > 1, out["tenure_days"] / (out["orders"] - 1).clip(lower=1), np.nan)
    gap = out["mean_gap_days"].fillna(90.0)
    out["churn_risk"] = 1 / (1 + np.exp(-(out["recency_days"] / gap - 1.5)))
    out["aov"] = out["historical_value"] / out["orders"]
    out["expected_next_order"] = out["last_order"] + pd.to_timedelta(gap, unit="D")
    out["next_order_days"] = gap - out["recency_days"]
    out["customer_value"] = out["revenue_12m"] + out["predicted_value"]
    out["value_if_retained"] = out[["predicted_value", "revenue_12m"]].max(axis=1) * 0.5
    out["value_at_risk"] = out["churn_risk"] * out["value_if_retained"]
    rank = out["customer_value"].rank(pct=True, method="first")
    out["tier"] = np.select([rank > 0.99, rank > 0.95, rank > 0.80], ["Platinum", "Gold", "Silver"], "Bronze")
    ratio = out["recency_days"] / gap
    out["lifecycle"] = np.select(
        [out["tenure_days"] < 60, ratio < 1, ratio < 2, ratio < 4], list(LIFECYCLE_STAGES[:4]), LIFECYCLE_STAGES[4])
    out["at_risk"] = flag_at_risk(out, out["lifecycle"])  # the one definition, on these crude stages
    out["r_score"] = pd.qcut(-out["recency_days"].rank(method="first"), 5, labels=False) + 1
    out["f_score"] = pd.qcut(out["orders"].rank(method="first"), 5, labels=False) + 1
    out["m_score"] = pd.qcut(out["historical_value"].rank(method="first"), 5, labels=False) + 1
    out["rfm_segment"] = [RFM_SEGMENTS[(r * 3 + f) % len(RFM_SEGMENTS)] for r, f in zip(out["r_score"], out["f_score"])]
    top = (tx.dropna(subset=["product_name"]).groupby(["customer_id", "product_name"])["amount"].sum()
           .reset_index().sort_values(["customer_id", "amount"], ascending=[True, False]))
    top_lists: dict[str, list[str]] = {}
    for cid, name in zip(top["customer_id"], top["product_name"]):
        names = top_lists.setdefault(cid, [])
        if len(names) < 3:
            names.append(str(name))
    out["top_products"] = [top_lists.get(cid, []) for cid in out.index]
    out["suggested_products"] = out["top_products"].map(lambda v: v[:2])
    out["top_categories"] = out["top_products"].map(lambda v: sorted({name_category(x) for x in v}) or ["OTHER"])
    out["drivers"] = [[f"last order {r:.0f} days ago", f"{o} orders so far"] for r, o in
                      zip(out["recency_days"], out["orders"])]
    out["horizon_days"] = horizon_days
    out["as_of"] = as_of
    out["profile_text"] = ("Customer in " + out["country"].astype(str) + ", tier " + out["tier"] + ", buys "
                           + out["top_products"].map(", ".join))
    return out.reset_index()


def crude_data_dir(data_dir: Path, nrows: int | None = None) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    tx = crude_transactions(nrows=nrows)
    crude_customers(tx).to_parquet(data_dir / "customers.parquet", index=False)
    tx.to_parquet(data_dir / "transactions.parquet", index=False)
    return data_dir


# The tools tests run on a real `valuedesk build` of one customer in four from the real Online Retail
# file, with the small model configuration and the model-free hashing embedder for the profile index
# (a real Chroma index; MiniLM would add minutes of embedding to every test run).
TEST_ENV = {"VALUEDESK_EMBEDDING_MODEL": "hashing", "VALUEDESK_THREADS": "1"}


def tools_settings(**overrides) -> ServingSettings:
    return ServingSettings(data_dir=tools_data_dir(), embedding_model="hashing", threads=1, **overrides)


def tools_env() -> dict[str, str]:
    """Environment for subprocesses (CLI, MCP server) that must open the same data directory."""
    return {"VALUEDESK_DATA_DIR": str(tools_data_dir()), **TEST_ENV}


@functools.lru_cache(maxsize=None)
def tools_data_dir() -> Path:
    """One real build per test process, shared by the tools-layer test modules."""
    from _tiers_data import fast_config, sample_csv
    from predictor.build import build

    data_dir = Path(tempfile.mkdtemp(prefix="vd-tools-"))
    atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    settings = Settings(data_dir=data_dir, embedding_model="hashing", threads=1)
    build(settings, data_path=sample_csv(), schema="online_retail", with_index=True, progress=False,
          training_config=fast_config(settings))
    return data_dir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_in_thread(app, port: int | None = None):
    """Run an ASGI app with uvicorn on a real 127.0.0.1 socket; yields its base URL."""
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
