"""`valuedesk eval`: its flags and the command. The settings come in as `args.settings`, read once by
the `valuedesk` entry point."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.eval.cases import DEFAULT_QUERIES, EvalError, load_cases, select_cases
from agent.eval.report import (
    compare_markdown,
    gate_failures,
    load_report,
    markdown_report,
    parse_gates,
    write_json,
    write_text,
)
from agent.eval.runner import run_eval, vllm_token_counter
from agent.eval.scoring import CaseResult

if TYPE_CHECKING:
    from agent.settings import AgentSettings

BACKENDS = ("offline", "vllm", "openai")


def register_eval(sub: argparse._SubParsersAction) -> None:
    """Add `valuedesk eval`."""
    p = sub.add_parser(
        "eval", help="replay scripted marketer queries through the agent and score the answers",
        description="Replay the query file through the agent (multi-turn cases share a session), score tool "
                    "selection, arguments, groundedness, refusals and clarifications, latency and tokens, "
                    "print a markdown report and write JSON. --compare puts saved reports side by side.")
    p.add_argument("--queries", type=Path, default=DEFAULT_QUERIES, help=f"query file (default {DEFAULT_QUERIES})")
    p.add_argument("--backend", choices=BACKENDS, default="offline", help="agent backend (default offline)")
    p.add_argument("--base-url", help="OpenAI-compatible endpoint for vllm/openai (default VALUEDESK_LLM_BASE_URL)")
    p.add_argument("--model", help="model name for vllm/openai (default VALUEDESK_LLM_MODEL)")
    p.add_argument("--limit", type=int, help="run only the first N selected cases")
    p.add_argument("--tags", help="comma-separated tags; run cases having any of them (e.g. smoke)")
    p.add_argument("--ids", help="comma-separated case ids to run")
    p.add_argument("--json", type=Path, help="write the JSON report here")
    p.add_argument("--markdown", type=Path, help="also write the markdown report here")
    p.add_argument("--fail-under", help="exit 1 below these, e.g. tool_selection=0.95,arguments=0.9,groundedness=1")
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
    text = compare_markdown([load_report(p) for p in args.compare])
    print(text)
    if args.markdown:
        write_text(text, args.markdown)
    return 0


def _print_progress(result: CaseResult) -> None:
    print(f"{'ok  ' if result.passed else 'FAIL'} {result.id}", file=sys.stderr, flush=True)


def run_eval_command(args: argparse.Namespace) -> int:
    """Run `valuedesk eval` (or `--compare`) with `args.settings`; 1 when a --fail-under gate is missed."""
    if args.compare:
        return _compare(args)
    if not args.json:
        raise EvalError("--json OUT is required when running the eval (or use --compare A.json B.json).")
    cases = select_cases(load_cases(args.queries), tags=(args.tags or "").split(","),
                         ids=(args.ids or "").split(","), limit=args.limit)
    gates = parse_gates(args.fail_under) if args.fail_under else {}
    service = service_for(args.settings, args.backend, args.base_url, args.model)
    info = _backend_info(service)
    model = info.get("model") or args.model
    counter = None
    if args.backend == "vllm" and (info.get("base_url") or args.base_url):
        counter = vllm_token_counter(info.get("base_url") or args.base_url, model)
    report = run_eval(service, cases, backend=args.backend, model=model, queries=str(args.queries),
                      progress=None if args.quiet else _print_progress, token_counter=counter)
    write_json(report, args.json)
    text = markdown_report(report)
    if args.markdown:
        write_text(text, args.markdown)
    print(text)
    failures = gate_failures(report, gates)
    if failures:
        print("eval gate failed: " + "; ".join(failures), file=sys.stderr)
        return 1
    return 0
