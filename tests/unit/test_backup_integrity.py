"""Integrity of config versions: the checksum ledger, object re-hashing, and the repository built on them."""

from __future__ import annotations

import json
import subprocess
import zlib
from pathlib import Path

import pytest

from opsflow.backup.gitobjects import ObjectProblem, ObjectReader, object_id, tree_entry, tree_of
from opsflow.backup.ledger import Entry, Ledger, content_sha256, mismatch
from opsflow.backup.repo import ConfigIntegrityError, ConfigRepo

CFG = "frr version 8.4.4\nhostname r1\nrouter ospf\nexit\nend\n"


def entry(device: str = "r1", version: str = "c" * 40, text: str = CFG, source: str = "backup") -> Entry:
    return Entry(device, version, "b" * 40, content_sha256(text), 1.0, source)


def test_mismatch_says_what_differs() -> None:
    e = entry()
    assert mismatch(e, content_sha256(CFG)) is None
    assert mismatch(None, None, ledger_exists=False) is None  # made before the ledger: nothing to compare
    missing = mismatch(None, content_sha256(CFG))
    assert missing is not None and "not in the checksum ledger" in missing
    other = content_sha256(CFG + "ip route 0.0.0.0/0 192.0.2.1\n")
    why = mismatch(e, other)
    assert why is not None and e.sha256 in why and other in why
    unreadable = mismatch(e, None)
    assert unreadable is not None and "actual unreadable" in unreadable


def test_ledger_appends_and_reads_incrementally(tmp_path: Path) -> None:
    path = tmp_path / "network.checksums.jsonl"
    writer, reader = Ledger(path), Ledger(path)
    assert not reader.exists() and reader.get("r1", "c" * 40) is None
    writer.create([entry(version="a" * 40, source="adopted")])
    assert reader.get("r1", "a" * 40) == entry(version="a" * 40, source="adopted")
    writer.append(entry())
    assert reader.get("r1", "c" * 40) == entry()  # the second reader sees what was appended since
    writer.void("r1", "c" * 40)
    assert reader.get("r1", "c" * 40) is None
    assert [e.version for e in reader.entries("r1")] == ["a" * 40] and reader.entries("r2") == []
    assert not reader.problems and json.loads(path.read_text().splitlines()[0])["ledger"] == 1


def test_ledger_torn_and_unreadable_lines(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    ledger = Ledger(path)
    ledger.append(entry(version="1" * 40))
    with path.open("a") as f:
        f.write('{"device": "r1", "vers')  # a crash mid-write: a torn last line
    assert ledger.get("r1", "1" * 40) is not None and not ledger.problems
    ledger.append(entry(version="2" * 40))  # lands on a line of its own, after the torn one
    fresh = Ledger(path)
    assert fresh.get("r1", "2" * 40) == entry(version="2" * 40)
    assert len(fresh.problems) == 1 and "line 2" in fresh.problems[0]
    with path.open("a") as f:
        f.write(json.dumps({**entry(version="3" * 40).__dict__, "sha256": "short"}) + "\n")
    assert fresh.get("r1", "3" * 40) is None and len(fresh.problems) == 2


def test_ledger_replaced_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    ledger = Ledger(path)
    ledger.append(entry(version="1" * 40))
    assert ledger.get("r1", "1" * 40)
    Ledger(path).create([entry(version="2" * 40)])  # replaced by rename: another inode
    assert ledger.get("r1", "1" * 40) is None and ledger.get("r1", "2" * 40)
    path.unlink()
    assert ledger.entries() == []


def _git(root: Path, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          input=stdin, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def gitdir(tmp_path: Path) -> Path:
    root = tmp_path / "g"
    root.mkdir()
    _git(root, "init", "-q")
    return root


def _loose(root: Path, oid: str) -> Path:
    p = root / ".git" / "objects" / oid[:2] / oid[2:]
    p.chmod(0o644)
    return p


def test_objects_are_rehashed(gitdir: Path) -> None:
    (gitdir / "r1.cfg").write_text(CFG)
    _git(gitdir, "add", "r1.cfg")
    _git(gitdir, "commit", "-qm", "r1")
    blob, tree, commit = (_git(gitdir, "rev-parse", r) for r in ("HEAD:r1.cfg", "HEAD^{tree}", "HEAD"))
    other = _git(gitdir, "hash-object", "-w", "--stdin", stdin="hostname r2\n")
    assert object_id("blob", CFG.encode()) == blob
    with ObjectReader(gitdir) as r:
        assert tree_of(r.read(commit, "commit")) == tree
        assert tree_entry(r.read(tree, "tree"), "r1.cfg") == blob and tree_entry(r.read(tree, "tree"), "r2.cfg") is None
        with pytest.raises(ObjectProblem, match="expected a commit"):
            r.read(blob, "commit")
        forged = b"hostname r1\nip route 0.0.0.0/0 192.0.2.66\n"
        _loose(gitdir, blob).write_bytes(zlib.compress(b"blob %d\0" % len(forged) + forged))
        with pytest.raises(ObjectProblem, match="does not match its hash") as exc:
            r.read(blob, "blob")
        assert exc.value.served == forged
        data = bytearray(zlib.compress(b"blob %d\0" % len(CFG) + CFG.encode() * 50))
        data[-8] ^= 1  # the header inflates, the body does not: git dies mid-object
        _loose(gitdir, blob).write_bytes(bytes(data))
        with pytest.raises(ObjectProblem, match="corrupt"):
            r.read(blob, "blob")
        assert r.read(other, "blob") == b"hostname r2\n"  # a new git process takes over
        _loose(gitdir, other).write_bytes(b"\x00garbage")
        with pytest.raises(ObjectProblem, match="missing or unreadable"):
            r.read(other, "blob")
        with pytest.raises(ObjectProblem):
            tree_of(b"not a commit")


def _flip(repo: ConfigRepo, device: str) -> None:
    blob = _git(repo.root, "rev-parse", f"HEAD:{device}.cfg")
    path = _loose(repo.root, blob)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


def test_damaged_latest_version_is_repaired_not_unchanged(tmp_path: Path) -> None:
    repo = ConfigRepo(tmp_path / "network")
    first = repo.save("r1", CFG, "run1")
    assert first.diff == "" and repo.save("r1", CFG, "run2").diff is None
    _flip(repo, "r1")
    with pytest.raises(ConfigIntegrityError, match=f"version {first.version} of r1 fails verification"):
        repo.show("r1")
    fixed = repo.save("r1", CFG, "run3")
    assert fixed.repaired and fixed.version == first.version and fixed.previous_problem
    assert repo.show("r1") == CFG and all(c.ok for c in repo.verify())
    # damaged, and the device changed meanwhile: a new version; the damaged one stays reported
    _flip(repo, "r1")
    changed = CFG.replace("router ospf", "router bgp 1")
    new = repo.save("r1", changed, "run4")
    assert new.version != first.version and new.previous_problem and new.diff == ""
    assert [c.ok for c in repo.verify("r1")] == [True, False]
    assert repo.save("r1", changed, "run5").diff is None


def test_versions_before_the_ledger_are_adopted_by_the_next_backup(tmp_path: Path) -> None:
    repo = ConfigRepo(tmp_path / "network")
    repo.save("r1", CFG, "run1")
    repo.save("r2", CFG.replace("r1", "r2"), "run1")
    repo.ledger.path.unlink()  # as left by an opsflow without a ledger
    legacy = repo.verify()
    assert [c.ok for c in legacy] == [True, True] and all("no recorded checksum" in c.note for c in legacy)
    _flip(repo, "r2")
    repo.save("r1", CFG + "!\n", "run2")  # creates the ledger; r2's damaged version is not adopted
    by = {(c.device, c.version.id if c.version else ""): c for c in repo.verify()}
    sources = {e.device: e.source for e in repo.ledger.entries() if e.source == "adopted"}
    assert sources == {"r1": "adopted"}
    r2 = [c for (dev, _), c in by.items() if dev == "r2"]
    assert len(r2) == 1 and not r2[0].ok and "not in the checksum ledger" in " ".join(r2[0].problems)
    assert sum(c.ok for c in by.values()) == 2  # r1: the adopted version and the new one
    assert any("not at backup time" in c.note for c in by.values())


def test_rewritten_history_is_reported(tmp_path: Path) -> None:
    repo = ConfigRepo(tmp_path / "network")
    repo.save("r1", CFG, "run1")
    second = repo.save("r1", CFG + "!\n", "run2")
    _git(repo.root, "update-ref", "HEAD", "HEAD~1")  # drop the latest version
    problems = [p for c in repo.verify() for p in c.problems]
    assert len(problems) == 1 and second.version in problems[0] and "missing from the history" in problems[0]
