"""Notifications without a network: routing, texts, and the secrets a target URL holds."""

from __future__ import annotations

import pytest

from opsflow.errors import OpsflowError
from opsflow.notify import KINDS, Notification, NotifyError, Router, masked_url, render, url_secrets
from opsflow.redact import MASK, Redactor


def test_kinds_are_the_documented_ones() -> None:
    assert set(KINDS) == {"rescheduled", "skipped", "missed", "run_failed", "approval_waiting", "breaker_opened",
                          "slo_breached", "report"}
    with pytest.raises(NotifyError, match="unknown notification kind 'run_fail'.*run_failed"):
        Notification("run_fail", "x")
    assert issubclass(NotifyError, OpsflowError)


def test_render_is_plain_redacted_text_with_a_one_line_title() -> None:
    note = Notification("approval_waiting", "approve\nrestart of [b]srv1[/b] \x1b[2J hunter22",
                        body="{{ 7*7 }} <script>x</script>\r\nwith hunter22\x07", run_id="r1",
                        reason="needs approval", links={"approve": "http://ops/approve/r1?k=hunter22"},
                        attachments=["/tmp/report.html"])
    title, body = render(note, Redactor(["hunter22"]))
    assert title == f"approve restart of [b]srv1[/b] \\x1b[2J {MASK}"
    assert body.startswith(f"{{{{ 7*7 }}}} <script>x</script>\nwith {MASK}\\x07")
    assert "kind: approval_waiting\nrun: r1\nreason: needs approval" in body
    assert f"approve: http://ops/approve/r1?k={MASK}" in body and "attached: report.html" in body
    assert "hunter22" not in title + body


@pytest.mark.parametrize(("url", "secrets", "shown"), [
    ("mailtos://ops:Pa%2Fss99@smtp.example.org?to=a@example.org&mode=ssl", {"Pa/ss99"}, "mailtos://ops:****@smtp"),
    ("slack://TokenA123/TokenB456/TokenC789/#ops", {"TokenA123", "TokenB456", "TokenC789"}, "slack://T...3/"),
    ("json://hooks.example.org/ops?-token=tok12345&+X-Api-Key=key67890", {"tok12345", "key67890"}, "json://"),
    ("bogus://u:pw123@host/path-secret", {"pw123", "path-secret"}, f"bogus://u:****@host/{MASK}"),
])
def test_url_secrets_and_masked_url(url: str, secrets: set[str], shown: str) -> None:
    found = url_secrets(url)
    assert secrets <= found
    assert "ops" not in found and "smtp.example.org" not in found and "ssl" not in found
    masked = masked_url(url)
    assert masked.startswith(shown)
    redacted = Redactor(found).text(masked)
    assert not any(s in redacted for s in secrets)


def test_router_expands_contacts_in_order_each_url_once() -> None:
    router = Router.from_config({
        "contacts": {"ops": ["mailto://a@example.org", "json://h/ops"], "dba": "json://h/dba"},
        "routes": [{"to": "ops", "on": ["run_failed", "breaker_opened"]},
                   {"to": "dba", "on": "run_failed"},
                   {"to": "json://h/ops"},
                   {"to": "json://h/slo", "on": ["slo_breached"]}]})
    assert router.targets("run_failed") == ["mailto://a@example.org", "json://h/ops", "json://h/dba"]
    assert router.targets("report") == ["json://h/ops"]
    assert router.targets("slo_breached") == ["json://h/ops", "json://h/slo"]
    assert router.unusable() == []


@pytest.mark.parametrize(("config", "error"), [
    ({"routes": [{"to": "oncall"}]}, "'oncall' is neither a URL nor a contact"),
    ({"routes": [{"to": "json://h", "on": ["run_fail"]}]}, "unknown kind.*run_fail"),
    ({"routes": [{"on": ["report"]}]}, "route 1 needs 'to'"),
    ({"routes": [{"to": "json://h", "when": "x"}]}, "unknown key.*when"),
    ({"contacts": {"ops": ["not-a-url"]}, "routes": []}, "contact 'ops' must be a list of notification URLs"),
    ({"route": []}, "unknown key.*route"),
])
def test_router_refuses_bad_config(config: dict, error: str) -> None:
    with pytest.raises(NotifyError, match=error):
        Router.from_config(config)


def test_router_lists_urls_no_channel_takes_masked() -> None:
    router = Router.from_config([{"to": "nosuch://u:secret99@h/x"}, {"to": "json://h/x"}])
    assert router.unusable() == [f"nosuch://u:****@h/{MASK}"]
