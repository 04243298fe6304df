"""What the audit trail costs a tool call (issue 20): `find_customers` and `get_customer` through the registry
in-process, with the trail (one JSON line, fsynced, per call) and without it, in the same run.

    VALUEDESK_DATA_DIR=<built dir> .venv/bin/python bench/bench_audit.py --calls 2000
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from tools.audit import AuditLog  # noqa: E402
from tools.deps import ToolDeps  # noqa: E402
from tools.registry import ToolRegistry  # noqa: E402
from valuedesk.config import load_settings  # noqa: E402


class NoTrail(AuditLog):
    def append(self, record):  # the baseline: everything but the write
        return record


def timings(registry: ToolRegistry, calls: list[tuple[str, dict]]) -> np.ndarray:
    out = []
    for name, args in calls:
        started = time.perf_counter()
        assert registry.call(name, args).ok
        out.append((time.perf_counter() - started) * 1000)
    return np.array(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    print(f"$ {shlex.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}   load average {os.getloadavg()[0]:.2f}")
    settings = load_settings().model_copy(update={"audit_dir": Path(tempfile.mkdtemp(prefix="vd-audit-bench-"))})
    registry = ToolRegistry(ToolDeps(settings))
    registry.warm()
    ids = registry.call("find_customers", {"limit": 50}).result["customers"]
    calls = [("find_customers", {"tiers": ["Gold"], "limit": 20}) if i % 2 else
             ("get_customer", {"customer_id": ids[i % len(ids)]["customer_id"]}) for i in range(args.calls)]
    timings(registry, calls[:200])  # warm both paths
    with_trail = timings(registry, calls)
    real, registry.audit = registry.audit, NoTrail(settings.audit_path)
    without = timings(registry, calls)
    registry.audit = real
    for label, t in (("with the audit trail", with_trail), ("without it", without)):
        print(f"{label:<22} p50 {np.percentile(t, 50):.3f} ms  p95 {np.percentile(t, 95):.3f} ms  "
              f"mean {t.mean():.3f} ms")
    print(f"audit cost per call: {with_trail.mean() - without.mean():+.3f} ms mean "
          f"({with_trail.mean() / without.mean():.2f}x); trail {AuditLog(settings.audit_path).verify()[2]}; "
          f"load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
