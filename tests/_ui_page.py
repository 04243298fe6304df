"""Page helpers for the browser tests of the chat UI (tests/test_ui.py): ask a question, wait for the
answer, read a table, a chart's axis and colours, and take screenshots. Playwright pages only."""

from __future__ import annotations

import csv
import re
import socket
import time
from pathlib import Path

from agent.display import event_parts

REPO = Path(__file__).resolve().parent.parent
SHOTS = REPO / "test-output" / "ui"
ANSWER_TIMEOUT_MS = 180_000  # the first question loads the customer tables and the planner


def ask(page, question: str) -> None:
    _forget_status(page)
    page.fill("#vd-input textarea", question)
    page.click("#vd-send")


def example(page, question: str) -> None:
    _forget_status(page)
    page.get_by_role("button", name=question).click()


def _forget_status(page) -> None:
    """Watch the status line from now on, so `wait_idle` waits for this question's answer, not the last one's."""
    page.evaluate("""() => { window.vdStatusMoved = false;
        const s = document.querySelector('#vd-status');
        if (window.vdWatch) window.vdWatch.disconnect();
        window.vdWatch = new MutationObserver(() => { window.vdStatusMoved = true; });
        window.vdWatch.observe(s, {subtree: true, childList: true, characterData: true}); }""")


def wait_for_step(page, tool: str) -> None:
    """Wait until the chat shows the tool step for `tool` as finished (it has a duration then)."""
    page.wait_for_function(
        r"""tool => { const t = document.querySelector('#vd-chat')?.innerText || '';
                      const i = t.indexOf('Tool: ' + tool);
                      return i >= 0 && /\(\d[\d.]*m?s\)/.test(t.slice(i, i + 600)); }""",
        arg=tool, timeout=ANSWER_TIMEOUT_MS)


def wait_idle(page) -> None:
    """The answer is complete when the status line says so and no component shows Gradio's progress."""
    page.wait_for_function(
        "() => window.vdStatusMoved !== false"
        " && /^(Answered|Stopped)/.test((document.querySelector('#vd-status')?.innerText || '').trim())"
        " && !document.querySelector('.generating, .pending')", timeout=ANSWER_TIMEOUT_MS)


def table(page, elem_id: str) -> tuple[list[str], list[list[str]]]:
    """(headers, rows) of a gr.Dataframe as the browser shows them (the rows it has rendered)."""
    return page.eval_on_selector(f"#{elem_id}", """el => {
        const headers = Array.from(el.querySelectorAll('[role=columnheader]')).map(h => h.getAttribute('title') || h.innerText.trim());
        const rows = Array.from(el.querySelectorAll('[role=row]'))
            .map(r => Array.from(r.querySelectorAll('[role=gridcell]')).map(c => c.innerText.trim()))
            .filter(cells => cells.length > 0);
        return [headers, rows];
    }""")


def row_count(page, elem_id: str) -> int:
    """Rows a gr.Dataframe holds (it renders only those in view; aria-rowcount counts them all, plus the header)."""
    return int(page.get_attribute(f"#{elem_id} [aria-rowcount]", "aria-rowcount")) - 1


def axis_domain(page, elem_id: str, axis: str = "Y") -> tuple[float, float]:
    """(first, last) value of a rendered Vega chart's axis, from the axis's own description
    ("Y-axis titled 'Customers' for a linear scale with values from 0 to 3,500")."""
    label = page.get_attribute(f"#{elem_id} svg [aria-label^='{axis}-axis']", "aria-label")
    low, high = re.search(r"values from (-?[\d,.]+)%? to (-?[\d,.]+)%?", label).groups()
    return float(low.replace(",", "")), float(high.replace(",", ""))


def mark_fills(page, elem_id: str) -> set[str]:
    """The fill colours of a rendered Vega chart's marks (bars or points)."""
    return set(page.eval_on_selector(f"#{elem_id}", """el => Array.from(el.querySelectorAll(
        'svg g.role-mark path, svg g.role-mark rect')).map(p => (p.getAttribute('fill') || p.style.fill || '')
        .toLowerCase()).filter(f => f && f !== 'transparent' && f !== 'none')""")) or {
        s.lower() for s in page.eval_on_selector(f"#{elem_id}", """el => Array.from(el.querySelectorAll(
        'svg g.role-mark path')).map(p => p.getAttribute('stroke') || '')""") if s}


def money_value(text: str) -> float:
    return float(text.replace("£", "").replace(",", ""))


def chat_text(page) -> str:
    return page.inner_text("#vd-chat")


def shot(page, name: str, full_page: bool = True) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


def download(page, selector: str = "#vd-download") -> list[dict[str, str]]:
    with page.expect_download() as info:
        page.click(selector)
    path = info.value.path()
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def top(page, selector: str) -> float:
    """Where an element starts, in CSS pixels from the top of the page as first shown."""
    return page.eval_on_selector(selector, "el => el.getBoundingClientRect().top + window.scrollY")


def lift_geometry(page) -> dict:
    """The lift chart as drawn: each bar's data-share and on-screen top and bottom, the zero line's and the
    random-pick line's on-screen height, and the caption."""
    return page.eval_on_selector("#vd-lift-plot", """el => {
        const y = e => { const r = e.getBoundingClientRect(); return [r.top, r.bottom]; };
        return {bars: Array.from(el.querySelectorAll('rect.vd-lift-bar')).map(b => ({
                    share: +b.dataset.share, decile: +b.dataset.decile, label: b.nextElementSibling.textContent,
                    top: y(b)[0], bottom: y(b)[1]})),
                zero: y(el.querySelector("line[data-tick='0']"))[0],
                random: y(el.querySelector('line.vd-lift-random'))[0],
                lowest_tick: Math.min(...Array.from(el.querySelectorAll('line[data-tick]')).map(l => +l.dataset.tick)),
                caption: el.querySelector('figcaption').innerText};
    }""")


def watch_first_paint(page, marker: str) -> None:
    """From now on, note (in epoch ms, at the first animation frame after it) when the status line says
    "Answered", the chat shows `marker` and the customer table shows rows: the answer as a marketer sees it.
    Measured inside the page by a MutationObserver, so the figure has no polling or sleep in it."""
    page.evaluate("""marker => {
        window.vdPainted = null;
        const ready = () => {
            const status = (document.querySelector('#vd-status')?.innerText || '').trim();
            const table = document.querySelector('#vd-table');
            const cell = table && table.querySelector('[role=gridcell]');
            return /^Answered/.test(status) && !!cell && table.offsetParent !== null && !!cell.innerText.trim()
                && (document.querySelector('#vd-chat')?.innerText || '').includes(marker);
        };
        const watch = new MutationObserver(() => {
            if (window.vdPainted !== null || !ready()) return;
            window.vdPainted = 0;
            watch.disconnect();
            requestAnimationFrame(() => { window.vdPainted = performance.timeOrigin + performance.now(); });
        });
        watch.observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true});
    }""", marker)


def painted_at(page, timeout_ms: int) -> float:
    """The epoch ms `watch_first_paint` noted (waits for it)."""
    page.wait_for_function("() => window.vdPainted > 0", timeout=timeout_ms)
    return float(page.evaluate("() => window.vdPainted"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TimedService:
    """The real agent service, noting when (epoch ms) each answer event left it."""

    def __init__(self, service):
        self.service, self.answered_at = service, []

    def __getattr__(self, name):
        return getattr(self.service, name)

    def stream(self, message, session_id):
        for event in self.service.stream(message, session_id):
            if event_parts(event)[0] == "answer":
                self.answered_at.append(time.time() * 1000)
            yield event


def spread_geometry(page) -> list[dict]:
    """The tier spread chart as drawn: per tier its quantiles (data-p10 ... data-p90), axis top, box fill, the
    on-screen x of its zero tick, box edges and median line, and whether the box lies inside its axis."""
    return page.eval_on_selector("#vd-spread-plot", """el => Array.from(el.querySelectorAll('g.vd-spread-box'))
        .map(g => { const x = e => e.getBoundingClientRect(); const box = x(g.querySelector('rect.vd-box'));
            const axis = g.previousElementSibling; const ticks = Array.from(axis.querySelectorAll('line[data-tick]'));
            return {tier: g.dataset.tier, top: +g.dataset.axisTop,
                    fill: g.querySelector('rect.vd-box').getAttribute('fill'),
                    q: ['p10', 'p25', 'p50', 'p75', 'p90'].map(k => +g.dataset[k]), zero_tick: +ticks[0].dataset.tick,
                    zero: x(ticks[0]).left, end: x(ticks[ticks.length - 1]).left,
                    box_left: box.left, box_right: box.right,
                    median: x(g.querySelector('line.vd-median')).left, label: axis.getAttribute('aria-label'),
                    tick_labels_inside: Array.from(axis.querySelectorAll('text')).every(t =>
                        x(t).right <= x(el.querySelector('svg')).right + 0.5 && x(t).left >= x(el.querySelector('svg')).left - 0.5),
                    median_label: g.querySelector('text.vd-spread-label').textContent}; })""")
