"""opsflow serve: event intake, the scheduler, run workers and the HTTP API in one process (FastAPI/uvicorn)."""

from __future__ import annotations

import logging
import sys

import click

from opsflow.cli.options import listen_opt, parse_budget, service_options
from opsflow.errors import UsageError


@click.command()
@listen_opt
@service_options
@click.option("--tls-cert", default=None, type=click.Path(dir_okay=False, exists=True), metavar="FILE",
              help="serve HTTPS with this certificate (PEM; with --tls-key)")
@click.option("--tls-key", default=None, type=click.Path(dir_okay=False, exists=True), metavar="FILE",
              help="the certificate's private key (PEM)")
@click.option("--run-limit", default=None, type=click.IntRange(1, 100000), metavar="N",
              help="API runs admitted at once, running or waiting for a worker (default 32); beyond it "
                   "POST /api/v1/runs answers 429 with Retry-After and starts nothing")
def serve(listen: str, runbooks: str, inventory: str | None, db: str | None, workers: int, queue_size: int,
          budget: str, drain_timeout: float, grace: float, max_body: int, token_file: str | None,
          hmac_secret_file: str | None, schedules_dir: str | None, no_schedule: bool, alertmanager: str | None,
          check: bool, insecure: bool, verbose: bool, tls_cert: str | None, tls_key: str | None,
          run_limit: int | None) -> None:
    """Serve the HTTP API (/api/v1, OpenAPI at /api/openapi.json), the hooks, /metrics and /healthz; start the
    runbooks whose triggers match; fire the schedule's entries.

    API requests authenticate with `Authorization: Bearer <token>`; the hooks with --token-file or
    --hmac-secret-file. SIGTERM drains, SIGHUP reloads (rules and schedules)."""
    from opsflow.events.server import Auth, parse_address, require_auth
    from opsflow.planning import default_inventory
    from opsflow.server.service import Options
    from opsflow.server.service import serve as run

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("opsflow").setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("uvicorn.access").setLevel(logging.INFO if verbose else logging.WARNING)
    if bool(tls_cert) != bool(tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    auth = Auth.load(token_file, hmac_secret_file)
    address = parse_address(listen, "--listen")
    require_auth(auth, address, None, (), insecure)  # before anything is opened
    options = Options(listen=address, runbooks=runbooks, inventory=inventory or default_inventory(), db=db,
                      workers=workers, queue_size=queue_size, budget=parse_budget(budget), drain_timeout=drain_timeout,
                      grace=grace, max_body=max_body, auth=auth, schedules_dir=schedules_dir, no_schedule=no_schedule,
                      alertmanager=alertmanager, check=check, insecure=insecure,
                      tls=(tls_cert, tls_key) if tls_cert and tls_key else None)
    if run_limit is not None:
        from opsflow.server.live import set_run_limit

        set_run_limit(run_limit)
    run(options, lambda text: click.echo(text, err=True))
