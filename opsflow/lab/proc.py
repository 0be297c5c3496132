"""Processes of the lab: spawn detached, identify by (pid, start time), kill, reap, measure."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from opsflow.errors import LabError
from opsflow.proc import process_alive, process_start, stat_fields


def start_time(pid: int) -> int | None:
    start = process_start(pid)
    return int(start) if start else None


def alive(pid: int | None, started: int | None = None) -> bool:
    """True if the process exists, is not a zombie and (when given) started at `started`."""
    return process_alive(pid or 0, started)


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def spawn(argv: Sequence[str], log: Path, env: dict[str, str]) -> int:
    """Start a detached process (own session, stdin /dev/null, output to `log`); returns its pid."""
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    try:
        return os.posix_spawn(argv[0], list(argv), env, file_actions=actions, setsid=True)
    except OSError as exc:
        raise LabError(f"cannot start {argv[0]}: {exc}") from exc


def reap(pid: int) -> None:
    """Collect the exit status if `pid` is our child (no zombie left behind); no-op otherwise."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def kill(pids: Iterable[tuple[int, int | None]], wait: float = 5.0) -> list[int]:
    """SIGKILL each (pid, start) still alive, reap our children, wait until gone; returns survivors."""
    given = list(pids)
    for pid, _ in given:
        reap(pid)  # already exited (a zombie child of ours): collect it
    targets = [(pid, st) for pid, st in given if alive(pid, st)]
    for pid, _ in targets:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + wait
    left = targets
    while True:
        for pid, _ in given:
            reap(pid)
        left = [(pid, st) for pid, st in left if alive(pid, st)]
        if not left or time.monotonic() > deadline:
            return [pid for pid, _ in left]
        time.sleep(0.02)


def parent(pid: int) -> int | None:
    fields = stat_fields(pid)
    return int(fields[1]) if fields else None


def kill_tree(pids: Iterable[int], wait: float = 5.0) -> list[int]:
    """Kill a set of processes without knowing their roles: those whose parent is in the set first
    (a host's init, then its `unshare` parent reaps it), then the roots; returns survivors."""
    pids = [pid for pid in pids if alive(pid)]
    inner = {pid for pid in pids if parent(pid) in pids}
    survivors = kill(((pid, start_time(pid)) for pid in pids if pid in inner), wait=wait)
    survivors += kill(((pid, start_time(pid)) for pid in pids if pid not in inner), wait=wait)
    return survivors


def netns_inode(path: str | Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def pids_by_netns(namespaces: dict[tuple[int, int], str]) -> dict[str, list[int]]:
    """Scan /proc once: which processes live in each of the given network namespaces."""
    found: dict[str, list[int]] = {name: [] for name in namespaces.values()}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        key = netns_inode(f"/proc/{entry.name}/ns/net")
        if key is not None and key in namespaces:
            found[namespaces[key]].append(int(entry.name))
    return found


def memory_kib(pids: Iterable[int]) -> tuple[int, int, int]:
    """(processes, RSS sum, PSS sum) in KiB; RSS counts shared pages once per process, PSS splits them."""
    count = rss = pss = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        count += 1
        for line in text.splitlines():
            if line.startswith("Rss:"):
                rss += int(line.split()[1])
            elif line.startswith("Pss:"):
                pss += int(line.split()[1])
    return count, rss, pss


def run(
    argv: Sequence[str],
    what: str,
    input: str | None = None,
    timeout: float = 60,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command; LabError naming `what` (and stderr) if it fails or times out."""
    try:
        proc = subprocess.run(
            list(argv), input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{what}: timed out after {timeout:g} s ({' '.join(argv)})") from exc
    except OSError as exc:
        raise LabError(f"{what}: cannot run {argv[0]}: {exc}") from exc
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        tail = "; ".join(detail[-3:]) if detail else f"exit code {proc.returncode}"
        raise LabError(f"{what}: {tail}")
    return proc
