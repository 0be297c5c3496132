"""Backups and restores against the lab: device configs, server archives, corruption, retention, drills."""

from __future__ import annotations

import json
import subprocess
import uuid
import zlib
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


# ---- integrity of stored config versions --------------------------------------------------------

def _git(repo: Path, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], input=stdin, capture_output=True, text=True,
                          check=True).stdout.strip()


def _loose(repo: Path, oid: str) -> Path:
    path = repo / ".git" / "objects" / oid[:2] / oid[2:]
    path.chmod(0o644)
    return path


def _restore_check(cli: Cli, device: str) -> dict[str, Any]:
    run = cli.run_json(str(ROOT / "runbooks/router-restore.yaml"), "--limit", device, "--check", rc=1)
    return by_step(run)[("restore config", device)]


def test_corrupted_config_object_is_never_trusted(cli: Cli, lab: Any) -> None:
    nothing = cli.run("backup", "verify")
    assert nothing.returncode == 2 and "nothing to verify" in nothing.stderr
    backup = str(ROOT / "runbooks/nightly-config-backup.yaml")
    cli.run_json(backup)
    # config versions and no server archive: they are verified, and said so
    ok = cli.run("backup", "verify", check_rc=0).stdout
    assert "checked 0 archive(s), 2 config version(s): all ok" in ok
    assert {line.split()[2] for line in ok.splitlines() if line.startswith("ok")} == {"rtr1", "rtr2"}
    repo = cli.home / "backups" / "network"
    version = _git(repo, "log", "-1", "--format=%h", "--abbrev=12", "--", "rtr1.cfg")
    blob = _loose(repo, _git(repo, "rev-parse", "HEAD:rtr1.cfg"))
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))
    verify = cli.run("backup", "verify", "--all")
    assert verify.returncode == 1
    failed = [line for line in verify.stdout.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and "rtr1" in failed[0] and version in failed[0] and "corrupt" in failed[0]
    assert "2 config version(s): 1 failed" in verify.stdout
    shown = cli.run("backup", "show", "rtr1")
    assert shown.returncode == 1 and f"version {version} of rtr1 fails verification" in shown.stderr
    assert "run a new backup" in shown.stderr and shown.stdout == ""
    assert cli.run("backup", "diff", "rtr1", version).returncode == 1
    refused = _restore_check(cli, "rtr1")
    assert refused["status"] == "failed" and refused["error_class"] == "ConfigIntegrityError"
    assert "delta" not in refused.get("data", {})
    # the next backup does not call the damaged version "unchanged": it stores a sound copy
    again = by_step(cli.run_json(backup))
    assert again[("backup running config", "rtr2")]["status"] == "ok"
    fixed = again[("backup running config", "rtr1")]
    assert fixed["status"] == "changed" and fixed["data"]["repaired"] is True
    assert "failed verification" in fixed["stdout"]
    assert "2 config version(s): all ok" in cli.run("backup", "verify", "--all", check_rc=0).stdout
    assert "hostname rtr1" in cli.run("backup", "show", "rtr1", check_rc=0).stdout


def test_forged_config_is_never_served_or_planned(cli: Cli, lab: Any) -> None:
    backup = str(ROOT / "runbooks/nightly-config-backup.yaml")
    cli.run_json(backup, "--limit", "rtr1")
    repo = cli.home / "backups" / "network"
    real = cli.run("backup", "show", "rtr1", check_rc=0).stdout
    injected = real.replace("hostname rtr1\n", "hostname rtr1\nip route 203.0.113.0/24 Null0\n")
    assert injected != real
    # 1. the loose object replaced by a valid object of other content, under the same name
    blob = _loose(repo, _git(repo, "rev-parse", "HEAD:rtr1.cfg"))
    raw = injected.encode()
    blob.write_bytes(zlib.compress(b"blob %d\0" % len(raw) + raw))
    assert "203.0.113.0" in _git(repo, "show", "HEAD:rtr1.cfg")  # git itself serves the forgery
    shown = cli.run("backup", "show", "rtr1")
    assert shown.returncode == 1 and "203.0.113.0" not in shown.stdout
    assert "does not match its hash" in shown.stderr and "expected sha256" in shown.stderr
    refused = _restore_check(cli, "rtr1")
    assert refused["error_class"] == "ConfigIntegrityError" and "203.0.113.0" not in json.dumps(refused)
    assert cli.run("backup", "verify", "rtr1", "--all").returncode == 1
    assert by_step(cli.run_json(backup, "--limit", "rtr1"))[("backup running config", "rtr1")]["data"]["repaired"]
    assert cli.run("backup", "show", "rtr1", check_rc=0).stdout == real
    # 2. a new, valid blob, tree and commit, and the branch pointed at it
    forged_blob = _git(repo, "hash-object", "-w", "--stdin", stdin=injected)
    others = [line for line in _git(repo, "ls-tree", "HEAD").splitlines() if not line.endswith("\trtr1.cfg")]
    tree = _git(repo, "mktree", stdin="\n".join([*others, f"100644 blob {forged_blob}\trtr1.cfg"]) + "\n")
    commit = _git(repo, "-c", "user.name=x", "-c", "user.email=x@x", "commit-tree", tree, "-p", "HEAD",
                  "-m", "rtr1: backup by run forged")
    _git(repo, "update-ref", "HEAD", commit)
    shown = cli.run("backup", "show", "rtr1")
    assert shown.returncode == 1 and "not in the checksum ledger" in shown.stderr and commit[:12] in shown.stderr
    refused = _restore_check(cli, "rtr1")
    assert refused["error_class"] == "ConfigIntegrityError" and "203.0.113.0" not in json.dumps(refused)
    verify = cli.run("backup", "verify", "rtr1", "--all")
    assert verify.returncode == 1 and "FAILED config  rtr1" in verify.stdout and commit[:12] in verify.stdout
    # the next backup stores a fresh version; the restore check then plans nothing from the forgery
    fresh = by_step(cli.run_json(backup, "--limit", "rtr1"))[("backup running config", "rtr1")]
    assert fresh["status"] == "changed" and fresh["data"]["new_version"] is True
    assert "not in the checksum ledger" in fresh["data"]["previous_failed"]
    assert cli.run("backup", "show", "rtr1", check_rc=0).stdout == real
    dry = cli.run_json(str(ROOT / "runbooks/router-restore.yaml"), "--limit", "rtr1", "--check")
    assert by_step(dry)[("restore config", "rtr1")]["data"]["delta"] == []


def test_verify_all_goes_on_past_unreadable_manifests(cli: Cli, lab: Any, tmp_path: Path) -> None:
    rb = write_runbook(tmp_path, "arch", """\
        name: arch
        targets: srv4
        steps:
          - name: archive
            backup: {paths: [/etc/hostname]}
    """)
    ids = [by_step(cli.run_json(str(rb)))[("archive", "srv4")]["data"]["archive"] for _ in range(4)]
    store = cli.home / "backups" / "servers" / "srv4"
    (store / f"{ids[1]}.json").write_text("{not json")
    malformed = json.loads((store / f"{ids[2]}.json").read_text())
    del malformed["files"]
    (store / f"{ids[2]}.json").write_text(json.dumps(malformed))
    out = cli.run("backup", "verify", "--all")
    assert out.returncode == 1
    lines = {aid: line for line in out.stdout.splitlines() for aid in ids if aid in line}
    assert set(lines) == set(ids)
    assert lines[ids[0]].startswith("ok") and lines[ids[3]].startswith("ok")
    assert lines[ids[1]].startswith("FAILED") and "unreadable" in lines[ids[1]]
    assert lines[ids[2]].startswith("FAILED") and "malformed" in lines[ids[2]]
    assert "checked 4 archive(s), 0 config version(s): 2 failed" in out.stdout
    assert "manifest unreadable" in cli.run("backup", "list", "srv4", check_rc=0).stdout
