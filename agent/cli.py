"""`valuedesk` subcommands owned by the agent layer: serve-llm, chat, eval (`valuedesk agent-api`, the
one HTTP server, is the wiring's: valuedesk.server). Handlers get `args.settings` from the CLI."""

from __future__ import annotations

import argparse
import json
import sys

from agent.eval import register_eval


def _serve_llm(args: argparse.Namespace) -> int:
    # Imported here so `valuedesk --help` stays fast and never touches the LLM stack.
    from agent.llm_server import serve_forever

    settings = args.settings
    if args.model:
        settings = settings.model_copy(update={"vllm_model": args.model})
    return serve_forever(settings, port=args.port)


def _chat(args: argparse.Namespace) -> int:
    from agent.service import get_agent_service

    service = get_agent_service(args.settings)
    if args.json:
        reply = service.chat(args.question, args.session)
        print(json.dumps(reply.model_dump(mode="json"), indent=2, ensure_ascii=False))
        return 0 if reply.kind != "error" else 2
    info = service.backend_info()
    if info["backend"] == "offline":
        print("(offline mode: no LLM is answering; the planner maps your question to tools)", file=sys.stderr)
    answer = None
    for event in service.stream(args.question, args.session):
        if event.type == "tool_start":
            print(f"-> {event.data['name']} {json.dumps(event.data['arguments'], ensure_ascii=False)}", file=sys.stderr)
        elif event.type == "tool_end":
            status = f"error {event.data['error']['code']}" if event.data.get("error") else "ok"
            print(f"<- {event.data['name']} {status} ({event.data['duration_ms']:.0f} ms)", file=sys.stderr)
        elif event.type == "answer":
            answer = event.data
        elif event.type == "error":
            print(f"error: {event.data['message']}", file=sys.stderr)
            return 2
    print(answer["answer"])
    if answer.get("unverified"):
        print(f"(unverified: {', '.join(answer['unverified'])})", file=sys.stderr)
    if not args.session and answer.get("session_id"):
        print(f"(session {answer['session_id']}: add --session {answer['session_id']} to follow up)", file=sys.stderr)
    return 0


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

    chat = sub.add_parser("chat", help="ask the agent one question (VALUEDESK_LLM_BACKEND: offline, vllm, openai)",
                          description="Answer one question with tool calls; --session keeps a conversation going.")
    chat.add_argument("question")
    chat.add_argument("--session", default=None,
                      help="conversation id to continue or start (kept in the data dir); without it each "
                           "question starts a fresh session, whose id is printed")
    chat.add_argument("--json", action="store_true", help="print the answer and the tool trace as JSON")
    chat.set_defaults(handler=_chat)

    register_eval(sub)
