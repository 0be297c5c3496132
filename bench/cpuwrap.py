"""Run one command and account for everything it costs on the controller.

``python -S cpuwrap.py OUT.json -- ARGV...`` runs ARGV (stdio inherited) as a child
subreaper: processes the command leaves behind (OpenSSH ControlPersist masters,
Ansible's forks) are re-parented here instead of to init, so their CPU time is
collected too when they end. The wall time stops when ARGV exits; leftovers get
a short grace, then SIGTERM (by pid, only our own children), then SIGKILL.
OUT.json receives wall, CPU user/system seconds of the whole tree, max RSS and rc.

Standard library only, started with ``-S``: its own start-up is not measured.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def _children() -> list[int]:
    me = os.getpid()
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:
            out.append(int(entry))
    return out


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _settle(grace: float) -> int:
    """Reap leftovers; after `grace` s terminate those still running. Returns how many were left."""
    deadline = time.monotonic() + grace
    left = _children()
    found = len(left)
    signalled = 0
    while left:
        _reap()
        left = _children()
        now = time.monotonic()
        if left and now > deadline and signalled < 2:
            sig = signal.SIGTERM if signalled == 0 else signal.SIGKILL
            for pid in left:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            signalled += 1
            deadline = now + 2.0
        time.sleep(0.01)
    _reap()
    return found


def main(argv: list[str]) -> int:
    out_path, sep, *cmd = argv
    if sep != "--" or not cmd:
        print("usage: cpuwrap.py OUT.json -- ARGV...", file=sys.stderr)
        return 2
    grace = float(os.environ.pop("BENCH_LEFTOVER_GRACE", "0.5"))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    rc = proc.wait()
    wall = time.perf_counter() - t0
    leftovers = _settle(grace)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out_path, "w", encoding="utf-8") as fh:
        json.dump({"rc": rc, "wall": wall, "cpu_user": ru.ru_utime, "cpu_sys": ru.ru_stime,
                   "maxrss_kib": ru.ru_maxrss, "leftovers": leftovers}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
