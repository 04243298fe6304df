"""Wall time and peak RSS of loading + cleaning the full Online Retail file.

Each variant runs in its own fresh interpreter, so peak RSS (ru_maxrss) is that variant's alone:

* duckdb        - predictor.data.load.load_transactions with the default settings
* duckdb-256MB  - the same with VALUEDESK_DUCKDB_MEMORY_LIMIT=256MB (what streaming buys)
* pandas        - a plain pandas read_csv + the same cleaning rules, the usual baseline

With --scale N it then repeats the comparison on the file copied N times (each copy with its own
customer and invoice numbers, written to bench/out/), which shows how each approach grows with the
input: pandas holds every raw line as Python strings, DuckDB streams the file and holds only what
survives cleaning.

    .venv/bin/python bench/bench_load.py [--data PATH] [--scale N] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD_DUCKDB = """
import json, resource, sys, time
t0 = time.perf_counter()
from predictor.data.load import load_transactions
from predictor.settings import Settings
t1 = time.perf_counter()
res = load_transactions(sys.argv[1], "online_retail", settings=Settings())
t2 = time.perf_counter()
tx = res.transactions
print(json.dumps({"import_s": t1 - t0, "wall_s": t2 - t1, "rows": len(tx), "customers": int(tx.customer_id.nunique()),
                  "amount": float(tx.amount.sum()), "outliers": int(tx.is_outlier.sum()),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

CHILD_PANDAS = """
import json, resource, sys, time
t0 = time.perf_counter()
import numpy as np, pandas as pd
from predictor.data.schema import NON_PRODUCT_CODES
t1 = time.perf_counter()
df = pd.read_csv(sys.argv[1], dtype={"InvoiceNo": str, "StockCode": str, "Description": str, "CustomerID": str,
                                      "Country": str}, parse_dates=["InvoiceDate"])
df = df[~df.duplicated()]
df = df[df["CustomerID"].notna()]
code = df["StockCode"]
df = df[~(code.str.upper().isin(NON_PRODUCT_CODES) | code.str.lower().str.startswith("gift_")
          | df["InvoiceNo"].str.startswith("A"))]
df = df[df["UnitPrice"] > 0].copy()
df["customer_id"] = df["CustomerID"].str.replace(r"\\.0+$", "", regex=True)
df["amount"] = df["Quantity"] * df["UnitPrice"]
df["is_cancellation"] = df["InvoiceNo"].str.startswith("C")
df["x"] = np.where(df["is_cancellation"], -df["Quantity"].abs(), df["Quantity"].abs()).astype(float)
df = df.sort_values(["customer_id", "StockCode", "InvoiceDate", "is_cancellation", "InvoiceNo", "x", "amount"])
g = df.groupby(["customer_id", "StockCode"], sort=False)
s = g["x"].cumsum()
bal = s - np.minimum(0, s.groupby([df["customer_id"], df["StockCode"]]).cummin())
prev = bal.groupby([df["customer_id"], df["StockCode"]]).shift(fill_value=0)
netted = prev - bal
c = df["is_cancellation"]
scale = np.where(c, netted / -df["x"], 1.0)
df["amount"] = df["amount"] * scale
df["Quantity"] = df["Quantity"] * scale
df = df[~(c & (netted <= 0))]
buys = df[~df["is_cancellation"] & (df["amount"] > 0)]
la = np.log(buys["amount"])
thr = np.exp(la.median() + 8 * 1.4826 * (la - la.median()).abs().median())
flag = ~df["is_cancellation"] & (df["amount"] > thr)
first = df[flag].groupby(["customer_id", "StockCode"])["InvoiceDate"].min().rename("first_flag")
df = df.join(first, on=["customer_id", "StockCode"])
df["is_outlier"] = flag | (df["is_cancellation"] & (df["InvoiceDate"] >= df["first_flag"]))
df = df.sort_values(["customer_id", "InvoiceDate"]).reset_index(drop=True)
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "wall_s": t2 - t1, "rows": len(df), "customers": int(df.customer_id.nunique()),
                  "amount": float(df.amount.sum()), "outliers": int(df.is_outlier.sum()),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(code: str, data: str, env_extra: dict[str, str] | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    out = subprocess.run([sys.executable, "-c", code, data], capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_scaled(data: str, n: int) -> Path:
    """The Online Retail file n times over, copy k with customer ids + k*100000 and invoices
    prefixed k-, so no copy duplicates another."""
    import duckdb

    out = ROOT / "bench" / "out" / f"online_retail_x{n}.csv"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.csv")
    src = data.replace("'", "''")
    duckdb.execute(f"""
        COPY (SELECT
            CASE WHEN k = 0 THEN InvoiceNo WHEN InvoiceNo[1] IN ('C', 'A') THEN InvoiceNo[1] || k || '-' || InvoiceNo[2:]
                 ELSE k || '-' || InvoiceNo END AS InvoiceNo,
            StockCode, Description, Quantity, InvoiceDate, UnitPrice,
            CAST(CAST(CAST(CustomerID AS DOUBLE) AS BIGINT) + k * 100000 AS VARCHAR) || '.0' AS CustomerID, Country
          FROM read_csv('{src}', header=true, all_varchar=true), range({n}) r(k))
        TO '{str(tmp).replace("'", "''")}' (HEADER, DELIMITER ',')""")
    os.replace(tmp, out)
    return out


def compare(data: str) -> dict:
    results = {
        "duckdb": run(CHILD_DUCKDB, data),
        "duckdb-256MB": run(CHILD_DUCKDB, data, {"VALUEDESK_DUCKDB_MEMORY_LIMIT": "256MB"}),
        "pandas": run(CHILD_PANDAS, data),
    }
    print(f"\ndata: {data} ({Path(data).stat().st_size / 2**20:.1f} MiB on disk)")
    print(f"{'variant':<14}{'wall s':>8}{'peak RSS MB':>13}{'rows kept':>11}{'customers':>11}{'net amount':>16}{'outliers':>10}")
    for name, r in results.items():
        print(f"{name:<14}{r['wall_s']:>8.2f}{r['peak_rss_mb']:>13.0f}{r['rows']:>11,}{r['customers']:>11,}"
              f"{r['amount']:>16,.2f}{r['outliers']:>10,}")
    d, p = results["duckdb"], results["pandas"]
    ratio = {"rss_duckdb_over_pandas": d["peak_rss_mb"] / p["peak_rss_mb"],
             "rss_duckdb256_over_pandas": results["duckdb-256MB"]["peak_rss_mb"] / p["peak_rss_mb"],
             "time_duckdb_over_pandas": d["wall_s"] / p["wall_s"]}
    print(f"duckdb / pandas: peak RSS x{ratio['rss_duckdb_over_pandas']:.2f} "
          f"(256MB limit: x{ratio['rss_duckdb256_over_pandas']:.2f}), wall time x{ratio['time_duckdb_over_pandas']:.2f}")
    return {"data": data, "results": results, "ratio": ratio}


def main(argv: list[str] | None = None) -> int:
    from predictor.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Settings().default_data))
    parser.add_argument("--scale", type=int, default=1, help="also run on the file copied N times")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    if not Path(args.data).exists():
        raise SystemExit(f"error: data file not found: {args.data}")

    runs = [compare(args.data)]
    if args.scale > 1:
        runs.append(compare(str(make_scaled(args.data, args.scale))))
    if args.json:
        target = Path(args.json)
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(json.dumps(runs, indent=2))
        os.replace(tmp, target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
