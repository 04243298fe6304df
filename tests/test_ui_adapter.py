"""The chat UI's adapter (ui.answer_stream, ui.Turn) and the display helpers it shows through
(agent.display_answer, agent.display_table, agent.display_charts), without a browser: scripted agent
events and failures, and real tool results from a registry over the real Online Retail data.

The browser tests are tests/test_ui.py.
"""

from __future__ import annotations

import warnings

import pytest

import ui
from agent import display, display_answer, display_charts, display_table
from predictor.figures import GLOSSARY, money, pct
from valuedesk import bootstrap



class _Service:
    """A stand-in that replays scripted events, or raises, to exercise the adapter's edge cases."""

    def __init__(self, events=(), exc: Exception | None = None, backend: str = "offline"):
        self.events, self.exc, self.backend = list(events), exc, backend

    def stream(self, message, session_id):
        yield from self.events
        if self.exc is not None:
            raise self.exc

    def backend_info(self):
        return {"backend": self.backend, "model": "m", "base_url": "http://127.0.0.1:9/v1"}


def _final(service, message="who are my at-risk top customers?"):
    states = list(ui.answer_stream(service, message, [], "s1"))
    return states[-1][0]


def test_backend_exception_becomes_a_friendly_message():
    turn = _final(_Service([{"type": "tool_start", "data": {"name": "find_customers", "arguments": {}}}],
                           exc=ConnectionError("connection refused"), backend="vllm"))
    assert turn.finished
    last = turn.history[-1]["content"]
    assert "not answering" in last and "http://127.0.0.1:9/v1" in last and "Traceback" not in last
    # The step that never finished is closed, not left spinning.
    assert all(m.get("metadata", {}).get("status") != "pending" for m in turn.history)


def test_tool_error_step_and_error_event():
    error = {"code": "not_found", "message": "No customer '1'.", "hint": "Check the id."}
    turn = _final(_Service([
        {"type": "tool_start", "data": {"name": "get_customer", "arguments": {"customer_id": "1"}}},
        {"type": "tool_end", "data": {"name": "get_customer", "arguments": {"customer_id": "1"}, "result": None,
                                      "error": error, "duration_ms": 12.0}},
        {"type": "error", "data": {"message": "The agent failed."}},
    ]))
    step = next(m for m in turn.history if m.get("metadata"))
    assert step["metadata"]["title"] == "Tool: get_customer (failed)" and step["metadata"]["status"] == "done"
    assert step["metadata"]["duration"] == pytest.approx(0.012)
    assert "No customer '1'." in step["content"] and "Check the id." in step["content"]
    assert "The agent failed." in turn.history[-1]["content"]


def test_stream_without_reply_and_empty_question():
    turn = _final(_Service([{"type": "token", "data": {"text": "Hel"}}]))
    assert turn.finished and "stopped without a reply" in turn.history[-1]["content"]
    turn = _final(_Service(), message="   ")
    assert turn.history == [{"role": "assistant", "content": turn.history[0]["content"]}]


def test_audience_export_arguments_follow_the_tool_call():
    args = {"tiers": ["Gold"], "lifecycle": ["lapsed"], "goal": "win_back", "budget": 2000, "limit": 20}
    assert display.export_arguments(args, "campaigns") == {"tiers": ["Gold"], "lifecycle": ["lapsed"], "goal": "win_back",
                                                      "budget": 2000, "source": "campaigns"}
    assert display.export_arguments(args, "filter") == {"tiers": ["Gold"], "lifecycle": ["lapsed"], "source": "filter"}


def test_backend_panel_names_the_backend():
    assert "No LLM is answering" in display.backend_markdown({"backend": "offline", "training_window": "a to b"})
    vllm = display.backend_markdown({"backend": "vllm", "model": "smollm2-135m", "base_url": "http://h:8001/v1"})
    assert "vLLM" in vllm and "smollm2-135m" in vllm and "http://h:8001/v1" in vllm
    openai = display.backend_markdown({"backend": "openai", "model": "gpt-x", "base_url": "https://e/v1",
                                  "training_window": {"first_cutoff": "2011-01-01", "last_cutoff": "2011-06-01"}})
    assert "OpenAI-compatible" in openai and "2011-01-01 to 2011-06-01" in openai


def test_ui_subcommand_registers_with_the_cli():
    import argparse

    parser = argparse.ArgumentParser(prog="valuedesk")
    bootstrap.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["ui", "--port", "7999", "--no-index"])
    assert args.handler is bootstrap.run_ui and args.port == 7999 and args.host == "127.0.0.1" and args.no_index


# --------------------------------------------------------------------------- display helpers


def test_text_is_shown_in_chunks_and_the_answer_replaces_the_preview():
    tokens = [{"type": "token", "data": {"text": w + " "}} for w in "a b c d e f g h".split()]
    states = list(ui.answer_stream(_Service([*tokens, {"type": "answer", "data": {"answer": "the final text"}}]),
                                   "q", [], "s1"))
    turn = states[-1][0]
    assert turn.finished and turn.history[-1]["content"] == "the final text"
    assert turn.status().startswith("Answered in")


def test_status_line_names_the_running_tool_in_words():
    turn = ui.Turn(history=[])
    turn.apply({"type": "tool_start", "data": {"name": "find_customers", "arguments": {}}})
    assert "Looking up customers" in turn.status() and "find customers" in turn.status()
    turn.apply({"type": "tool_end", "data": {"name": "find_customers", "arguments": {}, "result": {"customers": []}}})
    assert "Thinking" in turn.status()
    turn.fail("x")
    assert turn.status().startswith("Stopped")


def test_a_listed_table_is_not_repeated_in_the_answer_text():
    text = ("3 customers match. The top 3:\n1. Customer 11 (Gold): value at risk £5\n"
            "2. Customer 12 (Gold): value at risk £4\n3. Customer 13 (Gold): value at risk £3\nNote: x.")
    shown = display_answer.answer_for_screen(text, {"11", "12", "13"})
    assert "Customer 11" in shown and "Customer 12" not in shown and "Customer 13" not in shown
    assert "2 more customers in the table" in shown and shown.endswith("Note: x.")
    assert display_answer.answer_for_screen(text, set()) == text  # no table: the list stays
    assert display_answer.answer_for_screen("- Win-back: 1 customers", set()) == "- Win-back: 1 customer"


def test_tables_keep_numbers_and_show_them_formatted():
    rows = [{"customer_id": "1", "tier": "Gold", "churn_risk": 0.309, "value_at_risk": 8108.44, "last_order": "2011-10-01",
             "lifecycle": "lapsing", "predicted_value": 912.5, "recency_days": 57.56, "historical_value": 12345.6},
            {"customer_id": "2", "tier": "Bronze", "churn_risk": 0.004, "value_at_risk": 12000.0,
             "last_order": "2011-11-01", "lifecycle": "at risk", "predicted_value": 50.0, "recency_days": 3.2}]
    view = display_table.customer_table(rows, "at_risk", "£")
    assert list(view.frame.columns[:5]) == ["Customer", "Churn risk (%)", "Value at risk (£)", "Last order", "Lifecycle"]
    assert view.frame["Value at risk (£)"].tolist() == [8108.44, 12000.0]  # numbers underneath: they sort as numbers
    shown = view.styler.to_html()
    assert "£8,108" in shown and "£12,000" in shown and "31%" in shown and "under 1%" in shown
    assert "Lifetime revenue" not in shown  # a value column the question did not ask about stays out
    plan = display_table.campaign_table([{"name": "welcome_second_order", "goal": "grow", "cost": 1500.0, "roi": 2.5,
                                          "expected_incremental_revenue": 5250.0, "audience_size": 1}], "£")
    assert plan.frame["Campaign"].tolist() == ["Welcome second order"]
    html = plan.styler.to_html()
    assert "£1,500" in html and "250%" in html and "ROI (% of cost)" in html
    caption = display_table.glossary_caption(view.columns, "£")
    assert f"**Value at risk (£)**: {GLOSSARY['value_at_risk'].meaning}" in caption
    assert display_table.plural(1, "customer") == "1 customer" and display_table.plural(2, "customer") == "2 customers"


def test_one_customer_is_a_card_and_charts_start_from_tool_figures():
    results = display_answer.AnswerResults()
    results.collect("get_customer", {"customer_id": "7"}, {
        "customer_id": "7", "tier": "Gold", "lifecycle": "active", "predicted_value": 1234.5, "churn_risk": 0.2,
        "value_at_risk": 99.0, "currency": "£", "next_best_action": {"campaign": "vip_retention",
                                                                       "expected_net_value": 12.0}})
    panels = display_answer.results_panels(results)
    card, table, scatter = panels[1], panels[2], panels[10]
    assert card["visible"] and "Customer 7" in card["value"] and money(1234.5, "£") in card["value"]
    assert pct(0.2) in card["value"] and "VIP retention" in card["value"]
    assert not table["visible"] and not scatter["visible"]
    groups = [{"group": t, "customers": n, "revenue_12m": 10.0, "predicted_value": 5.0, "value_at_risk": 1.0}
              for t, n in [("Bronze", 30), ("Platinum", 4)]]
    assert display_charts.tier_counts(groups)["tier"].tolist() == ["Platinum", "Bronze"]
    assert display_charts.group_colours(groups) == display_charts.TIER_COLOURS
    assert display_charts.group_colours([{"group": "United Kingdom"}]) is None


def test_the_pager_asks_the_same_tool_for_the_next_and_previous_rows():
    results = display_answer.AnswerResults()
    args = {"lifecycle": ["lapsed"]}
    results.collect("find_customers", args, {"total_matching": 45, "returned": 20, "sort_by": "value_at_risk",
                                             "customers": [{"customer_id": str(i)} for i in range(20)]})
    assert results.page_call(-1) is None  # the first page has no previous one
    forward = results.page_call(1)
    assert forward == {"tool": "find_customers", "args": {"lifecycle": ["lapsed"], "limit": 20, "offset": 20}}
    assert display_answer.pager_line(results) == "Rows 1–20 of 45"
    results.replace_rows(forward["tool"], forward["args"], {"total_matching": 45, "returned": 20, "customers": [
        {"customer_id": str(i)} for i in range(20, 40)]})
    assert display_answer.pager_line(results) == "Rows 21–40 of 45" and "rows 21 to 40 are shown" in \
        display_answer.list_summary(results)
    assert results.page_call(-1)["args"]["offset"] == 0 and results.page_call(1)["args"]["offset"] == 40
    results.replace_rows("find_customers", {**args, "limit": 20, "offset": 40}, {
        "total_matching": 45, "returned": 5, "customers": [{"customer_id": str(i)} for i in range(40, 45)]})
    assert results.page_call(1) is None and display_answer.pager_line(results) == "Rows 41–45 of 45"
    panels = display_answer.results_panels(results)
    assert [p.get("interactive") for p in panels[4:6]] == [True, False]  # Previous on, Next off at the end
    results.collect("find_customers", args, {"total_matching": 7, "returned": 7, "customers": []})
    assert results.page_call(1) is None and display_answer.pager_line(results) == ""


def test_the_page_css_and_head_go_to_launch_the_gradio_6_way(tmp_path, monkeypatch):
    """Gradio 6 takes css/head at launch(): the app passes none to Blocks() (no deprecation warning to
    silence) and valuedesk.bootstrap.launch hands the page's own to launch()."""
    from agent import display_page
    from agent.settings import AgentSettings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        demo = ui.build_app(service=_Service(), settings=AgentSettings(data_dir=tmp_path))
    assert not [w for w in caught if "launch()" in str(w.message)]
    assert demo._deprecated_css is None and demo._deprecated_head is None
    launched = {}
    monkeypatch.setattr(demo, "launch", lambda **kw: launched.update(kw))
    bootstrap.launch(demo, "127.0.0.1", 7999, prevent_thread_lock=True)
    assert launched["css"] == display_page.CSS and launched["head"] == display_page.HEAD
    assert launched["server_port"] == 7999 and launched["prevent_thread_lock"]
    bootstrap.launch(demo, "127.0.0.1", 7999, css="x")
    assert launched["css"] == "x" and launched["head"] == display_page.HEAD


def test_a_header_click_on_a_paged_list_ranks_every_row_through_the_tool():
    results = display_answer.AnswerResults()
    args = {"lifecycle": ["lapsed"], "limit": 20, "offset": 40}
    results.collect("find_customers", args, {"total_matching": 90, "returned": 20, "sort_by": "value_at_risk",
                                             "customers": [{"customer_id": str(i)} for i in range(20)]})
    assert results.sort_call("Predicted value (£)") == {"tool": "find_customers", "args": {
        "lifecycle": ["lapsed"], "limit": 20, "offset": 0, "sort_by": "predicted_value"}}
    assert results.sort_call("Churn risk (%)")["args"]["sort_by"] == "churn_risk"
    assert results.sort_call("Last order") is None  # find_customers does not rank by it
    assert "rank all 90 by it" in display_answer.list_summary(results)
    results.collect("find_customers", {}, {"total_matching": 7, "returned": 7, "customers": []})
    assert results.sort_call("Predicted value (£)") is None  # one page: the browser sorts it whole


def test_the_scatter_axis_has_room_above_its_highest_point():
    rows = [{"customer_id": str(i), "tier": "Gold", "churn_risk": 0.1 * i, "predicted_value": v}
            for i, v in enumerate([120.0, 9_980.0, 4_000.0])]
    results = display_answer.AnswerResults()
    results.collect("find_customers", {}, {"total_matching": 3, "returned": 3, "customers": rows})
    scatter = display_answer.results_panels(results)[10]
    assert scatter["visible"] and scatter["y_lim"][0] == 0 and scatter["y_lim"][1] >= 9_980.0 * 1.05
    assert display_charts.axis_top(9_980.0) == (12_500, 2_500)
