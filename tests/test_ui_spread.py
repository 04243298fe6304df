"""The tier spread chart's SVG drawn in real chromium with the widest labels a build gives (a Platinum
axis to £100,000): every tick label inside the chart, the median in whole pounds."""

from __future__ import annotations

import pytest

from agent.display_spread import spread_chart
from _ui_fixtures import CHROMIUM, CHROMIUM_ARGS

GROUPS = [  # quantiles of the full Online Retail build's tiers (segment_summary), rounded
    {"group": "Platinum", "predicted_value_quantiles": {"p10": 18500, "p25": 24000, "p50": 39679, "p75": 64000, "p90": 93000}},
    {"group": "Bronze", "predicted_value_quantiles": {"p10": 120, "p25": 260, "p50": 455.99, "p75": 760, "p90": 1180}},
]


def test_the_widest_tick_labels_fit_and_the_median_reads_in_pounds():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (scripts/setup_browser.sh installs it)")
    from playwright.sync_api import sync_playwright

    html = spread_chart(GROUPS, "tier")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 560, "height": 400})
        page.set_content(f"<div style='width:480px'>{html}</div>")
        svg = page.locator("svg").bounding_box()
        labels = page.eval_on_selector_all("g.vd-axis text", "ts => ts.map(t => [t.textContent, "
                                           "t.getBoundingClientRect().left, t.getBoundingClientRect().right])")
        medians = page.eval_on_selector_all("text.vd-spread-label", "ts => ts.map(t => t.textContent)")
        browser.close()
    assert "£100,000" in [text for text, _, _ in labels]
    for text, left, right in labels:
        assert svg["x"] - 0.5 <= left and right <= svg["x"] + svg["width"] + 0.5, text
    assert medians == ["median £39,679", "median £456"]
