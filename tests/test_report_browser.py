"""The HTML KPI report opened in a real browser (headless Chromium through Playwright), offline.

Every request but the page's own file:// is aborted and recorded: the page must need none. The
charts must have rendered (inline SVG with a size, their text in the DOM), a script in a store
string must not run, and the full-page screenshot must show something other than a blank page.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsflow.reports.html import render_html
from tests.helpers import chromium
from tests.unit.test_report_render import empty_report, hostile_report, sample_report


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


class Page:
    """A report opened offline: the page, the requests that were refused, the dialogs a script opened."""

    def __init__(self, browser: Any, html: str, path: Path) -> None:
        path.write_text(html, encoding="utf-8")
        self.blocked: list[str] = []
        self.dialogs: list[str] = []
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("dialog", self._dialog)
        self.page.goto(path.as_uri(), wait_until="load")

    def _route(self, route: Any) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def close(self) -> None:
        self.context.close()


def _pixel_variety(png: Path) -> tuple[int, float]:
    """How many distinct colours the screenshot has, and the share of pixels that are not white."""
    from PIL import Image

    with Image.open(png) as image:
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 24) or []
        total = rgb.width * rgb.height
        white = sum(n for n, c in colours if c == (255, 255, 255))
    return len(colours), 1 - white / total


def test_sample_report_renders_offline(browser: Any, tmp_path: Path) -> None:
    view = Page(browser, render_html(sample_report()), tmp_path / "report.html")
    try:
        page = view.page
        charts = page.eval_on_selector_all(
            "svg.chart", "els => els.map(e => { const b = e.getBoundingClientRect();"
                         " return {cls: e.getAttribute('class'), w: b.width, h: b.height}; })")
        assert {c["cls"].split()[-1] for c in charts} == {"chart-trends", "chart-durations", "chart-heatmap",
                                                          "chart-events"}
        assert all(c["w"] > 300 and c["h"] > 100 for c in charts), charts
        assert page.locator("svg").count() >= len(charts) + 5  # budget, backup and schedule bars too
        trends = page.inner_text("#trends")
        assert "success rate (%)" in trends and "runs per week" in trends and "97.6%" in trends
        assert "p50 42 s" in page.inner_text("#durations") and "p95 1 min 35 s" in page.inner_text("#durations")
        heat = page.inner_text("#heatmap")
        assert "rtr1" in heat and "failed runs" in heat
        summary = page.inner_text("#summary")
        assert "95.9%" in summary and "4 / 6" in summary
        assert "no data in this period" not in page.inner_text("body")
        text_nodes = page.eval_on_selector_all("svg.chart text", "els => els.length")
        assert text_nodes > 50  # svg.fonttype 'none': labels are text, not glyph paths

        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        colours, ink = _pixel_variety(shot)
        assert colours > 200 and ink > 0.05, (colours, ink)
        assert view.blocked == []
    finally:
        view.close()


def test_hostile_strings_stay_text(browser: Any, tmp_path: Path) -> None:
    view = Page(browser, render_html(hostile_report()), tmp_path / "hostile.html")
    try:
        assert view.dialogs == []
        assert view.page.locator("script").count() == 0
        assert "<script>alert(1)</script>" in view.page.inner_text("#durations")
        assert "<script>alert(1)</script>" in view.page.inner_text("#heatmap")  # in the chart's labels
        assert view.blocked == []  # <img src=x> in a host name would have been a request
    finally:
        view.close()


def test_empty_report_renders(browser: Any, tmp_path: Path) -> None:
    view = Page(browser, render_html(empty_report()), tmp_path / "empty.html")
    try:
        assert view.page.locator("svg.chart").count() == 0
        assert view.page.locator("p.nodata").count() >= 10
        shot = tmp_path / "empty.png"
        view.page.screenshot(path=str(shot), full_page=True)
        colours, ink = _pixel_variety(shot)
        assert colours > 20 and ink > 0.01
        assert view.blocked == []
    finally:
        view.close()
