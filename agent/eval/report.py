"""The eval report: headline metrics over scored cases, the markdown view of one run or of several side
by side, reading and writing the JSON report, and the `--fail-under` gates."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from tabulate import tabulate

from agent.eval.cases import EvalError
from agent.eval.scoring import CaseResult, TurnResult
from agent.eval.semantics import AT_RISK, CAMPAIGN, CHECKS
from predictor.atomic import write_text_atomic

# Reports are meant to be shared (the data directory's private default does not apply).
REPORT_FILE_MODE = 0o644
MAX_FAILURES_SHOWN = 40

HEADLINE = [
    ("cases", "cases", "{}"),
    ("cases_passed", "cases passed", "{}"),
    ("tool_selection_accuracy", "tool selection", "pct"),
    ("argument_accuracy", "arguments", "pct"),
    ("groundedness", "groundedness", "pct"),
    ("kind_accuracy", "answer/clarify/refuse", "pct"),
    ("refusal_accuracy", "refusals", "pct"),
    ("clarification_accuracy", "clarifications", "pct"),
    ("answer_check_accuracy", "answer checks", "pct"),
    (f"semantic_{AT_RISK}_accuracy", "semantic: at-risk answers", "pct"),
    (f"semantic_{CAMPAIGN}_accuracy", "semantic: campaign not empty", "pct"),
    ("latency_p50_ms", "latency p50 (ms)", "{:,.0f}"),
    ("latency_p95_ms", "latency p95 (ms)", "{:,.0f}"),
    ("tokens_per_answer", "tokens per answer", "{:,.0f}"),
    ("tokens_source", "tokens counted by", "{}"),
    ("errors", "errors", "{}"),
]

GATES = {"tool_selection": "tool_selection_accuracy", "arguments": "argument_accuracy",
         "groundedness": "groundedness", "refusals": "refusal_accuracy",
         "clarifications": "clarification_accuracy", "kinds": "kind_accuracy",
         "at_risk_answers": f"semantic_{AT_RISK}_accuracy", "campaign_not_empty": f"semantic_{CAMPAIGN}_accuracy"}
SEMANTIC_LABELS = {AT_RISK: "at-risk answers list only at-risk customers",
                   CAMPAIGN: "a campaign for a named goal or playbook has customers"}


# ---------------------------------------------------------------- metrics


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    import numpy as np  # here, not at the top: `valuedesk --help` imports this package

    return round(float(np.percentile(values, q)), 1)


def _kind_accuracy(turns: list[TurnResult], kind: str) -> float | None:
    # Turns where the kind was expected (as the only right one) or produced: misses and false alarms both count.
    relevant = [t for t in turns if t.expected_kinds == [kind] or t.kind == kind]
    return _ratio(sum(t.kind_ok for t in relevant), len(relevant))


def _by_tag(results: list[CaseResult]) -> dict[str, dict[str, Any]]:
    by_tag: dict[str, list[TurnResult]] = defaultdict(list)
    for c in results:
        for tag in c.tags:
            by_tag[tag].extend(c.turns)
    return {tag: {"turns": len(ts), "tool_selection_accuracy": _ratio(sum(t.tool_selection_ok for t in ts), len(ts)),
                  "passed": _ratio(sum(t.passed for t in ts), len(ts))}
            for tag, ts in sorted(by_tag.items())}


def _semantic_metrics(results: list[CaseResult]) -> dict[str, Any]:
    """Per check: pass rate over the turns it applied to, how many, and the failed turns."""
    out: dict[str, Any] = {"semantic_failures": {}}
    for check in CHECKS:
        applied = [(c, t) for c in results for t in c.turns if check in t.semantic_checks]
        failed = [(c, t) for c, t in applied if t.semantic_checks[check]]
        out[f"semantic_{check}_accuracy"] = _ratio(len(applied) - len(failed), len(applied))
        out[f"semantic_{check}_turns"] = len(applied)
        out["semantic_failures"][check] = [
            {"case": c.id, "turn": t.turn, "user": t.user, "problems": t.semantic_checks[check]} for c, t in failed]
    return out


def summarise(results: list[CaseResult], *, backend: str, model: str | None,
              queries: str | None = None) -> dict[str, Any]:
    """The report: headline metrics, per-tag tool selection, and every case's turns."""
    turns = [t for c in results for t in c.turns]
    tokens = [t.completion_tokens for t in turns if t.completion_tokens is not None]
    figures = sum(t.figures for t in turns)
    return {
        "backend": backend,
        "model": model,
        "queries": queries,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cases": len(results),
        "turns": len(turns),
        "cases_passed": sum(c.passed for c in results),
        "tool_selection_accuracy": _ratio(sum(t.tool_selection_ok for t in turns), len(turns)),
        "argument_accuracy": _ratio(sum(t.arg_matches for t in turns), sum(t.arg_checks for t in turns)),
        "argument_checks": sum(t.arg_checks for t in turns),
        "groundedness": _ratio(sum(t.grounded for t in turns), figures),
        "figures": figures,
        "kind_accuracy": _ratio(sum(t.kind_ok for t in turns), len(turns)),
        "refusal_accuracy": _kind_accuracy(turns, "refuse"),
        "clarification_accuracy": _kind_accuracy(turns, "clarify"),
        "answer_check_accuracy": _ratio(sum(t.answer_ok for t in turns), len(turns)),
        "latency_p50_ms": _percentile([t.latency_ms for t in turns], 50),
        "latency_p95_ms": _percentile([t.latency_ms for t in turns], 95),
        "tokens_per_answer": round(sum(tokens) / len(tokens), 1) if tokens else None,
        "tokens_source": ",".join(sorted({t.tokens_source for t in turns if t.tokens_source})) or None,
        "errors": sum(t.error is not None for t in turns),
        **_semantic_metrics(results),
        "by_tag": _by_tag(results),
        "results": [c.model_dump() for c in results],
    }


# ---------------------------------------------------------------- markdown


def format_value(value: Any, fmt: str) -> str:
    if value is None:
        return "n/a"
    if fmt == "pct":
        return f"{value:.1%}"
    return fmt.format(value)


def run_label(report: dict[str, Any]) -> str:
    return f"{report.get('backend')}" + (f" ({report['model']})" if report.get("model") else "")


def markdown_table(rows: list[list[str]], headers: list[str]) -> list[str]:
    # Cells are preformatted text ("99.3%", "n/a"): no number parsing, no realignment.
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True).splitlines()


def _failure_reasons(turn: dict[str, Any]) -> list[str]:
    semantic = [f"{check}: {p}" for check, problems in turn.get("semantic_checks", {}).items() for p in problems]
    return (turn["tool_problems"] + turn["arg_problems"] + turn["answer_problems"] + semantic
            + ([f"kind {turn['kind']}, expected {'/'.join(turn['expected_kinds'])}"] if not turn["kind_ok"] else [])
            + ([turn["error"]] if turn.get("error") else []))


def semantic_markdown(report: dict[str, Any], heading: str = "##",
                      max_failures: int = MAX_FAILURES_SHOWN) -> list[str]:
    """Each semantic check: the turns it applied to, its pass rate, and its failures."""
    rows = [[check, SEMANTIC_LABELS[check], str(report.get(f"semantic_{check}_turns", 0)),
             format_value(report.get(f"semantic_{check}_accuracy"), "pct")] for check in CHECKS]
    lines = [f"{heading} Semantic checks", "", *markdown_table(rows, ["check", "rule", "turns checked", "passed"])]
    for check, failures in report.get("semantic_failures", {}).items():
        if failures:
            lines += ["", f"{heading}# {check} failures ({len(failures)})", ""]
            lines += [f"- `{f['case']}` turn {f['turn'] + 1} \u201c{f['user'][:80]}\u201d: "
                      + "; ".join(f["problems"])[:400] for f in failures[:max_failures]]
    return lines


def failed_turns_markdown(report: dict[str, Any], title: str = "## Failed turns",
                          max_failures: int = MAX_FAILURES_SHOWN) -> list[str]:
    """The failed turns of a run with their reasons."""
    failed = [(c, t) for c in report["results"] for t in c["turns"] if not t["passed"]]
    lines = [f"{title} ({len(failed)})", ""]
    for case, turn in failed[:max_failures]:
        lines.append(f"- `{case['id']}` turn {turn['turn'] + 1} \u201c{turn['user'][:80]}\u201d: "
                     + "; ".join(_failure_reasons(turn))[:400])
    if len(failed) > max_failures:
        lines.append(f"- ... and {len(failed) - max_failures} more (see the JSON report)")
    return lines


def markdown_report(report: dict[str, Any], max_failures: int = MAX_FAILURES_SHOWN) -> str:
    """One run: headline metrics, tool selection by tag, the semantic checks, and the failed turns."""
    lines = [f"# ValueDesk eval: {run_label(report)}", "",
             f"{report['cases']} cases, {report['turns']} turns from {report.get('queries') or 'queries'}.", ""]
    lines += markdown_table([[label, format_value(report.get(key), fmt)] for key, label, fmt in HEADLINE if key != "cases"],
                    ["metric", "value"])
    tag_rows = [[tag, str(row["turns"]), format_value(row["tool_selection_accuracy"], "pct"), format_value(row["passed"], "pct")]
                for tag, row in report.get("by_tag", {}).items()]
    lines += ["", "## By tag (turns)", "", *markdown_table(tag_rows, ["tag", "turns", "tool selection", "passed"])]
    lines += ["", *semantic_markdown(report, max_failures=max_failures)]
    lines += ["", *failed_turns_markdown(report, max_failures=max_failures)]
    return "\n".join(lines) + "\n"


def compare_markdown(reports: list[dict[str, Any]], names: list[str] | None = None) -> str:
    """Backends side by side: headline metrics, per-tag tool selection, and cases whose outcome differs."""
    names = names or [run_label(r) for r in reports]
    lines = ["# ValueDesk eval: comparison", ""]
    lines += markdown_table([[label, *(format_value(r.get(key), fmt) for r in reports)] for key, label, fmt in HEADLINE],
                    ["metric", *names])
    tags = sorted({t for r in reports for t in r.get("by_tag", {})})
    tag_rows = [[tag, *(format_value(r.get("by_tag", {}).get(tag, {}).get("tool_selection_accuracy"), "pct")
                        for r in reports)] for tag in tags]
    lines += ["", "## Tool selection by tag", "", *markdown_table(tag_rows, ["tag", *names])]
    outcome = [{c["id"]: c["passed"] for c in r["results"]} for r in reports]
    common = sorted(set.intersection(*(set(o) for o in outcome))) if outcome else []
    differ = [cid for cid in common if len({o[cid] for o in outcome}) > 1]
    lines += ["", f"## Cases with different outcomes ({len(differ)} of {len(common)} in common)", ""]
    if differ:
        rows = [[cid, *("pass" if o[cid] else "FAIL" for o in outcome)] for cid in differ]
        lines += markdown_table(rows, ["case", *names])
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- files and gates


def load_report(path: str | Path) -> dict[str, Any]:
    """A saved JSON report, checked to be one."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvalError(f"Eval report {path} not found; write one with `valuedesk eval --json {path}`.") from None
    except json.JSONDecodeError as exc:
        raise EvalError(f"Eval report {path} is not JSON ({exc}).") from None
    # A run over several query sets holds one report per set (see agent.eval.sets).
    for label, report in (data.get("sets") or {"": data}).items() if isinstance(data, dict) else [("", data)]:
        missing = [k for k in ("cases", "tool_selection_accuracy", "results")
                   if not isinstance(report, dict) or k not in report]
        if missing:
            where = f" (set {label!r})" if label else ""
            raise EvalError(f"{path} is not a `valuedesk eval` report{where} (missing {missing}).")
    return data


def write_text(text: str, path: str | Path) -> None:
    write_text_atomic(path, text, mode=REPORT_FILE_MODE)


def write_json(report: dict[str, Any], path: str | Path) -> None:
    write_text(json.dumps(report, indent=2, default=str) + "\n", path)


def parse_gates(text: str) -> dict[str, float]:
    """'tool_selection=0.95,arguments=0.9' -> {report key: threshold}."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if name.strip() not in GATES:
            raise EvalError(f"Unknown gate {name.strip()!r} in --fail-under; use {sorted(GATES)}.")
        try:
            out[GATES[name.strip()]] = float(value)
        except ValueError:
            raise EvalError(f"--fail-under {part!r}: the threshold must be a number like 0.95.") from None
    return out


def gate_failures(report: dict[str, Any], gates: dict[str, float]) -> list[str]:
    """'key value < threshold' for each gate the report misses (a missing figure misses)."""
    bad = []
    for key, threshold in gates.items():
        value = report.get(key)
        if value is None or value < threshold:
            bad.append(f"{key} {format_value(value, 'pct')} < {threshold:.0%}")
    return bad
