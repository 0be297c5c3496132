"""Start-up pieces shared by ``opsflow daemon`` and ``opsflow serve``: the scheduler, reloading rules and schedules."""

from __future__ import annotations

import logging
from typing import Any

from opsflow.errors import UsageError


def make_scheduler(schedules_dir: str | None, runbooks: str, inventory: str, store: Any, check: bool, grace: float,
                   alertmanager: str | None, notices: Any) -> Any:
    """The scheduler of the schedules directory; None when the default directory does not exist."""
    from pathlib import Path

    from opsflow.schedule.loader import load_schedules
    from opsflow.service.runs import RunConfig
    from opsflow.service.scheduler import Scheduler
    from opsflow.settings import current

    settings = current()
    directory = Path(schedules_dir or settings.schedules)
    if not directory.exists():
        if schedules_dir:
            raise UsageError(f"--schedules {schedules_dir!r}: no such directory (--no-schedule: events only)")
        logging.getLogger("opsflow.scheduler").info("no schedules directory %s: no schedule fires", directory)
        return None
    if alertmanager:
        from opsflow.silences import SilenceClient, SilenceError

        try:
            SilenceClient(alertmanager)  # a malformed URL is refused now, not at the first run
        except SilenceError as exc:
            raise UsageError(f"--alertmanager: {exc}") from None
    sset = load_schedules(directory, runbooks)
    log = logging.getLogger("opsflow.scheduler")
    for problem in notices.problems(sset.entries):
        log.warning("%s", problem)
    config = RunConfig(inventory=inventory, check=check, grace=grace, alertmanager=alertmanager)
    return Scheduler(sset, store, config, notices)


def reload(core: Any, scheduler: Any, runbooks: str) -> None:
    """SIGHUP: reload the rules and the schedule; a set that does not load is refused, the current one kept."""
    try:
        loaded = core.load()
        logging.getLogger("opsflow.daemon").info("reloaded %d rule(s)", len(loaded))
    except Exception as exc:  # noqa: BLE001 - keep the rules we have
        logging.getLogger("opsflow.daemon").error("reload refused, keeping the current rules:\n%s", exc)
    if scheduler is not None:
        from opsflow.schedule.loader import load_schedules

        try:
            scheduler.reload(load_schedules(scheduler.schedules.directory, runbooks))
            logging.getLogger("opsflow.scheduler").info("reloaded %d schedule entries", len(scheduler.entries))
        except Exception as exc:  # noqa: BLE001 - keep the schedule we have
            logging.getLogger("opsflow.scheduler").error("reload refused, keeping the current schedule:\n%s", exc)
