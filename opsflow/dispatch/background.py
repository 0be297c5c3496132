"""The sweeper of a long-lived process (``opsflow serve``, ``opsflow daemon``): a thread that sweeps the store's
stale leases every half lease ttl (:func:`opsflow.dispatch.sweeper.sweep`), so dispatched runs whose workers are
all gone end ``interrupted`` even when nobody looks. Celery is imported only to send a unit back to its queue."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from opsflow.dispatch.lease import lease_ttl
from opsflow.dispatch.sweeper import Publish, sweep

if TYPE_CHECKING:
    from opsflow.store.sql import SqlStore

log = logging.getLogger("opsflow.sweeper")


class Sweeper:
    """A thread sweeping every ``every`` seconds (half the lease ttl) in a long-lived process."""

    def __init__(self, store: SqlStore, publish: Publish | None, every: float) -> None:
        self.store, self.publish, self.every = store, publish, every
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="opsflow-sweeper", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                sweep(self.store, self.publish)
            except Exception as exc:  # noqa: BLE001 - the store away for a moment: the next round tries again
                log.warning("sweep of stale leases: %s: %s", type(exc).__name__, exc)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)


def start(store: Any, broker: str | None = None) -> Sweeper | None:
    """``opsflow serve`` / ``daemon``: sweep this store while the process lives (None: not a store of dispatched
    runs). With a broker (the ``broker`` setting), stale units are also sent back to their queues."""
    if not hasattr(store, "lose_unit"):
        return None
    if broker is None:
        from opsflow.settings import current

        broker = current().broker or None
    publish: Publish | None = None
    if broker:
        app: list[Any] = []

        def publish(run_id: str, queue: str) -> None:  # Celery is imported at the first unit to send back
            from opsflow.dispatch.app import make_app
            from opsflow.dispatch.app import publish as send

            if not app:
                app.append(make_app(broker))
            send(app[0], run_id, queue)

    ttl = lease_ttl()
    sweeper = Sweeper(store, publish, max(0.5, ttl / 2))
    sweeper.thread.start()
    return sweeper
