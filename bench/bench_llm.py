"""Measure the vLLM path: startup time, resident memory, decode speed, tool-call latency.

    .venv/bin/python bench/bench_llm.py [--port 8011] [--tokens 128] [--runs 3]
    VALUEDESK_VLLM_MODEL=qwen3-8b .venv/bin/python bench/bench_llm.py   # on a GPU machine

Starts its own server (agent.llm_server.LLMServer), prints one JSON object and writes it to
bench/out/llm.json. Decode speed uses ignore_eos so every run generates exactly --tokens tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.llm_server import LLMServer  # noqa: E402
from valuedesk.config import load_settings  # noqa: E402

TOOL = {
    "type": "function",
    "function": {
        "name": "find_customers",
        "description": "List customers of a value tier in a country.",
        "parameters": {
            "type": "object",
            "properties": {
                "tier": {"type": "string", "enum": ["Platinum", "Gold", "Silver", "Bronze"]},
                "country": {"type": "string"},
                "limit": {"type": "integer"},
            },
            "required": ["tier", "country", "limit"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    import openai

    settings = load_settings()
    load_at_start = round(os.getloadavg()[0], 1)
    log = Path(tempfile.gettempdir()) / "valuedesk-bench-vllm.log"
    server = LLMServer(settings, port=args.port, log_path=log)
    t0 = time.monotonic()
    server.ensure_model()
    convert_s = time.monotonic() - t0
    with server:
        client = openai.OpenAI(base_url=server.base_url, api_key="EMPTY", timeout=600)
        # First request pays one-off warm-up; keep it out of the figures.
        client.chat.completions.create(model=server.model_name, max_tokens=8,
                                       messages=[{"role": "user", "content": "Hi"}])
        decode = []
        for _ in range(args.runs):
            start = time.monotonic()
            resp = client.chat.completions.create(
                model=server.model_name, max_tokens=args.tokens, temperature=0,
                messages=[{"role": "user", "content": "Write a short note to a loyal customer."}],
                extra_body={"ignore_eos": True})
            decode.append(resp.usage.completion_tokens / (time.monotonic() - start))
        tool_latency, tool_ok = [], 0
        for _ in range(args.runs):
            start = time.monotonic()
            resp = client.chat.completions.create(
                model=server.model_name, tools=[TOOL], tool_choice=settings.llm_tool_choice,
                max_tokens=96, temperature=0,
                messages=[{"role": "user", "content": "Show me 5 Gold customers in Germany."}])
            tool_latency.append(time.monotonic() - start)
            tool_ok += bool(resp.choices[0].message.tool_calls)
        rss = server.rss_bytes()
        startup = server.startup_seconds

    figures = {
        "model": server.model_name,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        # Decode speed on a shared 2-core box tracks the load; report it with the figures.
        "load_avg_1m_at_start": load_at_start,
        "convert_or_cache_s": round(convert_s, 1),
        "startup_s": round(startup, 1),
        "rss_gb": round(rss / 1e9, 2),
        "decode_tokens_per_s": round(statistics.median(decode), 1),
        "decode_runs": [round(x, 1) for x in decode],
        "tool_call_latency_s": round(statistics.median(tool_latency), 2),
        "tool_calls_parsed": f"{tool_ok}/{args.runs} (tool_choice={settings.llm_tool_choice})",
    }
    print(json.dumps(figures, indent=2))
    out = Path(__file__).resolve().parent / "out"
    out.mkdir(exist_ok=True)
    tmp = out / "llm.json.tmp"
    tmp.write_text(json.dumps(figures, indent=2))
    os.replace(tmp, out / "llm.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
