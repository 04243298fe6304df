"""Soak test of the agent's session store through the real HTTP API (issue 13).

8 sessions x 200 turns of `POST /v1/agent/chat` (offline backend, one `valuedesk api` process on a
127.0.0.1 socket, a client thread per session), then reports:

- the session store's size on disk (the file, its WAL and shm) and what it holds;
- the server's RSS after warm-up and at the end (VmRSS of the process; VmHWM as the peak);
- per-turn latency as the client sees it: turn 1 against turn 200 (median over the sessions), and
  the first ten turns against the last ten (median over all of them, less noisy: the sessions start
  together, so turn 1 is a burst of 8 requests at once), with the ratios; the growth in ms per 100
  turns (least-squares slope over every turn); and the agent's own latency_ms for the same windows.

Bar: store < 50 MB, RSS within 10% of the start, turn-200 latency within 1.2x of turn 1.

Every turn asks the issue's repro question ("top customers in Germany"), except every fifth turn from
the second on, a follow-up ("and which of them are Gold?") whose tool arguments are checked (Germany
and Gold): memory must keep working while it stays bounded.

Baseline: the same server from the commit before this change (LangGraph SqliteSaver checkpointer,
`git archive` of --baseline-ref) runs the issue's repro first, 1 session x 80 turns; its store size and
latency growth are printed beside the new figures. --no-baseline skips it.

    .venv/bin/python bench/bench_sessions.py                          # source: VALUEDESK_DATA_DIR if built
    .venv/bin/python bench/bench_sessions.py --source crude           # no build: crude table from the real data
    .venv/bin/python bench/bench_sessions.py --sessions 2 --turns 20 --no-baseline   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from bench_api import wait_ready  # noqa: E402  (bench/ is on sys.path when run as a script)

KEY = "bench-sessions-key"
QUESTION = "top customers in Germany"
FOLLOW_UP = "and which of them are Gold?"
BASELINE_REF = "054ca21"  # last commit with the LangGraph SqliteSaver session store


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "n/a"


def proc_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def store_bytes(data_dir: Path) -> int:
    folder = data_dir / "agent"
    return sum(p.stat().st_size for p in folder.glob("sessions*") if p.is_file()) if folder.exists() else 0


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`valuedesk api` from `code_dir` on a free port, over `data_dir`."""

    def __init__(self, code_dir: Path, data_dir: Path, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "VALUEDESK_DATA_DIR": str(data_dir), "VALUEDESK_LLM_BACKEND": "offline",
               "VALUEDESK_API_KEY": KEY, "VALUEDESK_THREADS": os.environ.get("VALUEDESK_THREADS", "1"),
               "PYTHONPATH": str(code_dir)}
        self.log = open(log_path, "w")
        # The baseline is an older checkout: its CLI entry was predictor.cli before the wiring package.
        cli = "valuedesk.cli" if (code_dir / "valuedesk" / "cli.py").exists() else "predictor.cli"
        self.proc = subprocess.Popen([sys.executable, "-m", cli, "api", "--port", str(self.port)],
                                     cwd=code_dir, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_ready(self.url, self.proc, timeout=300)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}; see {log_path}") from None

    def rss_mb(self) -> float:
        return proc_kb(self.proc.pid, "VmRSS") / 1024

    def peak_mb(self) -> float:
        return proc_kb(self.proc.pid, "VmHWM") / 1024

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def soak(server: Server, sessions: int, turns: int, *, send_session_id: bool = True) -> dict:
    """`sessions` client threads, `turns` turns each; per-turn client latency (ms) and checks."""
    latencies = [[0.0] * turns for _ in range(sessions)]
    server_ms = [[0.0] * turns for _ in range(sessions)]  # the agent's own latency_ms (no HTTP, no queueing)
    errors: list[str] = []
    follow_ups_ok = [0]
    follow_ups = [0]
    lock = threading.Lock()

    def run(s: int) -> None:
        sid = f"soak-{s}"
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=300) as c:
            for t in range(turns):
                follow = t % 5 == 1
                body = {"message": FOLLOW_UP if follow else QUESTION, "session_id": sid}
                t0 = time.perf_counter()
                r = c.post("/v1/agent/chat", json=body)
                latencies[s][t] = (time.perf_counter() - t0) * 1000
                if r.status_code == 200:
                    server_ms[s][t] = r.json().get("latency_ms", 0.0)
                if r.status_code != 200 or r.json().get("kind") != "answer":
                    with lock:
                        errors.append(f"session {s} turn {t + 1}: HTTP {r.status_code} {r.text[:200]}")
                    continue
                if follow:
                    args = (r.json()["tool_calls"] or [{}])[0].get("arguments", {})
                    with lock:
                        follow_ups[0] += 1
                        follow_ups_ok[0] += args.get("countries") == ["Germany"] and args.get("tiers") == ["Gold"]

    threads = [threading.Thread(target=run, args=(s,)) for s in range(sessions)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    first = statistics.median(lat[0] for lat in latencies)
    last = statistics.median(lat[-1] for lat in latencies)
    window = min(10, max(1, turns // 4))
    first_w = statistics.median(v for lat in latencies for v in lat[:window])
    last_w = statistics.median(v for lat in latencies for v in lat[-window:])
    # Growth per 100 turns: least-squares slope of latency on the turn number, over every turn.
    xs = [t for lat in latencies for t in range(len(lat))]
    ys = [v for lat in latencies for v in lat]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / max(1e-9, sum((x - mx) ** 2 for x in xs))
    srv_first = statistics.median(v for lat in server_ms for v in lat[:window])
    srv_last = statistics.median(v for lat in server_ms for v in lat[-window:])
    return {"sessions": sessions, "turns": turns, "wall_s": round(wall, 1), "errors": errors[:5],
            "error_count": len(errors), "follow_ups_ok": f"{follow_ups_ok[0]}/{follow_ups[0]}",
            "turn1_ms": round(first, 1), f"turn{turns}_ms": round(last, 1), "last_over_first": round(last / first, 2),
            "window": window, "first_window_ms": round(first_w, 1), "last_window_ms": round(last_w, 1),
            "last_window_over_first": round(last_w / first_w, 2),
            "ms_per_100_turns": round(slope * 100, 1), "mean_ms": round(my, 1),
            "server_first_window_ms": round(srv_first, 1), "server_last_window_ms": round(srv_last, 1)}


def run_server(code_dir: Path, data_dir: Path, log_path: Path, sessions: int, turns: int) -> dict:
    server = Server(code_dir, data_dir, log_path)
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=300) as c:
            for _ in range(3):  # warm-up: tables, embedder, intent vectors (its own session)
                r = c.post("/v1/agent/chat", json={"message": QUESTION, "session_id": "warm-up"})
                r.raise_for_status()
            c.post("/v1/agent/reset", json={"session_id": "warm-up"})
        rss_start = server.rss_mb()
        result = soak(server, sessions, turns)
        rss_end = server.rss_mb()
        result.update(rss_start_mb=round(rss_start, 1), rss_end_mb=round(rss_end, 1),
                      rss_end_over_start=round(rss_end / rss_start, 3), rss_peak_mb=round(server.peak_mb(), 1),
                      store_mb=round(store_bytes(data_dir) / 1e6, 2))
        return result
    finally:
        server.stop()


def prepare_data(args) -> Path:
    from predictor.settings import Settings

    if args.source == "crude":
        from _tools_data import crude_data_dir

        source = Path(tempfile.mkdtemp(prefix="vd-sessions-src-", dir=args.workdir))
        crude_data_dir(source, nrows=None)
        return source
    settings = Settings()
    if not settings.customers_path.exists():
        print(f"error: no customers table in {settings.data_dir}; run `valuedesk build` or use --source crude",
              file=sys.stderr)
        raise SystemExit(2)
    return settings.data_dir


def copy_data(source: Path, target: Path) -> None:
    """A private copy of the data dir without any session store (links for the big read-only files)."""
    target.mkdir(parents=True)
    for item in source.iterdir():
        if item.name == "agent":
            continue
        dst = target / item.name
        if item.is_dir():
            shutil.copytree(item, dst, symlinks=True)
        else:
            try:
                os.link(item, dst)
            except OSError:
                shutil.copy2(item, dst)


def baseline_tree(ref: str, workdir: Path, repo: Path = REPO) -> Path | None:
    out = workdir / f"baseline-{ref}"
    if (out / "agent" / "memory.py").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    try:
        archive = subprocess.run(["git", "-C", str(repo), "archive", ref], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"baseline skipped: cannot export {ref}: {exc}", file=sys.stderr)
        return None
    if "SqliteSaver" not in (out / "agent" / "memory.py").read_text():
        print(f"baseline skipped: {ref} does not have the checkpointer session store", file=sys.stderr)
        return None
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="built", choices=("built", "crude"))
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--baseline-ref", default=BASELINE_REF)
    parser.add_argument("--baseline-sessions", type=int, default=1)
    parser.add_argument("--baseline-turns", type=int, default=80)
    parser.add_argument("--baseline-repo", type=Path, default=REPO, help="git checkout holding --baseline-ref")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    args.workdir = Path(args.workdir or tempfile.mkdtemp(prefix="vd-bench-sessions-"))
    args.workdir.mkdir(parents=True, exist_ok=True)
    result: dict = {"loadavg_start": loadavg()}
    source = prepare_data(args)

    if not args.no_baseline:
        tree = baseline_tree(args.baseline_ref, args.workdir, args.baseline_repo)
        if tree is not None:
            data = args.workdir / "data-baseline"
            shutil.rmtree(data, ignore_errors=True)
            copy_data(source, data)
            t = time.perf_counter()
            base = run_server(tree, data, args.workdir / "api-baseline.log", args.baseline_sessions,
                              args.baseline_turns)
            base["ref"] = args.baseline_ref
            result["baseline"] = base
            print(f"baseline ({args.baseline_ref}, {args.baseline_sessions} x {args.baseline_turns}) in "
                  f"{time.perf_counter() - t:.0f} s: {json.dumps(base)}", file=sys.stderr)
            # The MiniLM export is done once; the new server reuses it.
            cache = args.workdir / "embeddings-cache"
            if (data / "embeddings").exists() and not (source / "embeddings").exists() and not cache.exists():
                shutil.copytree(data / "embeddings", cache)
            shutil.rmtree(data, ignore_errors=True)

    data = args.workdir / "data-new"
    shutil.rmtree(data, ignore_errors=True)
    copy_data(source, data)
    if (args.workdir / "embeddings-cache").exists() and not (data / "embeddings").exists():
        shutil.copytree(args.workdir / "embeddings-cache", data / "embeddings")
    t = time.perf_counter()
    new = run_server(REPO, data, args.workdir / "api-new.log", args.sessions, args.turns)
    print(f"new ({args.sessions} x {args.turns}) in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    result["new"] = new
    result["loadavg_end"] = loadavg()
    result["bar"] = {
        "store_under_50MB": new["store_mb"] < 50,
        "rss_within_10pct": abs(new["rss_end_over_start"] - 1) <= 0.10,
        "latency_last_within_1.2x_turn1": new["last_over_first"] <= 1.2,
        "latency_last10_within_1.2x_first10": new["last_window_over_first"] <= 1.2,
        "no_errors": new["error_count"] == 0,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    _table(result)
    return 0 if all(result["bar"].values()) else 1


def _table(result: dict) -> None:
    rows = [("", "store MB", "RSS start->end MB", "turn 1 ms", "last turn ms", "ratio", "first/last 10 ms", "ratio",
             "ms/100 turns")]
    for name in ("baseline", "new"):
        r = result.get(name)
        if not r:
            continue
        rows.append((f"{name} {r['sessions']}x{r['turns']}", f"{r['store_mb']}",
                     f"{r['rss_start_mb']}->{r['rss_end_mb']} ({r['rss_end_over_start']}x)", f"{r['turn1_ms']}",
                     f"{r['turn%d_ms' % r['turns']]}",
                     f"{r['last_over_first']}", f"{r['first_window_ms']}/{r['last_window_ms']}",
                     f"{r['last_window_over_first']}", f"{r['ms_per_100_turns']}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)), file=sys.stderr)
    print(f"load average: start {result['loadavg_start']}, end {result['loadavg_end']}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
