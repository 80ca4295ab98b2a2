"""The viewer's HTML pages, on records made by a real small backfill and a rerun.

Server side (FastAPI's TestClient): every page renders with what a user looks for, unknown ids
are 404 pages, bad parameters 422 pages, stored texts are escaped, no secret shows, the token
lets pages and their images in. In a browser (Playwright driving the system's Chromium against
``ibkr-assets serve`` on a free port): overview -> execution -> a step's modal -> every chart
image loaded -> an order's decision trace -> the compare page of its rerun -> the portfolio,
with screenshots in ``ibkr_assets_tests/artifacts/`` (or ``$IBKR_ASSETS_TEST_ARTIFACTS``).
In CI (``CI=true``) a missing browser fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from ibkr_assets.settings import Settings
from ibkr_assets.storage.engines import dispose_engines, engine_for
from ibkr_assets.storage.tables import artifacts, workflow_lineage
from ibkr_assets.viewer import auth
from ibkr_assets.viewer.api import create_app
from ibkr_assets_tests.conftest import _stop_group, free_port
from ibkr_assets_tests.test_viewer_api import DAGSTER, SECRET, SYMBOLS, TRADED, Recorded, _record

pytestmark = pytest.mark.slow  # a browser and a server process

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]  # fmt: skip
PLANTED = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
ESCAPED = "&lt;script&gt;window.__pwned=1&lt;/script&gt;"
DAY, SYMBOL = TRADED.split("|")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rec(tmp_path_factory) -> Iterator[Recorded]:
    """2 symbols x 2 sessions and a rerun of the traded partition on SQLite; then an untrusted
    model answer and an error text with markup planted in the rows the pages show."""
    root = tmp_path_factory.mktemp("viewer-pages")
    recorded = _record(root, None)
    engine = engine_for(recorded.url)
    with engine.begin() as conn:
        conn.execute(
            sa.update(artifacts)
            .where(artifacts.c.type == "llm", artifacts.c.partition_key == TRADED)
            .values(response=f"The chart says BUY. {PLANTED}")
        )
        conn.execute(
            sa.update(workflow_lineage)
            .where(
                workflow_lineage.c.execution_id == recorded.rerun,
                workflow_lineage.c.step_name == "weekly_chart",
            )
            .values(status="error", error=f"ChartError: could not draw {PLANTED}")
        )
    dispose_engines()
    yield recorded
    recorded.client.app.state.viewer.close()


def page(rec: Recorded, path: str, status: int = 200) -> str:
    response = rec.client.get(path)
    assert response.status_code == status, (path, response.status_code, response.text[:800])
    assert response.headers["content-type"].startswith("text/html"), path
    assert "script-src 'self'" in response.headers["content-security-policy"]
    text = response.text
    assert SECRET not in text and PLANTED not in text and "<script>window" not in text, path
    return text


def _executions_in(html: str) -> set[str]:
    return set(re.findall(r"execution_id=([0-9a-f-]{36})", html))


# -- server-side pages ----------------------------------------------------------------------


def test_overview_lists_the_strategy_its_executions_equity_positions_and_failures(rec):
    html = page(rec, "/")
    assert 'id="strategy-momentum"' in html and "AAPL, MSFT, NVDA" in html
    assert {rec.first, rec.rerun} <= _executions_in(html)
    assert "open positions" in html and "<td>NVDA</td>" in html
    assert "Recent failures" in html and "weekly_chart" in html  # the planted error row
    assert "ChartError: could not draw " + ESCAPED in html
    assert "/portfolio/momentum" in html and "http://dagster.internal:3000/runs/" in html


def test_lineage_page_shows_every_step_of_an_execution(rec):
    html = page(rec, f"/lineage?execution_id={rec.first}")
    assert f'Execution <span class="mono">{rec.first}</span>' in html
    steps = 8 * len(SYMBOLS) * 2
    assert html.count('<article class="step') == steps == html.count('<dialog id="dlg-')
    assert html.count('class="details-btn"') == steps
    assert html.count('<img class="chart"') == 2 * 2 * len(SYMBOLS) * 2  # card and modal
    assert 'class="action buy">BUY</span>' in html and "price-card" in html
    assert "rsi_14" in html and "sma_20" in html  # the indicator table
    assert "Why was this order placed?" in html
    assert f"/decisions/momentum/{DAY}/{SYMBOL}?execution_id={rec.first}" in html
    assert f"http://dagster.internal:3000/runs/{rec.first}" in html
    assert "<b>Fills</b>" in html and "entry limit filled" in html  # the order's fill
    # selectors: the strategy and this execution are chosen
    assert '<option value="momentum" selected>' in html
    assert f'<option value="{rec.first}" selected>' in html


def test_lineage_page_defaults_to_the_latest_execution_and_filters_a_partition(rec):
    html = page(rec, "/lineage?strategy_id=momentum")
    assert '<option value="momentum" selected>' in html
    one = page(rec, f"/lineage?execution_id={rec.first}&partition_key={quote(TRADED)}")
    assert one.count('<article class="step') == 8


def test_a_failed_step_has_a_red_card_and_its_error_escaped(rec):
    html = page(rec, f"/lineage?execution_id={rec.rerun}")
    assert '<article class="step failed"' in html
    assert '<pre class="err">ChartError: could not draw ' + ESCAPED in html
    assert 'class="badge bad">error</span>' in html


def test_model_answers_are_shown_as_text(rec):
    html = page(rec, f"/decisions/momentum/{DAY}/{SYMBOL}?execution_id={rec.first}")
    assert "The chart says BUY. " + ESCAPED in html
    (llm_id,) = {
        a["id"]
        for a in rec.client.get(f"/api/artifacts?type=llm&execution_id={rec.first}").json()["items"]
        if a["partition_key"] == TRADED
    }
    detail = page(rec, f"/artifacts/{llm_id}")
    assert ESCAPED in detail and "&lt;img src=x onerror=" in detail
    assert "You are a disciplined swing-trading analyst" in detail  # the prompt


def test_artifacts_are_grouped_by_execution_and_filtered(rec):
    html = page(rec, "/artifacts")
    assert html.count('<details class="panel group"') == 3  # backfill, its portfolio, rerun
    assert {rec.first, rec.rerun} <= set(re.findall(r"execution_id=([0-9a-f-]{36})", html))
    charts = page(rec, "/artifacts?type=chart&symbol=nvda")
    types = set(re.findall(r'class="badge type-(\w+)"', charts))
    assert types == {"chart"} and "AAPL" not in charts and 'class="thumb"' in charts
    only = page(rec, f"/artifacts?execution_id={rec.rerun}")
    assert only.count('<details class="panel group"') == 1
    page(rec, "/artifacts?type=bogus", 422)
    page(rec, "/artifacts?cursor=../x", 422)


def test_artifact_detail_renders_by_type_with_its_workflow_context(rec):
    items = rec.client.get(f"/api/artifacts/lineage/{rec.first}").json()["items"]
    by_type = {}
    for a in items:
        if a["partition_key"] == TRADED:
            by_type.setdefault(a["type"], a)
    chart = page(rec, f"/artifacts/{by_type['chart']['id']}")
    assert f'<img class="chart" src="/api/artifacts/{by_type["chart"]["id"]}/content"' in chart
    assert "Workflow context" in chart and rec.first in chart and "momentum_workflow_job" in chart
    assert "http://mlflow.internal:5000/#/experiments/" in chart
    assert f"/decisions/momentum/{DAY}/{SYMBOL}" in chart
    signal = page(rec, f"/artifacts/{by_type['signal']['id']}")
    assert 'class="action buy">BUY</span>' in signal and "R:R" in signal
    order = page(rec, f"/artifacts/{by_type['order']['id']}")
    assert 'class="badge ok">placed</span>' in order and "take_profit" in order
    market = page(rec, f"/artifacts/{by_type['market_data']['id']}")
    assert "price-card" in market
    assert "no artifact 99999999" in page(rec, "/artifacts/99999999", 404)


def test_decision_trace_page_answers_why_the_order_was_placed(rec):
    latest = page(rec, f"/decisions/momentum/{DAY}/{SYMBOL}")  # the rerun reached the order last
    assert (
        f'<tr class="chosen"><td><a class="mono" href="/decisions/momentum/{DAY}/{SYMBOL}?execution_id={rec.rerun}"'
        in latest
    )
    html = page(rec, f"/decisions/momentum/{DAY}/{SYMBOL}?execution_id={rec.first}")
    for section in ("1 · Steps", "2 · Bars", "3 · Indicators", "4 · Charts", "5 · Analysis",
                    "6 · Signal and risk checks", "7 · Sizing", "8 · Order", "Broker orders",
                    "Fills", "9 · Effect on the portfolio"):  # fmt: skip
        assert section in html, section
    assert f"ibkr-assets:momentum:{SYMBOL}:{DAY}" in html
    assert "chart_analysis v" in html and "rules-v1" in html  # template and version, model
    assert 'class="badge ok">placed</span>' in html and "entry limit filled" in html
    assert "http://dagster.internal:3000/runs/" in html and "MLflow run" in html
    # its partition ran twice: a link compares the rerun with the shown execution
    assert 'class="compare-link"' in html and f"partition_key={quote(TRADED)}" in html
    assert "nothing recorded" in page(rec, "/decisions/momentum/2025-03-04/MSFT", 404)
    page(rec, "/decisions/momentum/2025-13-01/NVDA", 422)


def test_compare_page_shows_what_differs(rec):
    html = page(rec, f"/compare?a={rec.first}&b={rec.rerun}&partition_key={quote(TRADED)}")
    assert "steps compared" in html and TRADED in html
    assert "weekly_chart" in html and 'class="differs"' in html  # the planted error differs
    assert "ChartError: could not draw " + ESCAPED in html
    assert "Recent executions" in page(rec, "/compare")
    assert "same execution" in page(rec, f"/compare?a={rec.first}&b={rec.first}", 422)
    assert "unknown execution" in page(rec, f"/compare?a={rec.first}&b=nope", 404)


def test_portfolio_page_draws_equity_and_drawdown_and_lists_trades_and_statistics(rec):
    html = page(rec, "/portfolio/momentum")
    assert html.count('<svg class="plot"') == 2 and '<polyline class="line s-strategy"' in html
    assert "s-bh" in html and "s-dd" in html  # buy and hold, drawdown
    for label in ("total return", "CAGR", "Sharpe (annualised)", "Sortino (annualised)",
                  "max drawdown", "win rate", "turnover", "buy and hold"):  # fmt: skip
        assert label in html, label
    assert f"/decisions/momentum/{DAY}/{SYMBOL}" in html  # a fill links to its decision
    page(rec, "/portfolio/momentum?from=2025-03-04&to=2025-03-03", 422)
    assert "unknown strategy" in page(rec, "/portfolio/nope", 404)


def test_docs_work_offline(rec):
    html = page(rec, "/docs")
    assert "/api/decisions/{strategy_id}/{date}/{symbol}" in html and "/openapi.json" in html
    assert not re.search(r"<(script|link)[^>]+(https?:)?//", html)  # nothing from another host
    assert rec.client.get("/openapi.json").status_code == 200
    assert rec.client.get("/redoc").status_code == 404


def test_unknown_pages_are_html_and_the_api_keeps_json_errors(rec):
    assert "Not found" in page(rec, "/no/such/page", 404)
    api = rec.client.get("/api/artifacts/99999999")
    assert api.status_code == 404 and api.json() == {"detail": "no artifact 99999999"}
    assert rec.client.get("/api/artifacts?type=bogus").json()["detail"]
    assert "unknown execution" in page(rec, "/lineage?execution_id=nope", 404)
    static = rec.client.get("/static/viewer.js")
    assert static.status_code == 200 and "showModal" in static.text


def test_the_token_lets_pages_and_their_images_in(rec):
    token = "tok-pages-" + os.urandom(6).hex()
    settings = Settings.model_validate({**rec.settings.model_dump(), "viewer_token": token})
    client = TestClient(create_app(settings), base_url="http://viewer.example")
    try:
        assert client.get("/").status_code == 401
        assert client.get("/static/viewer.css").status_code == 401
        first = client.get(f"/lineage?execution_id={rec.first}&token={token}")
        assert first.status_code == 200 and token not in first.text
        cookie = first.cookies.get(auth.COOKIE)
        assert cookie and token not in cookie
        client.cookies.set(auth.COOKIE, cookie)
        img = re.search(r'<img class="chart" src="([^"]+)"', first.text).group(1)
        image = client.get(img)
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        assert client.get("/portfolio/momentum").status_code == 200
        assert client.get("/static/viewer.css").status_code == 200
    finally:
        client.app.state.viewer.close()


# -- in a real browser ----------------------------------------------------------------------


def _artifacts_dir() -> Path:
    folder = Path(
        os.environ.get("IBKR_ASSETS_TEST_ARTIFACTS", REPO / "ibkr_assets_tests" / "artifacts")
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _need_browser():
    """Playwright's sync API, or a skip (a failure in CI) saying what is missing."""
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright, missing = None, "the playwright package (pip install -e '.[dev]')"
    if missing is None and not os.access(CHROMIUM, os.X_OK):
        missing = f"{CHROMIUM} (apt-get install chromium)"
    if missing:
        message = f"browser tests need {missing}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return sync_playwright


@pytest.fixture(scope="module")
def server(rec) -> Iterator[str]:
    """``ibkr-assets serve`` on a free port over the fixture's records."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IBKR_ASSETS_", "MLFLOW_"))}
    env |= {"IBKR_ASSETS_HOME": str(rec.settings.home_path), "IBKR_ASSETS_DAGSTER_URL": DAGSTER}
    script = Path(sys.executable).with_name("ibkr-assets")
    command = [str(script)] if script.exists() else [sys.executable, "-c",
               "import sys; from ibkr_assets.cli import run; sys.argv[0] = 'ibkr-assets'; run()"]  # fmt: skip
    log = tempfile.TemporaryFile()
    process = subprocess.Popen([*command, "serve", "--port", str(port)], env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/health", timeout=2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail("ibkr-assets serve did not start:\n" + log.read().decode()[-2000:])
                time.sleep(0.2)
        yield base
    finally:
        _stop_group(process)
        log.close()


def _images_loaded(page, selector: str) -> list[dict]:
    page.wait_for_function(
        "sel => Array.from(document.querySelectorAll(sel)).every(i => i.complete)", arg=selector
    )
    return page.eval_on_selector_all(
        selector, "els => els.map(i => ({src: i.getAttribute('src'), w: i.naturalWidth}))"
    )


def test_in_a_browser_from_the_overview_to_a_decision_its_rerun_and_the_portfolio(rec, server):
    sync_playwright = _need_browser()
    shots = _artifacts_dir()
    profile = tempfile.mkdtemp(prefix="viewer-chromium-")
    errors: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1400, "height": 1000},
            )  # fmt: skip
            tab = browser.new_page()
            tab.on("pageerror", lambda exc: errors.append(str(exc)))
            tab.on("console", lambda m: m.type == "error" and errors.append(m.text))
            tab.goto(server + "/")
            tab.screenshot(path=str(shots / "01-overview.png"), full_page=True)

            # overview -> the backfill's execution
            tab.locator(f"a.execution-link[href*='{rec.first}']").first.click()
            tab.wait_for_load_state("load")
            assert "/lineage" in tab.url and rec.first in tab.url
            assert tab.locator("article.step").count() == 8 * len(SYMBOLS) * 2
            cards = _images_loaded(tab, "article.step > .rich img.chart")
            assert len(cards) == 2 * len(SYMBOLS) * 2
            assert all(i["w"] > 0 for i in cards), cards
            tab.screenshot(path=str(shots / "02-lineage.png"), full_page=True)

            # a chart step's modal: its JSON and its full-size image
            step = tab.locator("article.step[data-step='daily_chart']").first
            step.locator(".details-btn").click()
            dialog = step.locator("dialog")
            assert dialog.evaluate("d => d.open")
            dialog_id = dialog.get_attribute("id")
            modal_images = _images_loaded(tab, f"#{dialog_id} img.chart")
            assert modal_images and all(i["w"] > 0 for i in modal_images), modal_images
            dialog.locator("summary", has_text="input_data").click()
            assert dialog.locator("details.json[open] pre").first.is_visible()
            tab.screenshot(path=str(shots / "03-step-modal.png"))
            dialog.locator("[data-close]").click()
            assert not dialog.evaluate("d => d.open")

            # an order -> its decision trace
            tab.locator(f"a.order-trace[href*='/decisions/momentum/{DAY}/{SYMBOL}']").click()
            tab.wait_for_load_state("load")
            assert f"/decisions/momentum/{DAY}/{SYMBOL}" in tab.url
            assert tab.locator(".verdict .action.buy").count() == 1
            assert tab.locator("table.fills tr").count() >= 2
            charts = _images_loaded(tab, "img.chart")
            assert len(charts) == 2 and all(i["w"] > 0 for i in charts), charts
            assert "The chart says BUY. <script>" in tab.locator("pre.response").inner_text()
            tab.screenshot(path=str(shots / "04-decision-trace.png"), full_page=True)

            # its partition's rerun, compared
            tab.locator("a.compare-link").first.click()
            tab.wait_for_load_state("load")
            assert "/compare" in tab.url and rec.rerun in tab.url
            assert tab.locator("tr.differs").count() >= 1
            tab.screenshot(path=str(shots / "05-compare.png"), full_page=True)

            # the portfolio
            tab.goto(server + "/portfolio/momentum")
            assert tab.locator("svg.plot").count() == 2
            assert tab.locator("svg.plot polyline.s-strategy").count() == 1
            tab.screenshot(path=str(shots / "06-portfolio.png"), full_page=True)

            tab.goto(server + "/artifacts")
            thumbs = _images_loaded(tab, "img.thumb")
            assert thumbs and all(i["w"] > 0 for i in thumbs)
            tab.screenshot(path=str(shots / "07-artifacts.png"), full_page=True)

            assert tab.evaluate("() => window.__pwned") is None  # the planted markup never ran
            browser.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert not [e for e in errors if "favicon" not in e], errors


def test_in_a_browser_the_login_form_lets_the_token_in(rec):
    """With a token, a page opened without it shows the login form; the token typed in sets the
    HttpOnly cookie (invisible to scripts) and brings the browser back to that page."""
    import threading

    import uvicorn

    sync_playwright = _need_browser()
    token = "tok-browser-" + os.urandom(6).hex()
    settings = Settings.model_validate({**rec.settings.model_dump(), "viewer_token": token})
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    profile = tempfile.mkdtemp(prefix="viewer-chromium-")
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        with sync_playwright() as p:
            browser = p.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            tab = browser.new_page()
            tab.goto(base + "/portfolio/momentum")
            assert tab.locator("form[action='/login'] input[name=token]").count() == 1
            tab.fill("input[name=token]", "wrong")
            tab.click("button[type=submit]")
            tab.wait_for_load_state("load")
            assert "Wrong token" in tab.content()
            tab.fill("input[name=token]", token)
            tab.screenshot(path=str(_artifacts_dir() / "08-login.png"))
            tab.click("button[type=submit]")
            tab.wait_for_url(base + "/portfolio/momentum")
            assert tab.locator("svg.plot").count() == 2
            assert tab.evaluate("() => document.cookie") == ""  # HttpOnly
            browser.close()
    finally:
        server.should_exit = True
        thread.join(10)
        app.state.viewer.close()
        shutil.rmtree(profile, ignore_errors=True)
