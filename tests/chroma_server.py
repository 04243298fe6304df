"""Helpers for the index tests and benchmark: a real `chroma run` server, and profiles of real
Online Retail customers built without training the models.

The profile helper aggregates the real transactions per customer and stands in simple, documented
proxies for the model outputs (predicted value, churn risk) so the index tests do not pay for a
model fit; the text is then written by the project's own `build_profiles`, so it reads exactly
like production profiles. Nothing here is used for accuracy claims.
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from predictor.customers.tiers import flag_at_risk

REPO = Path(__file__).resolve().parent.parent
ONLINE_RETAIL = REPO.parent / "shared" / "data" / "online_retail" / "online_retail.csv.gz"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ChromaServer:
    """`chroma run` on 127.0.0.1 at a free port, with its own data path."""

    def __init__(self, path: Path, port: int | None = None):
        self.path = Path(path)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self, wait_s: float = 60.0) -> "ChromaServer":
        import httpx

        exe = Path(sys.executable).parent / "chroma"
        if not exe.exists():
            raise RuntimeError(f"the chroma CLI is not installed next to {sys.executable}")
        self.path.mkdir(parents=True, exist_ok=True)
        self._log = open(self.path.parent / f"chroma-{self.port}.log", "wb")
        self.proc = subprocess.Popen([str(exe), "run", "--host", "127.0.0.1", "--port", str(self.port),
                                      "--path", str(self.path)], stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "ANONYMIZED_TELEMETRY": "False"})
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chroma run exited with {self.proc.returncode}; see {self._log.name}")
            try:
                if httpx.get(f"{self.url}/api/v2/heartbeat", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"chroma run did not answer its heartbeat within {wait_s}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if self._log:
            self._log.close()
            self._log = None

    def __enter__(self) -> "ChromaServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@functools.lru_cache(maxsize=1)
def _customers() -> pd.DataFrame:
    raw = pd.read_csv(ONLINE_RETAIL, dtype={"CustomerID": str, "InvoiceNo": str, "StockCode": str})
    raw = raw.dropna(subset=["CustomerID"])
    raw = raw[(raw["Quantity"] > 0) & (raw["UnitPrice"] > 0) & ~raw["InvoiceNo"].str.startswith("C")]
    raw["customer_id"] = raw["CustomerID"].str.replace(r"\.0$", "", regex=True)
    raw["ts"] = pd.to_datetime(raw["InvoiceDate"])
    raw["amount"] = raw["Quantity"] * raw["UnitPrice"]
    as_of = raw["ts"].max()
    g = raw.groupby("customer_id")
    orders = g["InvoiceNo"].nunique()
    first, last = g["ts"].min(), g["ts"].max()
    hist = g["amount"].sum()
    rev12 = raw[raw["ts"] > as_of - pd.Timedelta(days=365)].groupby("customer_id")["amount"].sum()
    country = g["Country"].agg(lambda s: s.mode().iat[0])
    names = raw.assign(name=raw["Description"].str.strip().str.title())
    top = (names.groupby(["customer_id", "name"])["Quantity"].sum().reset_index()
           .sort_values(["customer_id", "Quantity"], ascending=[True, False])
           .groupby("customer_id")["name"].apply(lambda s: list(s.head(3))))
    df = pd.DataFrame({"orders": orders, "first_order": first, "last_order": last, "historical_value": hist,
                       "country": country, "top_products": top})
    df["revenue_12m"] = rev12.reindex(df.index).fillna(0.0)
    df["recency_days"] = (as_of - df["last_order"]).dt.total_seconds() / 86400
    df["tenure_days"] = (as_of - df["first_order"]).dt.total_seconds() / 86400
    df["mean_gap_days"] = np.where(df["orders"] > 1, (df["tenure_days"] - df["recency_days"]) / (df["orders"] - 1).clip(lower=1), np.nan)
    df["aov"] = df["historical_value"] / df["orders"]
    # Proxies for model outputs (see module docstring): churn grows with recency relative to cadence.
    cadence = df["mean_gap_days"].fillna(90.0).clip(lower=7.0)
    df["churn_risk"] = (1 - np.exp(-df["recency_days"] / (2.0 * cadence))).round(4)
    df["predicted_value"] = (df["revenue_12m"] * 0.5 * (1 - df["churn_risk"])).round(2)
    df["value_at_risk"] = (df["churn_risk"] * df["revenue_12m"] * 0.5).round(2)
    df["customer_value"] = df["revenue_12m"] + df["predicted_value"]
    rank = df["customer_value"].rank(pct=True, method="first")
    df["tier"] = np.select([rank > 0.99, rank > 0.95, rank > 0.80], ["Platinum", "Gold", "Silver"], "Bronze")
    ratio = df["recency_days"] / cadence
    df["lifecycle"] = np.select([df["tenure_days"] < 30, ratio < 1.0, ratio < 2.0, ratio < 4.0],
                                ["new", "active", "at risk", "lapsing"], "lapsed")
    df["at_risk"] = flag_at_risk(df, df["lifecycle"])  # the one definition, on these proxy stages
    r = pd.qcut(df["recency_days"].rank(method="first"), 5, labels=[5, 4, 3, 2, 1]).astype(int)
    f = pd.qcut(df["orders"].rank(method="first"), 5, labels=[1, 2, 3, 4, 5]).astype(int)
    df["rfm_segment"] = np.select([(r >= 4) & (f >= 4), (f >= 4), (r >= 4) & (f <= 1), (r >= 3) & (f >= 2),
                                   (r <= 2) & (f >= 3), (r <= 1)],
                                  ["Champions", "Loyal", "New", "Potential Loyalist", "At Risk", "Lost"],
                                  "Need Attention")
    df["horizon_days"] = 180
    return df.reset_index().rename(columns={"index": "customer_id"})


def real_profiles(n: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Profiles (build_profiles format) of `n` real customers, sampled with `seed` (all if None)."""
    from predictor.customers.profiles import build_profiles

    customers = _customers()
    if n is not None and n < len(customers):
        customers = customers.sample(n=n, random_state=seed).sort_values("customer_id")
    return build_profiles(customers).reset_index(drop=True)


def bootstrap_profiles(n: int, seed: int = 0) -> pd.DataFrame:
    """`n` profiles resampled with replacement from every real customer, under fresh ids."""
    base = real_profiles()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(base), n)
    out = base.iloc[idx].reset_index(drop=True)
    out["source_customer"] = out["customer_id"].astype(str)
    out["customer_id"] = [f"B{i:07d}" for i in range(n)]
    return out


def scratch_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
