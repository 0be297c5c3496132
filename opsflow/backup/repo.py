"""Device configurations versioned in a git repository: one file per device, a commit per change.

Nothing read back from the repository is trusted blindly. A version is *sound* when its
commit, tree and blob objects hash to their names (``gitobjects``) and the sha256 of its
content equals the one recorded in the checksum ledger when it was written (``ledger``,
beside the repository, outside git). ``show``, ``diff``, ``read`` (restores) and the
"unchanged" decision of ``save`` only use sound versions; an unsound one is refused with
``ConfigIntegrityError``. Versions made before the ledger existed have no recorded checksum:
until the first backup creates the ledger they are verified by their git object hashes only
(and said so); that backup records their checksums as ``adopted``.

A new version is written in two phases: objects (verified by reading them back) → ledger
line (fsynced) → the branch moved to the new commit, so a version is never visible without
its recorded checksum.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from opsflow.backup.gitobjects import ObjectProblem, ObjectReader, object_id, tree_entry, tree_of
from opsflow.backup.ledger import Entry, Ledger, content_sha256, mismatch
from opsflow.errors import OpsflowError

_lock = threading.Lock()
_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")


class BackupError(OpsflowError):
    exit_code = 1


class ConfigIntegrityError(BackupError):
    """A stored config version fails verification: it is not shown, diffed or restored."""


@dataclass(frozen=True)
class Version:
    id: str  # short commit hash
    device: str
    at: float
    message: str
    oid: str = ""  # full commit hash


@dataclass(frozen=True)
class Check:
    """The verification of one version (``version`` None: a problem of the history or the ledger)."""

    device: str
    version: Version | None
    problems: tuple[str, ...] = ()
    note: str = ""
    blob: str | None = None
    data: bytes | None = None  # the content, only when sound

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def text(self) -> str:
        return (self.data or b"").decode(errors="replace")

    def refusal(self) -> str:
        vid = self.version.id if self.version else "?"
        return (f"version {vid} of {self.device} fails verification: {'; '.join(self.problems)}. "
                f"The stored version cannot be trusted: run a new backup (opsflow run "
                f"runbooks/nightly-config-backup.yaml --limit {self.device}) to store a fresh one, "
                f"or pick another version (opsflow backup verify {self.device} --all)")


@dataclass(frozen=True)
class Saved:
    version: str
    diff: str | None  # None: unchanged; "": a first version (or no sound previous one to compare)
    repaired: bool = False  # the latest version's damaged object was re-stored from identical content
    previous_problem: str | None = None  # why the previous version failed verification


@contextlib.contextmanager
def _as_backup_error(device: str) -> Iterator[None]:
    try:
        yield
    except ObjectProblem as exc:
        raise BackupError(f"the configuration history of {device} is damaged: {exc}; "
                          "see `opsflow backup verify --all`") from exc


class ConfigRepo:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.ledger = Ledger(root.with_name(f"{root.name}.checksums.jsonl"))
        self._algo: str | None = None

    def _git(self, *args: str, check: bool = True, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["git", "-C", str(self.root), "-c", "user.name=opsflow",
                               "-c", "user.email=opsflow@localhost", "-c", "commit.gpgsign=false", *args],
                              capture_output=True, input=stdin)
        out = subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(errors="replace"),
                                          proc.stderr.decode(errors="replace"))
        if check and proc.returncode != 0:
            raise BackupError(f"git {args[0]} in {self.root} failed: {out.stderr.strip()}")
        return out

    def ensure(self) -> None:
        if not (self.root / ".git").is_dir():
            self.root.mkdir(parents=True, exist_ok=True)
            self._git("init", "-q")

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One writer at a time, across threads and processes."""
        self.root.parent.mkdir(parents=True, exist_ok=True)
        with _lock, open(self.root.with_name(f".{self.root.name}.lock"), "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    @staticmethod
    def _file(device: str) -> str:
        if not _SAFE.match(device):
            raise BackupError(f"device name {device!r} is not usable as a file name")
        return f"{device}.cfg"

    def algo(self) -> str:
        if self._algo is None:
            fmt = self._git("rev-parse", "--show-object-format", check=False).stdout.strip()
            self._algo = fmt if fmt in ("sha1", "sha256") else "sha1"
        return self._algo

    # ---- history -------------------------------------------------------------------------------
    def _log(self, *args: str) -> tuple[str, str | None]:
        """git log output and, when git could not read the whole history, why."""
        proc = self._git("log", *args, check=False)
        if proc.returncode and "does not have any commits" not in proc.stderr:
            return proc.stdout, proc.stderr.strip() or f"git log exited {proc.returncode}"
        return proc.stdout, None

    def versions(self, device: str | None = None, limit: int | None = None) -> list[Version]:
        """Newest first."""
        if not (self.root / ".git").is_dir():
            return []
        args = ["--format=%H%x09%ct%x09%s", *([f"-{limit}"] if limit else [])]
        if device:
            args += ["--", self._file(device)]
        out, err = self._log(*args)
        if err:
            raise BackupError(f"cannot read the history of {device or 'the configs'} in {self.root}: {err}; "
                              "the repository is damaged (see `opsflow backup verify --all`)")
        versions = []
        for line in out.splitlines():
            oid, ts, msg = line.split("\t", 2)
            versions.append(Version(oid[:12], device or msg.split(":", 1)[0], float(ts), msg, oid))
        return versions

    def history(self) -> tuple[dict[str, list[Version]], str | None]:
        """Every version of every device, newest first, in one pass; and why the history is incomplete."""
        if not (self.root / ".git").is_dir():
            return {}, None
        out, err = self._log("--format=%x1e%H%x09%ct%x09%s", "--name-only", "--no-renames", "--diff-filter=AM")
        found: dict[str, list[Version]] = {}
        for record in out.split("\x1e")[1:]:
            head, *names = record.strip("\n").split("\n")
            oid, ts, msg = head.split("\t", 2)
            for name in names:
                if name.endswith(".cfg") and _SAFE.match(name):
                    found.setdefault(name[:-4], []).append(Version(oid[:12], name[:-4], float(ts), msg, oid))
        return found, err

    def devices(self) -> list[str]:
        return sorted(p.stem for p in self.root.glob("*.cfg")) if self.root.is_dir() else []

    def resolve(self, device: str, version: str | None) -> Version:
        versions = self.versions(device)
        if not versions:
            raise BackupError(f"no backup of {device} in {self.root} (run a network.backup first)")
        if version in (None, "", "latest"):
            return versions[0]
        if version.startswith("~") and version[1:].isdigit():
            n = int(version[1:])
            if n >= len(versions):
                raise BackupError(f"{device} has only {len(versions)} version(s)")
            return versions[n]
        hits = [v for v in versions if v.oid.startswith(version)]
        if len(hits) != 1:
            raise BackupError(f"version {version!r} of {device} not found; see `opsflow backup list {device}`")
        return hits[0]

    # ---- verification --------------------------------------------------------------------------
    def _blob(self, reader: ObjectReader, commit: str, device: str) -> str:
        """The blob name of the device's file in a commit, the commit and tree objects verified."""
        tree = tree_of(reader.read(commit, "commit"))
        blob = tree_entry(reader.read(tree, "tree"), self._file(device), len(tree) // 2)
        if blob is None:
            raise ObjectProblem(f"{self._file(device)} is not in commit {commit[:12]}")
        return blob

    def _chain(self, reader: ObjectReader, commit: str, device: str) -> tuple[str, bytes]:
        """(blob name, content) of the device's file in a commit, every object on the way verified."""
        blob = self._blob(reader, commit, device)
        return blob, reader.read(blob, "blob")

    def check(self, v: Version, reader: ObjectReader) -> Check:
        """Verify one version: its git objects, then its content against the ledger."""
        problems: list[str] = []
        blob: str | None = None
        data: bytes | None = None
        served: bytes | None = None
        try:
            blob = self._blob(reader, v.oid, v.device)
            data = served = reader.read(blob, "blob")
        except ObjectProblem as exc:
            problems.append(f"git object check failed: {exc}")
            served = exc.served
        exists = self.ledger.exists()
        entry = self.ledger.get(v.device, v.oid) if exists else None
        why = mismatch(entry, content_sha256(served) if served is not None else None, exists)
        if why:
            problems.append(why)
        note = ""
        if not exists:
            note = "no recorded checksum (made before the checksum ledger): git object hashes verified"
        elif entry and entry.source == "adopted":
            note = (f"checksum recorded when the ledger was created "
                    f"({time.strftime('%Y-%m-%d %H:%M', time.localtime(entry.at))}), not at backup time")
        return Check(v.device, v, tuple(problems), note, blob, None if problems else data)

    def read(self, v: Version, reader: ObjectReader | None = None) -> str:
        """The content of a sound version; ``ConfigIntegrityError`` (saying what to do) otherwise."""
        if reader is None:
            with ObjectReader(self.root) as own:
                return self.read(v, own)
        c = self.check(v, reader)
        if not c.ok:
            raise ConfigIntegrityError(c.refusal())
        return c.text

    def show(self, device: str, version: str | None = None) -> str:
        return self.read(self.resolve(device, version))

    def diff(self, device: str, old: str | None = None, new: str | None = None) -> str:
        """Diff between two sound versions (default: the previous and the latest)."""
        if old is None and new is None:
            versions = self.versions(device)
            if len(versions) < 2:
                return ""
            a, b = versions[1], versions[0]
        else:
            a, b = self.resolve(device, old), self.resolve(device, new)
        with ObjectReader(self.root) as r:
            ta, tb = self.read(a, r), self.read(b, r)
        name = self._file(device)
        return "".join(difflib.unified_diff(ta.splitlines(keepends=True), tb.splitlines(keepends=True),
                                            f"a/{name} {a.id}", f"b/{name} {b.id}"))

    def verify(self, device: str | None = None, every: bool = True) -> list[Check]:
        """Check every version (``every``; else the latest per device), and that the ledger and history agree.

        One damaged object or unreadable ledger line never stops the rest.
        """
        history, err = self.history()
        out = [Check(device or "(history)", None, (f"the history is unreadable past some point: {err}",))] \
            if err else []
        self.ledger.entries()  # read it: its unreadable lines are problems of their own
        out += [Check("(ledger)", None, (p,)) for p in self.ledger.problems]
        with ObjectReader(self.root) as r:
            for dev in [device] if device else sorted(history):
                versions = history.get(dev, [])
                out += [self.check(v, r) for v in (versions if every else versions[:1])]
                if every and not err and self.ledger.exists():
                    listed = {v.oid for v in versions}
                    out += [Check(dev, None, (f"version {e.version[:12]}, recorded in the checksum ledger at "
                                              f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(e.at))}, is "
                                              "missing from the history (was the history rewritten?)",))
                            for e in self.ledger.entries(dev) if e.version not in listed]
        return out

    def age(self, device: str) -> float | None:
        versions = self.versions(device, limit=1)
        return time.time() - versions[0].at if versions else None

    # ---- writing -------------------------------------------------------------------------------
    def save(self, device: str, config: str, run_id: str) -> Saved:
        """Store a config; a new version only when it differs from the latest *sound* version.

        A latest version that fails verification is never "unchanged": when the device still has
        exactly its content, its damaged object is re-stored from it (and verified again);
        otherwise a fresh version is written.
        """
        name, data = self._file(device), config.encode()
        with self._exclusive():
            self.ensure()
            with ObjectReader(self.root) as reader, _as_backup_error(device):
                if not self.ledger.exists():
                    self._adopt(reader)
                latest = next(iter(self.versions(device, limit=1)), None)
                previous = self.check(latest, reader) if latest else None
                if latest and previous and previous.ok:
                    if previous.data == data:
                        return Saved(latest.id, None)
                elif latest and previous and previous.blob == object_id("blob", data, self.algo()):
                    self._store_blob(data, reader)  # the same content as the damaged object: re-store it
                    again = self.check(latest, reader)
                    if not again.ok:
                        raise ConfigIntegrityError(again.refusal())
                    return Saved(latest.id, None, repaired=True, previous_problem="; ".join(previous.problems))
                version = self._commit(device, name, data, run_id, reader)
        if previous is None:
            return Saved(version, "")
        if not previous.ok:
            return Saved(version, "", previous_problem="; ".join(previous.problems))
        diff = "".join(difflib.unified_diff(previous.text.splitlines(keepends=True), config.splitlines(keepends=True),
                                            f"a/{name}", f"b/{name}", n=1))
        return Saved(version, diff)

    def _commit(self, device: str, name: str, data: bytes, run_id: str, reader: ObjectReader) -> str:
        """Write a new version; six git processes in all with the check of the previous one."""
        blob = object_id("blob", data, self.algo())
        self._set_aside_if_damaged(blob, reader)  # else git would keep the damaged object of that name
        path = self.root / name
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        self._git("add", "--", name)
        tree = self._git("write-tree").stdout.strip()
        parent = reader.resolve("HEAD")  # wrong only if HEAD is damaged: then update-ref refuses below
        if parent and tree_of(reader.read(parent, "commit")) == tree:
            raise ConfigIntegrityError(
                f"the latest version of {device} fails verification and the running config is identical to "
                f"it, so no fresh version can be written (see `opsflow backup verify {device} --all`); "
                "the repository needs repair by hand")
        msg = f"{device}: backup by run {run_id}"
        commit = self._git("commit-tree", tree, *(["-p", parent] if parent else []), "-m", msg).stdout.strip()
        if self._chain(reader, commit, device) != (blob, data):
            raise BackupError(f"the new version of {device} does not read back as written; nothing recorded")
        self.ledger.append(Entry(device, commit, blob, content_sha256(data), time.time()))
        moved = self._git("update-ref", "-m", msg, "HEAD", commit, parent or "", check=False)
        if moved.returncode:
            self.ledger.void(device, commit)
            raise BackupError(f"could not record the new version of {device}: {moved.stderr.strip()}")
        return commit[:12]

    def _set_aside_if_damaged(self, oid: str, reader: ObjectReader) -> bool:
        """Move a damaged loose object to ``.git/opsflow-quarantine``; True when the object is sound."""
        try:
            reader.read(oid, "blob")
            return True
        except ObjectProblem:
            pass
        loose = self.root / ".git" / "objects" / oid[:2] / oid[2:]
        if loose.exists():
            aside = self.root / ".git" / "opsflow-quarantine" / f"{oid}.{time.time_ns()}"
            aside.parent.mkdir(exist_ok=True)
            loose.replace(aside)
        return False

    def _store_blob(self, data: bytes, reader: ObjectReader) -> str:
        """Write ``data`` as a blob and read it back; a damaged object of that name is moved aside first."""
        oid = object_id("blob", data, self.algo())
        if self._set_aside_if_damaged(oid, reader):
            return oid
        self._git("hash-object", "-w", "--stdin", stdin=data)
        try:
            reader.read(oid, "blob")
        except ObjectProblem as exc:
            raise BackupError(f"cannot store a sound copy of the config (is the damaged object packed? "
                              f"run git fsck in {self.root}): {exc}") from exc
        return oid

    def _adopt(self, reader: ObjectReader) -> None:
        """Create the ledger: versions already in git are recorded as ``adopted`` when their objects are sound."""
        history, _ = self.history()
        entries = []
        for device, versions in history.items():
            for v in versions:
                try:
                    blob, data = self._chain(reader, v.oid, device)
                except ObjectProblem:
                    continue  # stays out of the ledger: verify reports it
                entries.append(Entry(device, v.oid, blob, content_sha256(data), time.time(), "adopted"))
        self.ledger.create(entries)
