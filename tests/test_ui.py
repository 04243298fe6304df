"""The chat UI (ui.py) in a real headless browser, over a data directory built from real Online Retail.

Playwright for Python drives Debian's chromium (/usr/bin/chromium, installed by
scripts/setup_browser.sh; `playwright install` is never used: it downloads a browser). The app is
served in-process on a free 127.0.0.1 port with the real offline agent service. Screenshots go to
test-output/ui/.

The adapter tests at the end feed events and failures to `ui.answer_stream` without a browser.
"""

from __future__ import annotations

import csv
import re
import socket
import subprocess
from pathlib import Path

import pandas as pd
import pytest

import ui
from agent import display
from agent.settings import AgentSettings
from valuedesk import bootstrap

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = REPO / "test-output" / "ui"
# Keep the browser off the network: no update checks, sync, QUIC probes or first-run pings.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ANSWER_TIMEOUT_MS = 180_000  # the first question loads the customer tables and the planner


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        proc = subprocess.run(["bash", str(REPO / "scripts" / "setup_browser.sh")], capture_output=True, text=True,
                              timeout=900)
        if not CHROMIUM.exists():
            pytest.skip(f"{CHROMIUM} is missing and scripts/setup_browser.sh could not install it: "
                        f"{(proc.stderr or proc.stdout).strip()[-300:]}")
    return CHROMIUM


@pytest.fixture(scope="module")
def built_settings(tmp_path_factory) -> AgentSettings:
    """Every real Online Retail customer scored (fast training profile), tiered and profiled; no index."""
    from predictor.build import build

    settings = AgentSettings(data_dir=tmp_path_factory.mktemp("ui_data"), training_profile="fast", threads=1)
    build(settings, with_index=False, progress=False)
    return settings


@pytest.fixture(scope="module")
def customers(built_settings) -> pd.DataFrame:
    frame = pd.read_parquet(built_settings.customers_path)
    return frame.set_index(frame["customer_id"].astype(str))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(built_settings):
    from agent.service import AgentService

    demo = ui.build_app(service=AgentService(built_settings), settings=built_settings)
    port = _free_port()
    bootstrap.launch(demo, "127.0.0.1", port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, app_url):
    """A fresh browser session (its own cookies, so its own chat session id) with the app loaded."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(app_url)
    page.wait_for_selector("#vd-backend :text('offline planner')")
    yield page
    context.close()


# --------------------------------------------------------------------------- page helpers


def ask(page, question: str) -> None:
    page.fill("#vd-input textarea", question)
    page.click("#vd-send")


def wait_for_step(page, tool: str) -> None:
    """Wait until the chat shows the tool step for `tool` as finished (it has a duration then)."""
    page.wait_for_function(
        r"""tool => { const t = document.querySelector('#vd-chat')?.innerText || '';
                      const i = t.indexOf('Tool: ' + tool);
                      return i >= 0 && /\(\d[\d.]*m?s\)/.test(t.slice(i, i + 600)); }""",
        arg=tool, timeout=ANSWER_TIMEOUT_MS)


def wait_idle(page) -> None:
    """The answer is complete when no component shows Gradio's progress tracker any more."""
    page.wait_for_function("() => !document.querySelector('.generating, .pending')", timeout=ANSWER_TIMEOUT_MS)


def table(page, elem_id: str) -> tuple[list[str], list[list[str]]]:
    """(headers, rows) of a gr.Dataframe as the browser shows them."""
    return page.eval_on_selector(f"#{elem_id}", """el => {
        const headers = Array.from(el.querySelectorAll('[role=columnheader]')).map(h => h.getAttribute('title') || h.innerText.trim());
        const rows = Array.from(el.querySelectorAll('[role=row]'))
            .map(r => Array.from(r.querySelectorAll('[role=gridcell]')).map(c => c.innerText.trim()))
            .filter(cells => cells.length > 0);
        return [headers, rows];
    }""")


def chat_text(page) -> str:
    return page.inner_text("#vd-chat")


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def download(page, selector: str = "#vd-download") -> list[dict[str, str]]:
    with page.expect_download() as info:
        page.click(selector)
    path = info.value.path()
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# --------------------------------------------------------------------------- browser tests


def test_at_risk_question_shows_the_tool_step_a_customer_table_and_exports_it(page, customers, built_settings):
    from predictor.model.artifacts import load_model_bundle

    panel = page.inner_text("#vd-backend")
    assert "No LLM is answering" in panel
    window = load_model_bundle(built_settings).metadata["training_window"]
    assert str(window["first_cutoff"])[:10] in panel and str(window["last_cutoff"])[:10] in panel

    ask(page, "who are my at-risk top customers?")
    wait_for_step(page, "find_customers")
    page.wait_for_selector("#vd-table [role=gridcell]", timeout=ANSWER_TIMEOUT_MS)
    wait_idle(page)
    shot(page, "at_risk_answer")

    text = chat_text(page)
    assert "Tool: find_customers" in text and "Tool: find_customers (failed)" not in text
    headers, rows = table(page, "vd-table")
    assert headers[0] == "customer_id" and {"tier", "churn_risk", "value_at_risk"} <= set(headers)
    ids = [r[0] for r in rows]
    assert len(ids) >= 1 and len(set(ids)) == len(ids)
    # Every row is a real customer, a top-tier one AT RISK by the one definition (never an active
    # customer the model is sure of), listed by value at risk as find_customers ranks them.
    assert set(ids) <= set(customers.index)
    assert set(customers.loc[ids, "tier"]) <= {"Platinum", "Gold"}
    assert customers.loc[ids, "at_risk"].all()
    assert set(customers.loc[ids, "lifecycle"]) <= {"at risk", "lapsing"}
    var = customers.loc[ids, "value_at_risk"].to_numpy()
    assert (var[:-1] >= var[1:] - 1e-9).all()
    tier_col = headers.index("tier")
    assert [r[tier_col] for r in rows] == list(customers.loc[ids, "tier"])
    # The answer itself names the top customer of the table.
    assert ids[0] in text.split("Tool: find_customers", 1)[1]

    # The whole audience (not only the rows shown) exports through export_audience, in the same order.
    total = int(re.search(r"total_matching: (\d+)", text).group(1))
    page.click("#vd-export")
    page.wait_for_selector("#vd-download", state="visible")
    assert f"{total:,} rows" in page.inner_text("#vd-export-note")
    exported = download(page)
    assert len(exported) == total
    assert [r["customer_id"] for r in exported[:len(ids)]] == ids
    assert {r["tier"] for r in exported} <= {"Platinum", "Gold"}
    assert customers.loc[[r["customer_id"] for r in exported], "at_risk"].all()
    shot(page, "at_risk_export")


def test_example_click_explains_a_customer(page, customers):
    page.get_by_role("button", name="why is customer 14911 flagged?").click()
    wait_for_step(page, "get_customer")
    page.wait_for_selector("#vd-table [role=gridcell]", timeout=ANSWER_TIMEOUT_MS)
    wait_idle(page)
    shot(page, "example_customer")

    text = chat_text(page)
    assert "why is customer 14911 flagged?" in text and "Tool: get_customer" in text
    headers, rows = table(page, "vd-table")
    assert [r[0] for r in rows] == ["14911"]
    assert rows[0][headers.index("tier")] == customers.loc["14911", "tier"]
    answer = text.split("Tool: get_customer", 1)[1]
    assert "14911" in answer and customers.loc["14911", "tier"] in answer


def test_example_export_offers_the_agents_csv(page, customers):
    page.get_by_role("button", name="export my at-risk customers as a CSV").click()
    wait_for_step(page, "export_audience")
    page.wait_for_selector("#vd-download", state="visible", timeout=ANSWER_TIMEOUT_MS)
    wait_idle(page)
    shot(page, "example_export")

    label = page.inner_text("#vd-download")
    rows_in_label = int(re.search(r"\(([\d,]+) rows\)", label).group(1).replace(",", ""))
    exported = download(page)
    assert len(exported) == rows_in_label > 0
    ids = [r["customer_id"] for r in exported]
    assert len(set(ids)) == len(ids) and set(ids) <= set(customers.index)
    # Exactly the at-risk customers, all of them (the one definition), nobody else.
    assert set(ids) == set(customers.index[customers["at_risk"]])
    assert f"{rows_in_label:,}" in chat_text(page) or str(rows_in_label) in chat_text(page)


def test_campaign_example_shows_the_plan_chart_and_its_audience_csv(page, customers):
    page.get_by_role("button", name="plan campaigns for my Gold and Platinum customers with a £2,000 budget").click()
    wait_for_step(page, "recommend_campaigns")
    page.wait_for_selector("#vd-campaigns [role=gridcell]", timeout=ANSWER_TIMEOUT_MS)
    wait_idle(page)
    shot(page, "campaign_plan")

    headers, rows = table(page, "vd-campaigns")
    assert {"name", "audience_size", "cost", "expected_net_value"} <= set(headers)
    names = [r[headers.index("name")] for r in rows]
    sizes = [int(r[headers.index("audience_size")]) for r in rows]
    costs = [float(r[headers.index("cost")]) for r in rows]
    assert names and sum(costs) <= 2000 + 1e-6
    answer = chat_text(page).split("Tool: recommend_campaigns", 1)[1]
    assert all(name in answer for name in names)

    page.get_by_role("tab", name="Charts").click()
    page.wait_for_selector("#vd-campaign-plot canvas, #vd-campaign-plot svg", state="visible")
    shot(page, "campaign_chart")

    # The plan's audience exports through export_audience: one row per targeted customer, controls left out.
    page.click("#vd-export")
    page.wait_for_selector("#vd-download", state="visible")
    exported = download(page)
    assert len(exported) == sum(sizes)
    assert {r["campaign"] for r in exported} == {n for n, k in zip(names, sizes) if k > 0}
    ids = [r["customer_id"] for r in exported]
    assert set(customers.loc[ids, "tier"]) <= {"Platinum", "Gold"}


def test_remaining_examples_give_non_empty_correct_answers(page, customers):
    """The example buttons not covered above: a win-back plan with customers in it (lapsed ones), the
    tier split of every customer, and the model's quality in words."""
    page.get_by_role("button", name="plan a win-back campaign for lapsed customers with a £2,000 budget").click()
    wait_for_step(page, "recommend_campaigns")
    page.wait_for_selector("#vd-campaigns [role=gridcell]", timeout=ANSWER_TIMEOUT_MS)
    wait_idle(page)
    shot(page, "example_win_back")
    headers, rows = table(page, "vd-campaigns")
    assert sum(int(r[headers.index("audience_size")]) for r in rows) > 0
    assert "Tool: recommend_campaigns (failed)" not in chat_text(page)
    page.click("#vd-export")
    page.wait_for_selector("#vd-download", state="visible")
    ids = [r["customer_id"] for r in download(page)]
    assert ids and set(customers.loc[ids, "lifecycle"]) == {"lapsed"}

    page.get_by_role("button", name="how are my customers spread across tiers?").click()
    wait_for_step(page, "segment_summary")
    wait_idle(page)
    answer = chat_text(page).rsplit("Tool: segment_summary", 1)[1]
    for tier, count in customers["tier"].value_counts().items():  # every customer, in the tier they are in
        assert f"{tier}: {count:,} customer" in answer

    page.get_by_role("button", name="how good is the model?").click()
    wait_for_step(page, "model_report")
    wait_idle(page)
    answer = chat_text(page).rsplit("Tool: model_report", 1)[1]
    assert "Tool: model_report (failed)" not in chat_text(page)
    assert re.search(r"top 10%.{0,80}\d+(\.\d+)?% of", answer), answer[:600]


def test_tool_error_is_a_friendly_message_and_the_session_keeps_working(page):
    ask(page, "why is customer 99999999 flagged?")
    wait_for_step(page, "get_customer")
    wait_idle(page)
    text = chat_text(page)
    assert "Tool: get_customer (failed)" in text
    assert "Traceback" not in text and 'File "' not in text
    shot(page, "tool_error")

    ask(page, "how are my customers spread across tiers?")
    wait_for_step(page, "segment_summary")
    wait_idle(page)
    assert "Tool: segment_summary" in chat_text(page)
    page.get_by_role("tab", name="Charts").click()
    page.wait_for_selector("#vd-tier-plot canvas, #vd-tier-plot svg", state="visible")
    shot(page, "tier_chart")

    page.click("#vd-new-chat")
    page.wait_for_function("() => !document.querySelector('#vd-chat').innerText.includes('segment_summary')")
    assert page.locator("#vd-table").is_hidden()


# --------------------------------------------------------------------------- adapter tests (no browser)


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


def test_first_run_builds_only_what_is_missing(built_settings, monkeypatch):
    assert bootstrap.missing_artifacts(built_settings, with_index=False) == []
    assert bootstrap.missing_artifacts(built_settings, with_index=True) == ["chroma/"]
    import predictor.build

    monkeypatch.setattr(predictor.build, "build", lambda *a, **k: pytest.fail("built although nothing was missing"))
    assert bootstrap.ensure_built(built_settings, with_index=False) is None


def test_ui_subcommand_registers_with_the_cli():
    import argparse

    parser = argparse.ArgumentParser(prog="valuedesk")
    bootstrap.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["ui", "--port", "7999", "--no-index"])
    assert args.handler is bootstrap.run_ui and args.port == 7999 and args.host == "127.0.0.1" and args.no_index
