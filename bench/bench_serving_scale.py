"""find_customers / get_customer latency against a 10M-customer build, in-process (issue 18).

1. Bootstraps N customers (default 10,000,000) from a real built customers table: real rows sampled with
   replacement with a fixed seed, each given a new unique id; every other column keeps the real
   customer's values (synthetic, for scale tests only). Each copy also gets its source customer's last
   order lines, so get_customer's recent orders are real work. Written in row groups of 500k with
   pyarrow (the schema and its pandas metadata are the real table's), as a flat data directory the
   tools' data layer serves (customers.parquet, transactions.parquet, the real build's models/).
2. In a fresh child process per table, loads it through the real `ToolRegistry(ToolDeps(...))` and its
   `warm()` (what the HTTP API and the agent do) and times `registry.call` (validation, the tool, the
   JSON dump and the audit trail's fsynced append) and the bare tool function with the same deps:
   - find_customers over a mix of marketer filters, sorts, limits and pages: cold (the filter never
     asked: the audience engine's selection cache cleared before each call) and warm (asked before);
   - get_customer for random existing ids (the first call after loading reported on its own).
3. Does the same on a baseline table (the real 1x table by default, or bootstrapped sizes) in the same
   run and prints the ratios, the peak memory of every process and the load average before and after.

    VALUEDESK_DATA_DIR=/tmp/h2data .venv/bin/python bench/bench_serving_scale.py
    .venv/bin/python bench/bench_serving_scale.py --source /tmp/h2data --customers 10000000 --baselines real,1000000

`--columns full` (the default) keeps every column the build writes: the tools serve profile_text, the four
list columns and the model's f_* features from a memory-mapped Arrow file beside customers.parquet
(tools/mapped.py), which a separate child builds first and times (`cache_build_s`); the measuring child then
loads with the cache present. `--columns lean` leaves those 36 columns out (the earlier in-memory-only
measurement). Each child reports its peak RSS and, at the end, its resident memory split into anonymous
(the heap) and file-backed (mapped pages touched). The source data directory is only read.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

HEAVY_COLUMNS = ("profile_text", "drivers", "top_categories", "top_products", "suggested_products")
ROW_GROUP = 500_000

# A marketer's mix: at-risk top customers, tiers, countries, churn thresholds, value ranges, sorts, pages.
FIND_MIX = [
    {"tiers": ["Platinum", "Gold"], "at_risk": True},                                 # at-risk top customers
    {"tiers": ["Platinum", "Gold"], "min_churn_risk": 0.5, "limit": 100},
    {},                                                                               # top value at risk
    {"offset": 1000, "limit": 50},                                                    # paging everyone
    {"tiers": ["Gold"], "sort_by": "customer_value", "offset": 20},                  # page 2 of a tier
    {"countries": ["Germany"], "sort_by": "predicted_value"},
    {"countries": ["France", "Spain", "Belgium"], "min_churn_risk": 0.6, "sort_by": "churn_risk"},
    {"min_churn_risk": 0.8, "sort_by": "value_at_risk", "limit": 200},
    {"lifecycle": ["lapsing", "at risk"], "sort_by": "historical_value", "limit": 50},
    {"segments": ["Champions", "Loyal"], "sort_by": "customer_value", "limit": 50},
    {"segments": ["Can't Lose Them", "At Risk"], "min_value": 100},
    {"tiers": ["Silver"], "max_churn_risk": 0.3, "sort_by": "predicted_value", "offset": 100},
    {"lifecycle": ["new"], "sort_by": "predicted_value", "limit": 20},
    {"min_value": 500, "max_value": 5000, "max_recency_days": 90},
    {"tiers": ["Bronze"], "lifecycle": ["lapsed"], "sort_by": "historical_value", "limit": 500},
    {"countries": ["United Kingdom"], "at_risk": True, "sort_by": "value_at_risk", "offset": 500, "limit": 100},
]


def hwm_gib() -> float:
    """This process's peak resident memory (VmHWM), GiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def rss_gib(field: str = "VmRSS") -> float:
    """This process's resident memory (VmRSS), or its anonymous (RssAnon) or file-backed (RssFile) part, GiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def prepare_cache(data_dir: Path) -> dict:
    """Build the mapped file of the heavy columns (what the first load of a build does), timed on its own."""
    import pyarrow.parquet as pq

    from tools.mapped import cache_paths, heavy_columns, mapped_columns

    path = data_dir / "customers.parquet"
    heavy = heavy_columns(pq.read_schema(path))
    t = time.perf_counter()
    if heavy:
        mapped_columns(path, heavy)
    cache = cache_paths(path)[0]
    return {"cache_build_s": round(time.perf_counter() - t, 1), "heavy_columns": len(heavy),
            "cache_gib": round(cache.stat().st_size / 2**30, 2) if cache.exists() else 0.0,
            "parquet_gib": round(path.stat().st_size / 2**30, 2), "peak_rss_gib": round(hwm_gib(), 2)}


# ---------------------------------------------------------------- bootstrap


def source_build(data_dir: Path) -> Path:
    """The serving build of a data directory (its `current` version, or the directory when flat)."""
    current = data_dir / "current"
    return current.resolve() if current.exists() else data_dir


def bootstrap(source: Path, out: Path, n: int, seed: int, lines: int, columns: str) -> dict:
    """Write N bootstrapped customers (and their copied order lines) as a flat data directory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    customers = pq.read_table(source / "customers.parquet")
    if columns == "lean":  # the model's feature columns (f_*) are kept for scoring; no tool reads them
        customers = customers.drop_columns([c for c in customers.column_names
                                            if c in HEAVY_COLUMNS or c.startswith("f_")])
    ids = customers.column("customer_id").cast(pa.string()).to_numpy(zero_copy_only=False).astype(str)
    pick = np.random.default_rng(seed).integers(0, len(ids), n)
    out.mkdir(parents=True, exist_ok=True)
    id_field = customers.schema.field("customer_id")
    with pq.ParquetWriter(out / "customers.parquet", customers.schema) as writer:
        for start in range(0, n, ROW_GROUP):
            part = customers.take(pick[start:start + ROW_GROUP])
            new_ids = pa.array([f"B{i:08d}" for i in range(start, start + len(part))], id_field.type)
            writer.write_table(part.set_column(part.schema.get_field_index("customer_id"), id_field, new_ids))
    tx_lines = _bootstrap_lines(source, out, ids, pick, lines) if lines else 0
    if (source / "models").is_dir():  # the served model's horizon (the tools read it from the bundle)
        shutil.copytree(source / "models", out / "models")
    return {"customers": n, "order_lines": tx_lines, "columns": len(customers.column_names),
            "bootstrap_s": round(time.perf_counter() - t0, 1)}


def _bootstrap_lines(source: Path, out: Path, ids: np.ndarray, pick: np.ndarray, lines: int) -> int:
    """Each bootstrapped customer gets its source customer's last `lines` order lines, grouped by customer."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = source / "transactions.parquet"
    if not path.exists():
        return 0
    names = [c for c in ("customer_id", "order_id", "timestamp", "amount", "product_name")
             if c in pq.read_schema(path).names]
    tx = pq.read_table(path, columns=names).to_pandas()
    tx["customer_id"] = tx["customer_id"].astype(str)
    tx = tx.sort_values(["customer_id", "timestamp"], kind="stable").groupby("customer_id", sort=False).tail(lines)
    import pandas as pd

    src = pd.Index(ids).get_indexer(tx["customer_id"].to_numpy(dtype=str))
    known = src >= 0
    tx = tx[known].assign(_src=src[known]).sort_values(["_src", "timestamp"], kind="stable")
    bounds = np.searchsorted(tx["_src"].to_numpy(), np.arange(len(ids) + 1))
    table = pa.Table.from_pandas(tx.drop(columns="_src"), preserve_index=False)
    id_field = table.schema.field("customer_id")
    total = 0
    with pq.ParquetWriter(out / "transactions.parquet", table.schema) as writer:
        for start in range(0, len(pick), ROW_GROUP):
            chunk = pick[start:start + ROW_GROUP]
            counts = np.diff(bounds)[chunk]
            offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
            part = table.take(np.repeat(bounds[:-1][chunk], counts) + offsets)
            new_ids = np.repeat(np.array([f"B{i:08d}" for i in range(start, start + len(chunk))]), counts)
            writer.write_table(part.set_column(0, id_field, pa.array(new_ids, id_field.type)))
            total += len(part)
    return total


def real_copy(source: Path, out: Path) -> dict:
    """The real 1x build's serving files, copied (the source is never written)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("customers.parquet", "transactions.parquet", "categories.parquet"):
        if (source / name).exists():
            shutil.copy2(source / name, out / name)
    if (source / "models").is_dir():
        shutil.copytree(source / "models", out / "models")
    import pyarrow.parquet as pq

    return {"customers": pq.read_metadata(out / "customers.parquet").num_rows, "columns": "all (real build)"}


# ---------------------------------------------------------------- measuring (in a child process)


def _stats(times: list[float]) -> dict:
    a = np.asarray(times)
    return {"n": len(a), "p50_ms": round(float(np.percentile(a, 50)), 3),
            "p95_ms": round(float(np.percentile(a, 95)), 3), "max_ms": round(float(a.max()), 3)}


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def measure(data_dir: Path, calls: int, cold_rounds: int, seed: int) -> dict:
    """Load the table through the real registry and time the two tools (run in a fresh process)."""
    from predictor.settings import Settings
    from tools.deps import ToolDeps
    from tools.functions.customers import find_customers, get_customer
    from tools.models import FindCustomersArgs, GetCustomerArgs
    from tools.registry import ToolRegistry

    out: dict = {"rss_before_gib": round(rss_gib(), 2), "load_before": os.getloadavg()}
    deps = ToolDeps(Settings(data_dir=data_dir))
    registry = ToolRegistry(deps)
    out["warm_s"] = round(_timed(registry.warm) / 1000, 1)
    out["rss_after_warm_gib"] = round(rss_gib(), 2)
    store = deps.customers
    rng = np.random.default_rng(seed)

    def call(tool: str, args: dict) -> None:
        res = registry.call(tool, args)
        assert res.ok, res.error

    # get_customer: the first call after loading on its own, then random existing ids.
    ids = store.frame["customer_id"]
    pick = lambda: {"customer_id": str(ids.iloc[int(rng.integers(store.n))])}  # noqa: E731
    out["get_first_ms"] = round(_timed(lambda: call("get_customer", pick())), 3)
    out["get_registry"] = _stats([_timed(lambda a=pick(): call("get_customer", a)) for _ in range(calls)])
    out["get_function"] = _stats([_timed(lambda a=GetCustomerArgs(**pick()): get_customer(a, deps))
                                  for _ in range(calls)])
    # find_customers: cold = the filter's selection never computed (the engine's cache cleared before each).
    out["find_first_ms"] = round(_timed(lambda: call("find_customers", FIND_MIX[0])), 3)
    cold, per_filter = [], {i: [] for i in range(len(FIND_MIX))}
    for _ in range(cold_rounds):
        for i, body in enumerate(FIND_MIX):
            store.audience.clear()
            t = _timed(lambda: call("find_customers", body))
            cold.append(t)
            per_filter[i].append(t)
    out["find_cold_registry"] = _stats(cold)
    out["find_cold_per_filter_p50_ms"] = [round(float(np.median(v)), 2) for v in per_filter.values()]
    for body in FIND_MIX:  # every filter asked once, so the warm calls below find it cached
        call("find_customers", body)
    warm = rng.integers(len(FIND_MIX), size=calls)
    out["find_warm_registry"] = _stats([_timed(lambda b=FIND_MIX[i]: call("find_customers", b)) for i in warm])
    parsed = [FindCustomersArgs(**FIND_MIX[i]) for i in warm]
    out["find_warm_function"] = _stats([_timed(lambda a=a: find_customers(a, deps)) for a in parsed])
    out["totals"] = [registry.call("find_customers", b).result["total_matching"] for b in FIND_MIX]
    out["customers"] = store.n
    out["mapped_columns"] = len(store.mapped)
    out["load_after"] = os.getloadavg()
    out["peak_rss_gib"] = round(hwm_gib(), 2)
    out["rss_end_gib"] = {f: round(rss_gib(f), 2) for f in ("VmRSS", "RssAnon", "RssFile")}
    return out


def run_child(data_dir: Path, args: argparse.Namespace, mode: str = "--measure") -> dict:
    """`measure` (or `prepare_cache`) in a fresh interpreter: its own caches and its own peak memory."""
    cmd = [sys.executable, __file__, mode, str(data_dir), "--calls", str(args.calls),
           "--cold-rounds", str(args.cold_rounds), "--seed", str(args.seed)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"measuring {data_dir} failed ({proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- report


def _line(label: str, res: dict, base: dict | None) -> str:
    def ratio(key: str, stat: str) -> str:
        return f" ({res[key][stat] / base[key][stat]:.1f}x)" if base and base[key][stat] else ""

    cells = [f"{label:>24}"]
    for key in ("find_cold_registry", "find_warm_registry", "find_warm_function", "get_registry", "get_function"):
        cells.append(f"{res[key]['p50_ms']:7.2f} / {res[key]['p95_ms']:7.2f}{ratio(key, 'p95_ms')}")
    return " | ".join(cells)


def report(results: list[tuple[str, dict]], load_before, load_after) -> None:
    print("\np50 / p95 ms (ratio of p95 to the first baseline)")
    print(" | ".join(["table".rjust(24), "find cold (registry)", "find warm (registry)", "find warm (function)",
                      "get (registry)", "get (function)"]))
    base = results[0][1]
    for label, res in results:
        print(_line(label, res, None if res is base else base))
    print()
    for label, res in results:
        prep = res.get("cache") or {}
        print(f"{label}: {res['customers']:,} customers, {res['mapped_columns']} columns mapped (cache built in "
              f"{prep.get('cache_build_s')} s, {prep.get('cache_gib')} GiB, builder peak {prep.get('peak_rss_gib')} "
              f"GiB; parquet {prep.get('parquet_gib')} GiB); RSS at the end {res['rss_end_gib']}")
        print(f"    warm() {res['warm_s']} s; RSS after warm "
              f"{res['rss_after_warm_gib']} GiB, peak {res['peak_rss_gib']} GiB; first get_customer "
              f"{res['get_first_ms']} ms, first find_customers {res['find_first_ms']} ms; max find cold "
              f"{res['find_cold_registry']['max_ms']} ms, warm {res['find_warm_registry']['max_ms']} ms, get "
              f"{res['get_registry']['max_ms']} ms")
        print(f"    load average at its start {tuple(round(x, 2) for x in res['load_before'])}, at its end "
              f"{tuple(round(x, 2) for x in res['load_after'])}")
        print(f"    cold p50 per filter (ms): {res['find_cold_per_filter_p50_ms']}")
        print(f"    total_matching per filter: {res['totals']}")
    print(f"\nload average before {tuple(round(x, 2) for x in load_before)}, after "
          f"{tuple(round(x, 2) for x in load_after)}; bench parent peak RSS {hwm_gib():.2f} GiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=Path(os.environ.get("VALUEDESK_DATA_DIR", "/tmp/h2data")),
                        help="a built data directory (only read)")
    parser.add_argument("--customers", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--baselines", default="real",
                        help="comma list: 'real' (the source's own table) and/or bootstrapped sizes")
    parser.add_argument("--columns", choices=("lean", "full"), default="full",
                        help="bootstrapped tables: lean leaves out profile_text, the list columns and f_* features")
    parser.add_argument("--lines-per-customer", type=int, default=1, help="order lines copied per customer")
    parser.add_argument("--calls", type=int, default=300, help="calls per tool and path")
    parser.add_argument("--cold-rounds", type=int, default=15, help="cold calls per filter of the mix")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the bootstrapped tables here")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--measure", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--prepare", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure is not None:
        print(json.dumps(measure(args.measure, args.calls, args.cold_rounds, args.seed)))
        return 0
    if args.prepare is not None:
        print(json.dumps(prepare_cache(args.prepare)))
        return 0

    load_before = os.getloadavg()
    print(f"load average before: {tuple(round(x, 2) for x in load_before)}", flush=True)
    source = source_build(args.source)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="vd-bench-serving-"))
    results = []
    try:
        sizes = [s.strip() for s in args.baselines.split(",") if s.strip()] + [str(args.customers)]
        for size in sizes:
            folder = workdir / f"table-{size}"
            if folder.exists():
                shutil.rmtree(folder)
            made = (real_copy(source, folder) if size == "real" else
                    bootstrap(source, folder, int(size), args.seed, args.lines_per_customer, args.columns))
            print(f"{size}: {made}", flush=True)
            prep = run_child(folder, args, "--prepare")
            print(f"{size}: cache {prep}", flush=True)
            res = run_child(folder, args)
            res["table"], res["cache"] = made, prep
            label = "real 1x" if size == "real" else f"{int(size):,} ({args.columns})"
            results.append((label, res))
            print(f"{label}: measured (peak RSS {res['peak_rss_gib']} GiB)", flush=True)
            if args.workdir is None:
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    load_after = os.getloadavg()
    report(results, load_before, load_after)
    if args.json:
        args.json.write_text(json.dumps({"results": dict(results), "load_before": load_before,
                                         "load_after": load_after}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
