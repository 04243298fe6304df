"""Several query sets in one run: the development set and the blind held-out set (or any files given
with `--queries`) replayed one after the other, reported side by side, each gated on its own.

The JSON report of a run over several sets is `{"sets": {label: report}, "labels": [...], "backend",
"model", "created_at"}`, each report the one `report.summarise` writes for a single set; a run over one
set writes that set's report alone, as before, so `--queries one.yaml` reports keep their shape.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from agent.eval.cases import EvalError
from agent.eval.report import (
    HEADLINE,
    MAX_FAILURES_SHOWN,
    failed_turns_markdown,
    format_value,
    gate_failures,
    markdown_table,
    parse_gates,
    run_label,
    semantic_markdown,
)

ALL_SETS = "*"
# Sets whose label starts so are blind held-out sets: their failing cases are never printed (whoever
# reads them can no longer judge the next tuning round blind); the JSON report keeps them for an audit.
BLIND_PREFIX = "held-out"


def is_blind(label: str) -> bool:
    return str(label).startswith(BLIND_PREFIX)


def blind_note(label: str) -> str:
    return (f"Cases of the blind set `{label}` are not printed (aggregate figures only): reading them would "
            "end its blindness. The --json report keeps them.")


def combine_sets(reports: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One report holding each set's report under its label (in run order)."""
    if not reports:
        raise EvalError("No query set was run.")
    first = next(iter(reports.values()))
    return {"backend": first.get("backend"), "model": first.get("model"),
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "labels": list(reports), "sets": reports}


def set_reports(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """label -> report: the sets of a multi-set report, or a single-set report under its own label."""
    if "sets" in report:
        return dict(report["sets"])
    return {report.get("label") or "queries": report}


def sets_markdown(combined: dict[str, Any], max_failures: int = MAX_FAILURES_SHOWN) -> str:
    """The sets side by side (headline metrics, semantic checks included), then each set's semantic
    check failures and failed turns."""
    reports = set_reports(combined)
    labels = list(reports)
    first = next(iter(reports.values()))
    lines = [f"# ValueDesk eval: {run_label(first)}, {len(labels)} query sets", ""]
    lines += [f"- {label}: {r['cases']} cases, {r['turns']} turns from {r.get('queries') or 'queries'}"
              for label, r in reports.items()]
    lines += ["", *markdown_table([[name, *(format_value(r.get(key), fmt) for r in reports.values())]
                                   for key, name, fmt in HEADLINE], ["metric", *labels])]
    for label, report in reports.items():
        if is_blind(label):
            lines += ["", f"## {label}", "", blind_note(label)]
            continue
        lines += ["", f"## {label}", "", *semantic_markdown(report, heading="###", max_failures=max_failures)]
        lines += ["", *failed_turns_markdown(report, title=f"### Failed turns: {label}", max_failures=max_failures)]
    return "\n".join(lines) + "\n"


def parse_set_gates(text: str, labels: list[str]) -> dict[str, dict[str, float]]:
    """`--fail-under` per set: 'tool_selection=0.95,held-out:arguments=0.92' -> {label: {report key:
    threshold}}. A gate without `LABEL:` applies to every set; with one, to that set only."""
    gates: dict[str, dict[str, float]] = {label: {} for label in labels}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        scope, sep, gate = part.partition(":")
        if not sep or "=" in scope:
            scope, gate = ALL_SETS, part
        scope = scope.strip()
        if scope != ALL_SETS and scope not in gates:
            raise EvalError(f"--fail-under {part!r}: no query set labelled {scope!r}; the sets are {labels}.")
        parsed = parse_gates(gate)
        for label in labels if scope == ALL_SETS else [scope]:
            gates[label].update(parsed)
    return gates


def set_gate_failures(reports: dict[str, dict[str, Any]], gates: dict[str, dict[str, float]]) -> list[str]:
    """'label: key value < threshold' for each gate a set misses."""
    return [f"{label}: {failure}" for label, report in reports.items()
            for failure in gate_failures(report, gates.get(label, {}))]
