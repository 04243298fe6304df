"""End to end through the REAL vLLM server (SmolLM2-135M on CPU): the agent with backend vllm and
tool_choice required answers a question; the wire path is what is tested (a tool call parsed from
the model's output, executed on the registry, an answer returned with the tool trace), not the
tiny model's choice of tool. Skipped with the reason when .venv-vllm is missing (see vllm_fixture)."""

from __future__ import annotations


from _agent_support import copy_tables, make_settings, no_real_llm  # noqa: F401
from agent.service import AgentService
from tools.deps import ToolDeps
from tools.registry import ToolRegistry
from vllm_fixture import requires_vllm


@requires_vllm
def test_agent_answers_through_real_vllm(vllm_server, tmp_path):
    copy_tables(tmp_path)
    settings = make_settings(
        tmp_path, llm_backend="vllm", llm_base_url=vllm_server.base_url, llm_model=vllm_server.model,
        # Temperature 0 and a seed; the required call is decoded under the bounded tool schemas with a
        # token budget that always closes it (agent.tool_schema); each request times out on its own.
        llm_tool_choice="required", llm_max_tokens=256, llm_timeout_s=240, llm_temperature=0.0, llm_seed=42,
        # Two tools, so the required call's token budget (agent.tool_schema) fits llm_max_call_tokens;
        # no few-shot turns and short tool output keep each CPU step short.
        agent_tools="find_customers,segment_summary", agent_few_shot=False, agent_max_tool_chars=1200,
        agent_max_steps=3, agent_grounding_retries=0)
    service = AgentService(settings, registry=ToolRegistry(ToolDeps(settings)))
    assert service.backend_info()["base_url"] == vllm_server.base_url

    reply = service.chat("Show me 3 Gold customers in Germany.", "vllm-e2e")

    assert reply.backend == "vllm" and reply.model == vllm_server.model
    assert reply.kind == "answer", reply.answer
    assert reply.tool_calls, "no tool call was parsed from the model's output"
    first = reply.tool_calls[0]
    assert first.name in ("find_customers", "segment_summary")
    # Executed on the registry: a real result, or a structured error the model saw as data.
    assert (first.result is not None) != (first.error is not None)
    assert first.duration_ms > 0
    assert reply.answer.strip()
