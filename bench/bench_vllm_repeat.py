"""Run the real-vLLM tests N times against one server and print passes/N (issue: the wire path must
never fail at random).

    .venv/bin/python bench/bench_vllm_repeat.py [--runs 20] [--tests tests/test_agent_vllm.py ...]

Starts one vLLM server (agent.llm_server.LLMServer, the same settings the test fixture uses), then
runs pytest on the given test files --runs times with VALUEDESK_TEST_VLLM_BASE_URL pointing at it, so
each run is the real test (tool call parsed from the served model's output, executed on the registry,
answer with its trace) without paying the server start each time. Prints one line per run and a
summary JSON (passes, runs, seconds per run, load average), written to bench/out/vllm_repeat.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.llm_server import LLMServer  # noqa: E402
from agent.settings import AgentSettings  # noqa: E402

DEFAULT_TESTS = ["tests/test_agent_vllm.py", "tests/test_vllm_server.py::test_real_server_tool_call_round_trip",
                 "tests/test_vllm_server.py::test_real_server_streams_tool_call_deltas"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_once(tests: list[str], base_url: str, timeout_s: float) -> tuple[bool, float, str]:
    env = dict(os.environ, VALUEDESK_TEST_VLLM_BASE_URL=base_url, VALUEDESK_REQUIRE_VLLM="1")
    started = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s)
        ok, tail = proc.returncode == 0, (proc.stdout + proc.stderr).strip().splitlines()[-1:]
    except subprocess.TimeoutExpired:
        ok, tail = False, [f"timed out after {timeout_s:.0f} s"]
    return ok, time.monotonic() - started, " ".join(tail)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--tests", nargs="*", default=DEFAULT_TESTS)
    parser.add_argument("--run-timeout", type=float, default=600.0)
    args = parser.parse_args()

    settings = AgentSettings()
    log = Path(tempfile.gettempdir()) / "valuedesk-bench-vllm-repeat.log"
    server = LLMServer(settings.model_copy(update={"vllm_startup_timeout_s": 600.0}), port=_free_port(), log_path=log)
    load_start = os.getloadavg()[0]
    server.start()
    print(f"vLLM {server.model_name} ready in {server.startup_seconds:.0f} s at {server.base_url}", flush=True)
    results = []
    try:
        for i in range(1, args.runs + 1):
            ok, seconds, tail = run_once(args.tests, server.base_url, args.run_timeout)
            results.append({"run": i, "passed": ok, "seconds": round(seconds, 1), "pytest": tail})
            print(f"run {i:>2}/{args.runs}: {'PASS' if ok else 'FAIL'} in {seconds:.1f} s ({tail})", flush=True)
    finally:
        server.stop()
    passes = sum(r["passed"] for r in results)
    summary = {"passes": passes, "runs": len(results), "tests": args.tests, "model": server.model_name,
               "seconds_per_run_median": round(statistics.median(r["seconds"] for r in results), 1),
               "load_average_start": round(load_start, 2), "load_average_end": round(os.getloadavg()[0], 2),
               "results": results}
    out = ROOT / "bench" / "out" / "vllm_repeat.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    print(f"{passes}/{len(results)} passed (median {summary['seconds_per_run_median']} s per run, "
          f"load average {summary['load_average_start']} -> {summary['load_average_end']})")
    return 0 if passes == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
