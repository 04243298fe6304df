"""Fixtures of the real-browser UI tests (tests/test_ui.py): a fast build of the real Online Retail data,
the offline agent service, the app on a free port and Debian's chromium through Playwright."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest

import ui
from _ui_page import TimedService, free_port
from agent.settings import AgentSettings
from valuedesk import bootstrap

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
# Keep the browser off the network: no update checks, sync, QUIC probes or first-run pings.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


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


@pytest.fixture(scope="module")
def service(built_settings) -> TimedService:
    from agent.service import AgentService

    return TimedService(AgentService(built_settings))


@pytest.fixture(scope="module")
def app_url(built_settings, service):
    demo = ui.build_app(service=service, settings=built_settings)
    port = free_port()
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


def _app_page(browser, app_url, **context_options):
    """A fresh browser session (its own cookies, so its own chat session id) with the app loaded."""
    context = browser.new_context(**context_options)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(app_url)
    page.wait_for_selector("#vd-backend :text('offline planner')")
    yield page
    context.close()


@pytest.fixture
def page(browser, app_url):
    yield from _app_page(browser, app_url, viewport={"width": 1440, "height": 900}, accept_downloads=True)


@pytest.fixture
def phone(browser, app_url):
    """The app on a 390x844 phone screen."""
    yield from _app_page(browser, app_url, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                         device_scale_factor=2)
