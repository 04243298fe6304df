"""`valuedesk` subcommands owned by the agent layer."""

from __future__ import annotations

import argparse


def _serve_llm(args: argparse.Namespace) -> int:
    # Imported here so `valuedesk --help` stays fast and never touches the LLM stack.
    from agent.llm_server import serve_forever
    from predictor.settings import get_settings

    settings = get_settings()
    if args.model:
        settings = settings.model_copy(update={"vllm_model": args.model})
    return serve_forever(settings, port=args.port)


def register(sub: argparse._SubParsersAction) -> None:
    """Add this layer's subcommands."""
    serve = sub.add_parser(
        "serve-llm",
        help="run vLLM's OpenAI-compatible server with tool calling (needs scripts/setup_vllm.sh)",
        description="Start vLLM for the configured model (VALUEDESK_VLLM_MODEL), wait for /health, "
                    "and serve until interrupted.")
    serve.add_argument("--model", help="model key (smollm2-135m, qwen3-8b, qwen2.5-7b, llama-3.1-8b) or HF id")
    serve.add_argument("--port", type=int, help="port (default VALUEDESK_VLLM_PORT)")
    serve.set_defaults(handler=_serve_llm)
