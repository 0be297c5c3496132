"""Backups and restores against the lab: device configs, server archives, corruption, retention, drills."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT, Cli, by_step, write_runbook

pytestmark = pytest.mark.lab


def running(lab: Any, rtr: str) -> list[str]:
    text = lab.exec(rtr, ["vtysh", "-c", "show running-config"]).stdout
    return [line for line in text.splitlines() if line.strip() and not line.startswith(("Building", "Current"))]


def test_router_backup_diff_restore_roundtrip(cli: Cli, lab: Any) -> None:
    backup = str(ROOT / "runbooks/nightly-config-backup.yaml")
    first = cli.run_json(backup)
    assert {r["host"]: r["status"] for r in first["results"]} == {"rtr1": "changed", "rtr2": "changed"}
    saved = running(lab, "rtr1")
    again = cli.run_json(backup)  # nothing changed: no new version
    assert {r["status"] for r in again["results"]} == {"ok"}
    assert len(json.loads(cli.run("backup", "list", "rtr1", "--json", check_rc=0).stdout)) == 1
    # change the router: a static route and a setting inside the interface block
    lab.exec("rtr1", ["vtysh", "-c", "conf t", "-c", "ip route 192.0.2.128/25 Null0", "-c", "interface eth0",
                      "-c", "ip ospf cost 77"])
    changed = cli.run_json(backup, "--limit", "rtr1")
    assert by_step(changed)[("backup running config", "rtr1")]["data"]["new_version"] is True
    diff = cli.run("backup", "diff", "rtr1", check_rc=0).stdout
    assert "+ip route 192.0.2.128/25 Null0" in diff and "+ ip ospf cost 77" in diff
    assert "ip ospf cost 77" in cli.run("backup", "show", "rtr1", check_rc=0).stdout
    assert "ip ospf cost 77" not in cli.run("backup", "show", "rtr1", "~1", check_rc=0).stdout
    # check mode shows what a restore would do and changes nothing
    dry = cli.run_json(str(ROOT / "runbooks/router-restore.yaml"), "--limit", "rtr1", "-e", "version=~1", "--check")
    delta = by_step(dry)[("restore config", "rtr1")]["data"]["delta"]
    assert "no ip route 192.0.2.128/25 Null0" in delta and "no ip ospf cost 77" in delta
    assert "ip ospf cost 77" in "\n".join(running(lab, "rtr1"))
    # restore the version before the change
    run = cli.run_json(str(ROOT / "runbooks/router-restore.yaml"), "--limit", "rtr1", "-e", "version=~1")
    r = by_step(run)[("restore config", "rtr1")]
    assert r["status"] == "changed" and r["data"]["rto_seconds"] > 0
    assert running(lab, "rtr1") == saved
    lab.restart_frr("rtr1")  # it was saved: it survives a restart
    assert running(lab, "rtr1") == saved


def test_cut_off_device_is_failed_and_stores_nothing(cli: Cli, lab: Any) -> None:
    lab.fault("rtr2", "drop")
    try:
        run = cli.run_json(str(ROOT / "runbooks/nightly-config-backup.yaml"), rc=1)
    finally:
        lab.fault("rtr2", "up")
    assert run["status"] == "partial"
    s = by_step(run)
    assert s[("backup running config", "rtr1")]["status"] == "changed"
    assert s[("backup running config", "rtr2")]["status"] == "unreachable"
    listing = json.loads(cli.run("backup", "list", "--json", check_rc=0).stdout)
    assert {r["name"] for r in listing} == {"rtr1"}


def test_invalid_output_is_never_a_version() -> None:
    from opsflow.backup.configs import InvalidConfig, validate

    good = "Building configuration...\n!\nfrr version 8.4.4\nhostname r1\n!\nrouter ospf\nexit\n!\nend\n"
    assert "hostname r1" in validate(good) and "Building" not in validate(good)
    for bad in ("", "% Unknown command: show running-config\n", "hostname r1\n!\nrouter ospf\n",
                "rtr1#\n", good.replace("hostname r1\n", "")):
        with pytest.raises(InvalidConfig):
            validate(bad)


def _server_files(lab: Any, host: str, token: str) -> dict[str, str]:
    out = lab.exec(host, ["sh", "-c", f"cd / && find etc/app-{token} srv/app-{token} -type f | sort | "
                                      "xargs sha256sum"]).stdout
    return dict(line.split("  ")[::-1] for line in out.strip().splitlines())


def test_server_backup_restore_verify_and_corruption(cli: Cli, lab: Any, tmp_path: Path) -> None:
    token = uuid.uuid4().hex[:8]
    lab.exec("srv3", ["sh", "-c", f"mkdir -p /etc/app-{token} /srv/app-{token}/data && "
                                  f"echo port=8080 > /etc/app-{token}/app.conf && chmod 600 /etc/app-{token}/app.conf && "
                                  f"head -c 300000 /dev/urandom > /srv/app-{token}/data/blob.bin && "
                                  f"echo hello > /srv/app-{token}/data/note.txt"])
    before = _server_files(lab, "srv3", token)
    assert len(before) == 3
    backup = cli.run_json(str(ROOT / "runbooks/server-backup.yaml"), "--limit", "srv3", "-e", f"app=app-{token}")
    archive = by_step(backup)[("archive", "srv3")]["data"]
    assert archive["files"] == 3
    # damage the host: delete one file, corrupt another
    lab.exec("srv3", ["sh", "-c", f"rm /etc/app-{token}/app.conf; echo garbage > /srv/app-{token}/data/blob.bin"])
    assert _server_files(lab, "srv3", token) != before
    restore = write_runbook(tmp_path, "restore", """\
        name: restore
        targets: srv3
        steps:
          - name: restore
            restore: {}
    """)
    run = cli.run_json(str(restore))
    assert by_step(run)[("restore", "srv3")]["data"]["verified"] == 3
    assert _server_files(lab, "srv3", token) == before
    assert lab.exec("srv3", ["stat", "-c", "%a %U", f"/etc/app-{token}/app.conf"]).stdout.strip() == "600 root"
    assert cli.run("backup", "verify", "srv3").returncode == 0
    # flip one byte of the stored archive: verify and restore both refuse it
    stored = next((cli.home / "backups" / "servers" / "srv3").glob("*.tar.gz"))
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01
    stored.write_bytes(bytes(data))
    bad = cli.run("backup", "verify", "srv3")
    assert bad.returncode == 1 and "FAIL" in bad.stdout
    lab.exec("srv3", ["sh", "-c", f"echo changed-after > /srv/app-{token}/data/note.txt"])
    refused = cli.run_json(str(restore), rc=1)
    r = by_step(refused)[("restore", "srv3")]
    assert r["error_class"] == "ArchiveCorrupt" and "nothing restored" in r["error"]
    assert lab.exec("srv3", ["cat", f"/srv/app-{token}/data/note.txt"]).stdout == "changed-after\n"


def test_retention_keeps_exactly_the_policy(cli: Cli, lab: Any, tmp_path: Path) -> None:
    rb = write_runbook(tmp_path, "keep", """\
        name: keep
        targets: srv4
        steps:
          - name: archive
            backup: {paths: [/etc/hostname], keep_last: 2}
    """)
    ids = [by_step(cli.run_json(str(rb)))[("archive", "srv4")]["data"]["archive"] for _ in range(4)]
    listed = [r["version"] for r in json.loads(cli.run("backup", "list", "srv4", "--json", check_rc=0).stdout)]
    assert listed == [ids[3], ids[2]]


def test_restore_drill_records_rto_and_rpo(cli: Cli, lab: Any) -> None:
    lab.exec("srv1", ["sh", "-c", "mkdir -p /etc/drillapp /srv/drillapp && echo x > /srv/drillapp/data"])
    cli.run_json(str(ROOT / "runbooks/server-backup.yaml"), "--limit", "srv1", "-e", "app=drillapp")
    report_before = json.loads(cli.run("backup", "report", "--json", check_rc=0).stdout)
    assert "no recent drill" in {e["name"]: e for e in report_before}["srv1"]["flags"]
    run = cli.run_json(str(ROOT / "runbooks/restore-drill.yaml"), "--limit", "srv2", "-e", "source=srv1")
    r = by_step(run)[("restore latest backup to scratch", "srv2")]["data"]
    assert r["rto_seconds"] > 0 and r["rpo_seconds"] >= 0 and r["target"] == "/srv/restore-drill/srv1"
    assert lab.exec("srv1", ["test", "-d", "/srv/restore-drill"]).returncode != 0  # only the scratch host
    report = {e["name"]: e for e in json.loads(cli.run("backup", "report", "--json", check_rc=0).stdout)}
    assert report["srv1"]["flags"] == [] and report["srv1"]["drill_on"] == "srv2"
    assert report["srv1"]["rto"] == r["rto_seconds"]
