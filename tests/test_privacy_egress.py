"""Personal data in the conversation never reaches a hosted LLM (agent/graph.py masked_messages over
agent/privacy.py), and the placeholders in its answer are put back before the marketer reads it."""

from __future__ import annotations

from langchain.agents.middleware.types import ModelRequest, ModelResponse
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from agent.graph import ValueDeskMiddleware, llm_leaves_machine
from agent.settings import AgentSettings
from _tools_data import tools_data_dir
from tools.deps import ToolDeps
from tools.registry import ToolRegistry

QUESTION = ("My name is Priya Patel, call me on +44 7700 900123 or mail priya.patel@shop-test.example about "
            "customer 14911 and charge card 4111 1111 1111 1111 for the £2,000 campaign.")


def _middleware(base_url: str) -> ValueDeskMiddleware:
    settings = AgentSettings(data_dir=tools_data_dir(), llm_backend="openai", llm_base_url=base_url,
                             llm_model="m", embedding_model="hashing")
    return ValueDeskMiddleware(ToolRegistry(ToolDeps(settings)), settings, strict_tools=False)


def test_a_hosted_llm_sees_placeholders_and_the_marketer_sees_the_values():
    middleware = _middleware("https://llm.example.com/v1")
    seen = []

    def hosted_llm(request):
        seen.extend(m.content for m in request.messages)
        return ModelResponse(result=[AIMessage("I will call <PHONE_1> and write to email_1, <NAME_1>.")])

    history = [HumanMessage(QUESTION), AIMessage("Customer 14911 is Gold."),
               ToolMessage('{"customer_id": "14911", "predicted_value": 812.5}', tool_call_id="1")]
    request = ModelRequest(model=GenericFakeChatModel(messages=iter([])), messages=history, tools=[], state={},
                           runtime=None)
    answer = middleware.wrap_model_call(request, hosted_llm).result[0].content
    sent = "\n".join(seen)
    for secret in ("Priya", "Patel", "7700", "priya.patel", "4111"):
        assert secret not in sent
    assert "14911" in sent and "£2,000" in sent and "812.5" in sent  # ids, amounts and tool figures stay exact
    assert answer == "I will call +44 7700 900123 and write to priya.patel@shop-test.example, Priya Patel."
    assert history[0].content == QUESTION  # the conversation kept on our side is unchanged


def test_only_an_llm_off_this_machine_gets_masked_text():
    assert llm_leaves_machine(_middleware("https://api.example.com/v1").settings)
    assert not llm_leaves_machine(_middleware("http://127.0.0.1:8001/v1").settings)
    assert not llm_leaves_machine(AgentSettings(llm_backend="vllm"))
    seen = []
    request = ModelRequest(model=GenericFakeChatModel(messages=iter([])), messages=[HumanMessage(QUESTION)],
                           tools=[], state={}, runtime=None)
    _middleware("http://localhost:8001/v1").wrap_model_call(
        request, lambda r: seen.extend(m.content for m in r.messages) or ModelResponse(result=[AIMessage("ok")]))
    assert seen == [QUESTION]
