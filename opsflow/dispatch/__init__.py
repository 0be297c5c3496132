"""Scale-out: runs dispatched to Celery workers on several machines and sites, one run in a shared store.

- :mod:`~opsflow.dispatch.placement` (pure): which queue runs each host × step; one unit of work per queue.
- :mod:`~opsflow.dispatch.lease` (pure): leases with fencing tokens, what a sweep does with stale ones.
- :mod:`~opsflow.dispatch.unit`: a worker runs one unit through the executor, fenced by its lease.
- :mod:`~opsflow.dispatch.app` (imports Celery): the Celery app, its task, the worker's heartbeat and sweep.
- :mod:`~opsflow.dispatch.client` (imports Celery): dispatch a plan, follow it through the store, cancel it.

Nothing here is imported by the CLI's start-up or by in-process runs: Celery is loaded only to dispatch
or to be a worker (``pip install 'opsflow[celery]'``).
"""
