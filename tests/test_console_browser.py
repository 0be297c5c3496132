"""The web console in a real browser against the real service: `opsflow serve` in a subprocess on a free port,
two users made with `opsflow user add`, a runbook of `local` steps with an approval step, Chromium by Playwright.

alice (operator) logs in, starts a run from the start form and watches its grid fill from the stream, sees the
approval waiting and may not approve it (four-eyes: the button is disabled with the reason; a forced POST gets
403); bob (approver) logs in in a second browser context, reaches Approve by keyboard on /approvals and approves;
alice's page shows the run finish without a reload. She starts a run with a parameter that fails one host, and
reruns the failed host with the button (a new run limited to it); a bad parameter is refused with the API's
message on the form. Then: filters, a cell's output, a host, the schedule, service levels, events, and a
phone-sized screen. Screenshots of each page go to tmp_path/screenshots (and $OPSFLOW_ARTIFACTS).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT, chromium, wait_for

PASSWORDS = {"alice": "alice-correct-horse", "bob": "bob-battery-staple"}
RUNBOOK = """name: rolling-restart
description: Restart the app host by host, after an approval.
targets: all
steps:
  - name: check health
    local: [sh, -c, 'sleep 2; echo "healthy: {{ inventory_hostname }}"']
  - name: drain
    local: [sleep, '1']
  - name: go ahead?
    approve: {message: 'Restart the app on all three hosts?', timeout: 300}
  - name: restart
    local: [sh, -c, 'echo restarted {{ inventory_hostname }}; echo "warning: cache cold" >&2']
  - name: verify
    local: [echo, ok]
"""
CANARY = """name: canary
description: Probe the app on every host.
params:
  fail_on: {default: none, description: a host whose probe fails}
targets: all
steps:
  - name: probe
    local: [sh, -c, 'test "{{ inventory_hostname }}" != "{{ fail_on }}"']
  - name: report
    local: [echo, 'probed {{ inventory_hostname }}']
"""
CALENDARS = """calendars:
  - name: nights
    mode: allowed
    time_intervals:
      - times: [{start_time: '01:00', end_time: '05:00'}]
        location: UTC
  - name: freeze
    mode: blackout
    location: UTC
    dates: [{from: '%s', to: '%s'}]
"""
SCHEDULE = """schedules:
  - name: nightly-restart
    runbook: rolling-restart
    cron: '30 2 * * *'
    timezone: UTC
    calendars: [nights, freeze]
"""


class Service:
    """`opsflow serve` on 127.0.0.1:0 with a runbook, an inventory of three hosts, a schedule, and two users."""

    def __init__(self, home: Path) -> None:
        self.home = home
        (home / "runbooks").mkdir(parents=True)
        (home / "runbooks" / "rolling-restart.yaml").write_text(RUNBOOK)
        (home / "runbooks" / "canary.yaml").write_text(CANARY)
        (home / "schedules").mkdir()
        today = datetime.now(UTC).date()
        (home / "schedules" / "calendars.yaml").write_text(
            CALENDARS % (today + timedelta(days=3), today + timedelta(days=4)))
        (home / "schedules" / "operations.yaml").write_text(SCHEDULE)
        (home / "hosts.yml").write_text("all:\n  hosts:\n" + "".join(
            f"    {h}: {{ansible_host: 127.0.0.1}}\n" for h in ("web1", "web2", "web3")))
        self.db = home / "opsflow.db"
        for user, role in (("alice", "operator"), ("bob", "approver")):
            done = subprocess.run([sys.executable, "-m", "opsflow", "user", "add", user, "--role", role,
                                   "--password-stdin", "--db", str(self.db)], input=PASSWORDS[user] + "\n",
                                  capture_output=True, text=True, env=self.env(), cwd=ROOT, timeout=120)
            assert done.returncode == 0, done.stderr
        self._past_fire()
        token = home / "hook-token"  # the hooks' token: the service refuses to start without one
        token.write_text("hook-token-of-the-console-test\n")
        token.chmod(0o600)
        self.log = home / "serve.log"
        argv = [sys.executable, "-m", "opsflow", "serve", "--listen", "127.0.0.1:0", "--runbooks",
                str(home / "runbooks"), "-i", str(home / "hosts.yml"), "--db", str(self.db), "--schedules",
                str(home / "schedules"), "--token-file", str(token), "--drain-timeout", "5", "--grace", "1"]
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=self.env(), cwd=ROOT)
        line = wait_for(self._ready, 60, "opsflow serve to listen")
        self.url = line.split("listening on ")[1].split(" ")[0].rstrip("/")

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSFLOW_")}
        env.update(OPSFLOW_HOME=str(self.home), OPSFLOW_PROJECT="none", PYTHONPATH=str(ROOT))
        return env

    def _past_fire(self) -> None:
        """Yesterday's slot, skipped in a blackout, as the scheduler records it: the schedule marks it."""
        from opsflow.store import open_store

        store = open_store(str(self.db), reap=False)
        slot = datetime.combine(datetime.now(UTC).date() - timedelta(days=1), datetime.min.time(), UTC)
        store.claim_fire("nightly-restart", slot.timestamp() + 2.5 * 3600, "skipped", "blackout: freeze")
        store.close()

    def _ready(self) -> str | None:
        text = self.log.read_text()
        if self.proc.poll() is not None:
            raise AssertionError(f"serve exited with {self.proc.returncode}:\n{text}")
        return next((ln for ln in text.splitlines() if "listening on http" in ln), None)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    s = Service(tmp_path_factory.mktemp("console"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


class Shots:
    """Screenshots under tmp_path/screenshots, copied to $OPSFLOW_ARTIFACTS/console when it is set."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.taken: list[Path] = []

    def __call__(self, page: Any, name: str, full_page: bool = True) -> Path:
        path = self.directory / f"{len(self.taken) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        self.taken.append(path)
        artifacts = os.environ.get("OPSFLOW_ARTIFACTS")
        if artifacts:
            target = Path(artifacts) / "console"
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / path.name)
        return path


def login(page: Any, url: str, user: str, password: str | None = None) -> None:
    page.goto(url + "/runs")
    assert "/login" in page.url  # no session: every page sends to the login page
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(password or PASSWORDS[user])
    page.get_by_role("button", name="Log in").click()


def api_post(page: Any, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST from the page as its JavaScript does: the session cookie and the page's CSRF token."""
    result: dict[str, Any] = page.evaluate(
        """async ([path, body]) => {
             const csrf = document.querySelector('meta[name="csrf-token"]').content;
             const r = await fetch(path, {method: 'POST', headers: {'Content-Type': 'application/json',
                                          'X-CSRF-Token': csrf}, body: JSON.stringify(body)});
             return {status: r.status, body: await r.json()};
           }""", [path, body])
    return result


def test_the_console_end_to_end(service: Service, browser: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    shots = Shots(tmp_path / "screenshots")
    url = service.url
    alice_ctx = browser.new_context(viewport={"width": 1360, "height": 900})
    alice = alice_ctx.new_page()

    # a failed login says so, without telling which of user and password was wrong
    login(alice, url, "alice", "not-the-password")
    expect(alice.get_by_role("alert")).to_contain_text("the user name or the password is wrong")
    shots(alice, "login-failed")
    alice.get_by_label("Password").fill(PASSWORDS["alice"])
    alice.get_by_role("button", name="Log in").click()
    expect(alice).to_have_url(re.compile(r"/runs$"))
    expect(alice.get_by_role("heading", name="Runs")).to_be_visible()

    # alice starts a run from the start form and watches it live
    alice.get_by_role("link", name="Start a run").click()
    expect(alice).to_have_url(re.compile(r"/runs/new$"))
    alice.get_by_label("Runbook").select_option("rolling-restart")
    expect(alice.locator("#start-about")).to_contain_text("Restart the app host by host")
    shots(alice, "start-a-run")
    alice.get_by_role("button", name="Start run").click()
    expect(alice).to_have_url(re.compile(r"/runs/\d{8}-\d{6}-[0-9a-f]{6}$"))
    run_id = alice.url.rsplit("/", 1)[1]
    alice.evaluate("window.__same_page = true")  # gone if anything below reloads the page
    grid = alice.locator("table.grid")
    expect(grid.locator("tbody tr")).to_have_count(3)
    expect(alice.locator("section.approval")).to_have_count(0)  # not yet: the first step takes 2 s
    shots(alice, "run-starting")
    expect(grid.locator('td.cell[data-step="0"][data-host="web3"]')).to_contain_text("changed", timeout=20000)
    approval = alice.locator("section.approval")
    expect(approval).to_contain_text("Restart the app on all three hosts?", timeout=20000)
    expect(grid.locator('td.cell[data-step="1"] .dur')).to_have_count(3)
    expect(grid.locator('td.cell[data-step="4"]').first).to_contain_text("pending")
    assert alice.locator("#live-note").is_visible()

    # four-eyes: alice started it; the button is disabled with the reason, and the API refuses a forced POST
    approve = alice.locator("#approve")
    expect(approve).to_be_disabled()
    expect(alice.locator("#why-decide")).to_contain_text("cannot approve it too (four-eyes)")
    shots(alice, "run-waiting-for-approval")
    forced = api_post(alice, f"/api/v1/runs/{run_id}/approve", {"comment": "my own"})
    assert forced["status"] == 403, forced
    assert forced["body"]["error"] in ("forbidden", "four_eyes")
    no_csrf = alice.evaluate("""async (p) => (await fetch(p, {method: 'POST', headers: {'Content-Type':
                               'application/json'}, body: '{}'})).status""", f"/api/v1/runs/{run_id}/cancel")
    assert no_csrf == 403

    # bob, in a browser of his own, finds it on /approvals and approves it from the keyboard
    bob_ctx = browser.new_context(viewport={"width": 1360, "height": 900})
    bob = bob_ctx.new_page()
    login(bob, url, "bob")
    expect(bob).to_have_url(re.compile(r"/runs$"))
    bob.goto(f"{url}/approvals")
    card = bob.locator(f"#approval-{run_id}")
    expect(card).to_contain_text("started by alice")
    shots(bob, "approvals-for-bob")
    target = f"Approve rolling-restart run {run_id}"
    for _ in range(40):
        bob.keyboard.press("Tab")
        if bob.evaluate("document.activeElement && document.activeElement.getAttribute('aria-label')") == target:
            break
    else:
        raise AssertionError("Tab never reached the Approve button")
    focus = bob.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert focus != "none", "the focused button shows no focus ring"
    shots(bob, "approve-focused-by-keyboard", full_page=False)
    bob.get_by_label(f"Comment on run {run_id}").fill("checked with the app owner")
    bob.get_by_label(target).focus()
    bob.keyboard.press("Enter")
    expect(card).to_have_count(0)
    expect(bob.get_by_role("status")).to_contain_text("done")

    # alice's page follows the run to its end without a reload
    expect(alice.locator(".runhead .st").first).to_contain_text("succeeded", timeout=30000)
    expect(grid.locator('td.cell[data-step="4"]')).to_contain_text(["changed"] * 3)
    assert alice.evaluate("window.__same_page === true"), "the page was reloaded"

    expect(alice.locator("#approve")).to_have_count(0)
    approvals_table = alice.locator("section[aria-labelledby=approvals-h]")
    expect(approvals_table).to_contain_text("bob")
    expect(approvals_table).to_contain_text("checked with the app owner")

    # a run with a failed host, from the form with a parameter; then the failed host alone, rerun by a button
    alice.goto(f"{url}/runs/new")
    alice.get_by_label("Runbook").select_option("canary")
    expect(alice.locator("#start-declared")).to_contain_text("fail_on=none")
    alice.get_by_label("Parameters").fill("fail_on=web2")
    alice.get_by_role("button", name="Start run").click()
    expect(alice.locator("table.grid tbody tr")).to_have_count(3)
    canary = alice.url.rsplit("/", 1)[1]
    expect(alice.locator(".runhead .st").first).to_contain_text("partial", timeout=30000)
    canary_grid = alice.locator("table.grid")
    expect(canary_grid.locator('td.cell[data-step="0"][data-host="web2"]')).to_contain_text("failed")
    expect(canary_grid.locator('td.cell[data-step="1"][data-host="web1"]')).to_contain_text("changed")
    rerun = alice.locator("#rerun")
    expect(rerun).to_have_text("Rerun failed hosts (web2)")
    shots(alice, "run-partial-rerun-failed-hosts")
    rerun.click()
    expect(alice).not_to_have_url(re.compile(canary + "$"))
    expect(alice.locator("table.grid tbody tr")).to_have_count(1)
    expect(alice.locator("table.grid tbody tr th")).to_contain_text("web2")
    expect(alice.locator(".runhead .st").first).to_contain_text("failed", timeout=30000)
    rerun_id = alice.url.rsplit("/", 1)[1]
    detail = alice.evaluate("async (p) => (await fetch(p)).json()", f"/api/v1/runs/{rerun_id}")["run"]
    assert detail["hosts"] == {"web2": "failed"} and detail["params"] == {"fail_on": "web2"}
    assert (detail["started_by"], detail["trigger"], detail["check_mode"]) == ("alice", "api", False)
    bad = api_post(alice, "/api/v1/runs", {"runbook": "canary", "params": {"nope": "1"}})
    assert bad["status"] == 400 and "unknown param(s) nope" in bad["body"]["message"]
    alice.goto(f"{url}/runs/new")
    alice.get_by_label("Runbook").select_option("canary")
    alice.get_by_label("Parameters").fill("nope=1")
    alice.get_by_role("button", name="Start run").click()
    expect(alice.locator("#start-error")).to_contain_text("Not started: ")
    expect(alice.locator("#start-error")).to_contain_text("unknown param(s) nope")
    expect(alice).to_have_url(re.compile(r"/runs/new$"))
    alice.goto(f"{url}/runs/{run_id}")

    # a cell's output: stdout and stderr
    grid.locator('td.cell[data-step="3"][data-host="web2"] a').click()
    output = alice.locator("#output-body")
    expect(output).to_contain_text("restarted web2")
    expect(output).to_contain_text("warning: cache cold")
    shots(alice, "run-succeeded-with-output")

    # filters on the runs list
    alice.goto(f"{url}/runs")
    alice.get_by_label("Status").select_option("succeeded")
    alice.get_by_label("Runbook").fill("rolling-restart")
    alice.get_by_role("button", name="Filter").click()
    expect(alice).to_have_url(re.compile(r"status=succeeded"))
    expect(alice.locator("table.list tbody tr")).to_have_count(1)
    expect(alice.locator("table.list")).to_contain_text(run_id)
    shots(alice, "runs-filtered")
    alice.get_by_label("Status").select_option("failed")
    alice.get_by_role("button", name="Filter").click()
    expect(alice.get_by_text("No run matches these filters")).to_be_visible()

    # a host, the schedule, service levels, events
    alice.goto(f"{url}/hosts/web1")
    expect(alice.locator("table.list")).to_contain_text("rolling-restart")
    shots(alice, "host")
    alice.goto(f"{url}/schedule")
    days = alice.locator("ol.days")
    expect(days).to_contain_text("nightly-restart")
    expect(days).to_contain_text("Blackout")
    expect(days).to_contain_text("skipped")
    expect(days).to_contain_text("Window")
    shots(alice, "schedule")
    alice.goto(f"{url}/slo")
    report = alice.frame_locator("iframe#report")
    expect(report.locator("h1")).to_contain_text("Operations KPI report", timeout=60000)
    alice.get_by_label("Period", exact=True).select_option("30d")
    alice.get_by_role("button", name="Show").click()
    expect(alice).to_have_url(re.compile(r"period=30d"))
    expect(report.locator("#summary")).to_contain_text("Runs", timeout=60000)
    alice.wait_for_timeout(300)
    shots(alice, "service-levels")
    alice.goto(f"{url}/events")
    expect(alice.get_by_role("heading", name="Events")).to_be_visible()
    shots(alice, "events")

    # a phone-sized screen: the nav collapses behind a menu button, the grid scrolls sideways, the page does not
    phone_ctx = browser.new_context(viewport={"width": 375, "height": 812}, device_scale_factor=2, is_mobile=True,
                                    has_touch=True)
    phone = phone_ctx.new_page()
    login(phone, url, "alice")
    expect(phone).to_have_url(re.compile(r"/runs$"))
    phone.goto(f"{url}/runs/{run_id}")
    expect(phone.locator("#nav")).to_be_hidden()
    menu = phone.get_by_role("button", name="Menu")
    expect(menu).to_be_visible()
    wrap = phone.locator(".grid-wrap")
    assert wrap.evaluate("e => e.scrollWidth > e.clientWidth"), "the grid should scroll sideways"
    wide = phone.evaluate("""() => [...document.querySelectorAll('body *')].filter(e => !e.closest('.scroll')
                               && e.getBoundingClientRect().right > 376).map(e => e.tagName + '.' + e.className)""")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 376, f"the page scrolls sideways: {wide}"
    shots(phone, "phone-run")
    menu.click()
    expect(phone.locator("#nav")).to_be_visible()
    expect(menu).to_have_attribute("aria-expanded", "true")
    shots(phone, "phone-menu", full_page=False)

    # logging out ends the session
    alice.get_by_role("button", name="Log out").click()
    expect(alice).to_have_url(re.compile(r"/login"))
    alice.goto(f"{url}/approvals")
    assert "/login" in alice.url

    for ctx in (alice_ctx, bob_ctx, phone_ctx):
        ctx.close()
    assert len(shots.taken) >= 12 and all(p.stat().st_size > 5000 for p in shots.taken)
