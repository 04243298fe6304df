"""`valuedesk eval`: its flags and the command. The settings come in as `args.settings`, read once by
the `valuedesk` entry point."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.eval.cases import DEFAULT_QUERIES, HELDOUT_QUERIES, Case, EvalError, load_cases, query_sets, select_cases
from agent.eval.report import GATES, compare_markdown, load_report, markdown_report, run_label, write_json, write_text
from agent.eval.runner import run_eval, vllm_token_counter
from agent.eval.scoring import CaseResult
from agent.eval.sets import combine_sets, is_blind, parse_set_gates, set_gate_failures, set_reports, sets_markdown
from predictor.settings import REPO_ROOT

if TYPE_CHECKING:
    from agent.settings import AgentSettings

BACKENDS = ("offline", "vllm", "openai")


def _shown(path: Path) -> str:
    """A query file as reports name it: relative to the repository when inside it."""
    resolved = path.resolve()
    root = REPO_ROOT.resolve()
    return resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else str(path)


def register_eval(sub: argparse._SubParsersAction) -> None:
    """Add `valuedesk eval`."""
    p = sub.add_parser(
        "eval", help="replay scripted marketer queries through the agent and score the answers",
        description="Replay the query files through the agent (multi-turn cases share a session), score tool "
                    "selection, arguments, groundedness, refusals and clarifications, the semantic answer checks "
                    "(an at-risk answer lists only at-risk customers; a campaign for a named goal has "
                    "customers), latency and tokens, print a markdown report (the sets side by side) and write "
                    "JSON (each set's report under its label). --compare puts saved reports side by side.")
    p.add_argument("--queries", action="extend", nargs="+", metavar="[LABEL=]PATH",
                   help=f"query file(s), repeatable; several are run one after the other and reported side by "
                        f"side, each under its label (LABEL=PATH, else 'development' for {DEFAULT_QUERIES.name}, "
                        f"'held-out' for {HELDOUT_QUERIES.name}, the file name for others). Default: "
                        f"{_shown(DEFAULT_QUERIES)} and, when present, {_shown(HELDOUT_QUERIES)}")
    p.add_argument("--backend", choices=BACKENDS, default="offline", help="agent backend (default offline)")
    p.add_argument("--base-url", help="OpenAI-compatible endpoint for vllm/openai (default VALUEDESK_LLM_BASE_URL)")
    p.add_argument("--model", help="model name for vllm/openai (default VALUEDESK_LLM_MODEL)")
    p.add_argument("--limit", type=int, help="run only the first N selected cases")
    p.add_argument("--tags", help="comma-separated tags; run cases having any of them (e.g. smoke)")
    p.add_argument("--ids", help="comma-separated case ids to run")
    p.add_argument("--json", type=Path, help="write the JSON report here")
    p.add_argument("--markdown", type=Path, help="also write the markdown report here")
    p.add_argument("--fail-under", metavar="[SET:]GATE=MIN,...",
                   help="exit 1 when a query set is below these. A gate applies to every set, or to one set when "
                        "prefixed with its label: tool_selection=0.95,groundedness=1,held-out:arguments=0.92. "
                        f"Gates: {', '.join(GATES)} (the last two are the semantic checks)")
    p.add_argument("--compare", nargs="+", metavar="REPORT", help="compare saved JSON reports side by side")
    p.add_argument("--quiet", action="store_true", help="no per-case progress on stderr")
    p.set_defaults(handler=run_eval_command)


def service_for(settings: AgentSettings, backend: str, base_url: str | None = None, model: str | None = None):
    """The agent service for a backend: `settings` with the backend, endpoint and model overridden."""
    from agent.service import get_agent_service

    update: dict[str, Any] = {"llm_backend": backend}
    if base_url:
        update["llm_base_url"] = base_url
    if model:
        update["llm_model"] = model
    return get_agent_service(settings.model_copy(update=update))


def _backend_info(service: Any) -> dict[str, Any]:
    info = getattr(service, "backend_info", None)
    if callable(info):
        try:
            return dict(info())
        except Exception:  # noqa: BLE001 - the report still has the requested names
            return {}
    return {}


def _compare(args: argparse.Namespace) -> int:
    # A multi-set report is one column per set.
    columns = [(f"{run_label(r)} {label}" if "sets" in r else run_label(r), report)
               for r in (load_report(p) for p in args.compare) for label, report in set_reports(r).items()]
    text = compare_markdown([c[1] for c in columns], [c[0] for c in columns])
    print(text)
    if args.markdown:
        write_text(text, args.markdown)
    return 0


def _print_progress(label: str | None):
    def show(result: CaseResult) -> None:
        prefix = f"[{label}] " if label else ""
        print(f"{'ok  ' if result.passed else 'FAIL'} {prefix}{result.id}", file=sys.stderr, flush=True)

    return show


def selected_sets(args: argparse.Namespace) -> list[tuple[str, Path, list[Case]]]:
    """(label, path, cases) per query set, with --tags/--ids/--limit applied to each set. With several
    sets, an id names a case of whichever set holds it, and a set with no selected case is left out."""
    loaded = [(label, path, load_cases(path)) for label, path in query_sets(args.queries)]
    tags = (args.tags or "").split(",")
    ids = {i.strip() for i in (args.ids or "").split(",") if i.strip()}
    if len(loaded) == 1:
        label, path, cases = loaded[0]
        return [(label, path, select_cases(cases, tags=tags, ids=ids, limit=args.limit))]
    unknown = ids - {c.id for _, _, cases in loaded for c in cases}
    if unknown:
        raise EvalError(f"Unknown case id(s): {sorted(unknown)}")
    out = []
    for label, path, cases in loaded:
        own = ids & {c.id for c in cases}
        if ids and not own:
            continue
        try:
            out.append((label, path, select_cases(cases, tags=tags, ids=own, limit=args.limit)))
        except EvalError:
            continue  # no case of this set has those tags
    if not out:
        raise EvalError(f"No case of any query set matches tags={args.tags!r} ids={args.ids!r}.")
    return out


def _service_and_counter(args: argparse.Namespace):
    service = service_for(args.settings, args.backend, args.base_url, args.model)
    info = _backend_info(service)
    model = info.get("model") or args.model
    counter = None
    if args.backend == "vllm" and (info.get("base_url") or args.base_url):
        counter = vllm_token_counter(info.get("base_url") or args.base_url, model)
    return service, model, counter


def run_eval_command(args: argparse.Namespace) -> int:
    """Run `valuedesk eval` (or `--compare`) with `args.settings`; 1 when a --fail-under gate is missed."""
    if args.compare:
        return _compare(args)
    if not args.json:
        raise EvalError("--json OUT is required when running the eval (or use --compare A.json B.json).")
    sets = selected_sets(args)
    gates = parse_set_gates(args.fail_under or "", [label for label, _, _ in sets])
    service, model, counter = _service_and_counter(args)
    reports: dict[str, dict[str, Any]] = {}
    for label, path, cases in sets:
        reports[label] = run_eval(service, cases, backend=args.backend, model=model, queries=_shown(path),
                                  # a blind set's case ids say what its cases ask: no per-case progress
                                  progress=None if args.quiet or is_blind(label)
                                  else _print_progress(label if len(sets) > 1 else None),
                                  token_counter=counter)
        reports[label]["label"] = label
    # One set keeps the single-set report shape; several are held under their labels.
    report = next(iter(reports.values())) if len(reports) == 1 else combine_sets(reports)
    write_json(report, args.json)
    single = len(reports) == 1 and not is_blind(next(iter(reports)))
    text = markdown_report(report) if single else sets_markdown(combine_sets(reports) if len(reports) == 1 else report)
    if args.markdown:
        write_text(text, args.markdown)
    print(text)
    failures = set_gate_failures(reports, gates)
    if failures:
        print("eval gate failed: " + "; ".join(failures), file=sys.stderr)
        return 1
    return 0
