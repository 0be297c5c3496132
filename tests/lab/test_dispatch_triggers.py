"""Scale-out from the other triggers: `opsflow serve` with ``dispatch = celery`` sends the runs it starts — over
the API and from an event on its hooks — to a worker, and shows them as its own (API, live stream).

One serve process and one worker for both (the lab's PostgreSQL store, RabbitMQ, a queue of this test only);
the steps are ``local``: they run on the worker's machine, which records the run's unit as its own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_for
from tests.lab.dispatch_site import TTL, Site, site
from tests.test_serve import HOOK_TOKEN, Serve, stream

__all__ = ["site"]  # the fixture
pytestmark = pytest.mark.lab


class DispatchingServe(Serve):
    """opsflow serve on the site's store, dispatching to its broker; a runbook of the site's queue with an event
    trigger."""

    def __init__(self, home: Path, site: Site) -> None:
        self.site = site
        (home / "runbooks").mkdir(parents=True)
        (home / "runbooks" / "fleet.yaml").write_text(f"""\
name: fleet
targets: all
queue: {site.qa}
triggers:
  events:
    - name: react
      match:
        name: ~Dispatched.*
      host: labels.instance
      cooldown: 0
steps:
  - name: where
    local: [sh, -c, 'echo "on $PPID"']
""")
        super().__init__(home, "--db", site.store_url)  # the last --db wins

    def env(self) -> dict[str, str]:
        return {**super().env(), "OPSFLOW_DISPATCH": "celery", "OPSFLOW_BROKER": self.site.broker,
                "OPSFLOW_LEASE_TTL": TTL}


def test_serve_dispatches_api_and_event_runs_to_a_worker(site: Site, tmp_path: Path) -> None:
    site.start("w1", site.qa)
    serve = DispatchingServe(tmp_path / "serve", site)
    try:
        site.ready()
        resp = serve.client.post("/api/v1/runs", json={"runbook": "fleet"})
        assert resp.status_code == 202, resp.text
        api_run = resp.json()["id"]
        events = stream(serve.client, api_run)  # the serve follows the dispatched run through the store
        assert sorted(d["host"] for k, d in events if k == "result") == ["a", "b"]
        assert events[-1] == ("end", {"run_id": api_run, "status": "succeeded", "error": None})
        detail = serve.client.get(f"/api/v1/runs/{api_run}").json()
        assert detail["run"]["trigger"] == "api" and len(detail["results"]) == 2
        worker_pid = site.workers["w1"].pid
        assert {r["stdout"] for r in detail["results"]} == {f"on {worker_pid}\n"}  # run by the worker's process

        hook = serve.client.post("/hooks/event", content=json.dumps({"name": "DispatchedProbe",
                                                                     "labels": {"instance": "b"}}),
                                 headers={"Authorization": f"Bearer {HOOK_TOKEN}", "Content-Type": "application/json"})
        assert hook.status_code == 200, hook.text

        def event_run() -> dict[str, Any] | None:
            runs = serve.client.get("/api/v1/runs", params={"trigger": "event"}).json()["runs"]
            return runs[0] if runs and runs[0]["status"] == "succeeded" else None

        run = wait_for(event_run, timeout=30, what="the event's run to succeed on the worker")
        assert run["hosts"] == {"b": "changed"}  # the one host of the event, on the worker
        leases = site.query("SELECT run_id, worker, state FROM leases ORDER BY run_id")
        assert sorted(leases) == sorted([(api_run, "w1", "done"), (run["id"], "w1", "done")])
    finally:
        assert serve.stop() == 0
