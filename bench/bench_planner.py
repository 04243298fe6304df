"""End-to-end latency of the offline agent (planner + tools + agent graph + SQLite memory + grounding)
per question, at 1M customers.

1. Bootstraps N customers (default 1,000,000; seeded) from a customers table, as bench/bench_api.py
   does (rows sampled with replacement, new ids B0000000..., their source's recent order lines).
2. Warms the service (tables, embedder, intent vectors), then asks a fixed mix of marketer questions
   (lists, breakdowns, customer look-ups, profile search when an index exists, campaign plans, the
   model report, follow-ups, clarifications and refusals) in sessions of a few turns, `--rounds` times.
3. Reports p50/p95/max per question kind and overall: `AgentService.chat` wall time, and the
   planner's own share (intent + slots, no tools).

Target (issue 6): p95 < 300 ms per question at 1M customers.

    .venv/bin/python bench/bench_planner.py                         # source: VALUEDESK_DATA_DIR (built)
    .venv/bin/python bench/bench_planner.py --source crude --customers 200000
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

# Sessions of (kind, question); "{id}" is replaced by a bootstrapped customer id.
SESSIONS = [
    [("list", "Who are my at-risk top customers?"), ("follow-up", "which of them are in France?"),
     ("detail", "tell me more about the first one")],
    [("list", "show the 50 customers with the highest predicted value"), ("follow-up", "only the lapsing ones")],
    [("summary", "break the customers down by tier"), ("follow-up", "now by country instead")],
    [("summary", "how many customers are in each lifecycle stage in Germany?")],
    [("detail", "what is the churn risk of customer {id}?")],
    [("list", "custmers in spain who havent ordered for six months")],
    [("campaign", "plan a win-back campaign for gold customers with a budget of £2k")],
    [("campaign", "how should I spend five hundred pounds on reactivating lapsed customers in Belgium?")],
    [("campaign", "which campaigns should I run for all my customers?")],
    [("campaign", "I have £50,000 for campaigns this quarter, who should we target?")],
    [("model", "how accurate is the model?")],
    [("search", "find customers who buy vintage tea sets")],
    [("clarify", "show me the good ones")],
    [("refuse", "email all platinum customers to someone@example.com")],
    [("refuse", "what's the weather in Paris?")],
]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="built", choices=("built", "crude"))
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", type=Path, help="bootstrap into (and reuse) this directory")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    from agent.settings import AgentSettings
    from bench_api import bootstrap
    from predictor.settings import Settings
    from valuedesk.config import load_settings

    if args.source == "crude":
        from _tools_data import crude_data_dir

        source = Path(tempfile.mkdtemp(prefix="vd-planner-src-"))
        crude_data_dir(source, nrows=None)
    else:
        # The serving build's version folder (or the data directory itself for a flat one).
        data_dir = load_settings().data_dir
        source = Settings(data_dir=data_dir).build_root
        if not (source / "customers.parquet").exists():
            print(f"error: no customers table in {source}; run `valuedesk build` or use --source crude", file=sys.stderr)
            return 2
    target = args.keep or Path(tempfile.mkdtemp(prefix="vd-planner-"))
    if not (target / "customers.parquet").exists():
        t = time.perf_counter()
        bootstrap(source, target, args.customers, args.seed, lines_per_customer=5)
        print(f"bootstrapped {args.customers:,} customers in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    # Model, index and catalogue come from the source build (the model report and search need them).
    shared = source if args.source == "crude" else data_dir
    for name, root in (("models", source), ("build.json", source), ("chroma", shared), ("chroma_columns", shared),
                       ("embeddings", shared)):
        src, dst = root / name, target / name
        if src.exists() and not dst.exists():
            if src.is_dir():
                shutil.copytree(src, dst, symlinks=True)
            else:
                shutil.copy(src, dst)

    settings = AgentSettings(data_dir=target)
    from agent.service import AgentService

    service = AgentService(settings)
    t = time.perf_counter()
    service.registry.warm()  # what a server does before taking traffic (tools.api lifespan, the UI's warm-up)
    service.chat("break the customers down by tier", "warm-up")
    print(f"warm-up {time.perf_counter() - t:.1f} s", file=sys.stderr)
    from agent.planner import get_planner

    planner = get_planner(settings, service.registry)  # the instance the service's graph uses
    ids = service.registry.deps.customers.frame["customer_id"].iloc[[7, 70_000 % args.customers]].tolist()

    timings: dict[str, list[float]] = {}
    overhead: list[float] = []
    tools_only: list[float] = []
    plan_ms: list[float] = []
    kinds: dict[str, str] = {}
    cold: dict[str, float] = {}
    # Round 0 is the cold pass (first use of each sort order, campaign tables, the index): reported
    # apart; the timed rounds measure the steady state a running server sees.
    for r in range(-1, args.rounds):
        for s, session in enumerate(SESSIONS):
            sid = uuid.uuid4().hex
            for kind, question in session:
                q = question.replace("{id}", ids[r % len(ids)])
                t0 = time.perf_counter()
                planner.plan(q, [])
                plan_ms.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                reply = service.chat(q, sid)
                elapsed = (time.perf_counter() - t0) * 1000
                if r < 0:
                    cold[q] = round(elapsed, 1)
                    continue
                timings.setdefault(kind, []).append(elapsed)
                overhead.append(elapsed - sum(c.duration_ms for c in reply.tool_calls))
                tools_only.append(sum(c.duration_ms for c in reply.tool_calls))
                kinds[q] = f"{reply.kind} {[c.name for c in reply.tool_calls]}"
    every = [v for vs in timings.values() for v in vs]
    result = {"customers": args.customers, "questions": len(every),
              "overall": {"p50_ms": round(pct(every, 0.5), 1), "p95_ms": round(pct(every, 0.95), 1),
                          "max_ms": round(max(every), 1)},
              "planner_only": {"p50_ms": round(pct(plan_ms, 0.5), 1), "p95_ms": round(pct(plan_ms, 0.95), 1)},
              "agent_overhead_excluding_tool_time": {"p50_ms": round(pct(overhead, 0.5), 1),
                                                     "p95_ms": round(pct(overhead, 0.95), 1)},
              # Baseline: the same tool calls alone (what an app calling the tool API directly waits for).
              "tools_only_baseline": {"p50_ms": round(pct(tools_only, 0.5), 1),
                                      "p95_ms": round(pct(tools_only, 0.95), 1),
                                      "end_to_end_over_tools_p95": round(pct(every, 0.95) / max(pct(tools_only, 0.95), 1e-9), 2)},
              "target_p95_ms": 300, "target_met": pct(every, 0.95) < 300,
              "cold_pass_ms": cold,
              "by_kind": {k: {"n": len(v), "p50_ms": round(statistics.median(v), 1), "p95_ms": round(pct(v, 0.95), 1)}
                          for k, v in timings.items()},
              "answers": kinds}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if not args.keep:
        shutil.rmtree(target, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
