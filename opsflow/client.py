"""A client of ``opsflow serve``'s API (/api/v1): one function per call the CLI makes.

TLS is verified (the system's CAs, or ``ca_file`` for a private CA); the bearer token comes from
``OPSFLOW_TOKEN`` or a token file only its owner may read (refused otherwise, as ssh refuses a
readable key). httpx errors are translated here into :class:`RemoteError` subclasses with one clear
line each: what failed, and where. The token is never in a message.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from opsflow.errors import OpsflowError, UsageError

API = "/api/v1"
TIMEOUT = httpx.Timeout(30.0, read=60.0)  # the stream sends a keep-alive every 15 s


class RemoteError(OpsflowError):
    """The server could not be reached or answered with an error."""

    exit_code = 2


class TokenRefused(RemoteError, UsageError):
    """401: the token is expired, revoked or wrong."""


class Refused(RemoteError, UsageError):
    """A 4xx answer: the server's own message (e.g. four-eyes, a role too low, no such run)."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error = status, error


class Unreachable(RemoteError):
    """No answer: connection refused, a TLS failure, a timeout, a dropped stream."""


class ServerFailed(RemoteError):
    """A 5xx answer."""

    exit_code = 1


TOKEN_REFUSED = "the server refused the token (expired, revoked or wrong): see `opsflow token list`"


def read_token_file(path: str | Path) -> str:
    """The token in ``path``; refused when group or others may read or write the file, or another user owns it."""
    p = Path(path).expanduser()
    try:
        st = p.stat()
        if st.st_mode & 0o077:
            raise UsageError(f"token file {p} is accessible by group or others (mode "
                             f"{stat.S_IMODE(st.st_mode):04o}): refused, the token may have leaked; "
                             f"`chmod 600 {p}` (and revoke the token if others could read it)")
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            raise UsageError(f"token file {p} belongs to another user (uid {st.st_uid}): refused")
        text = p.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UsageError(f"token file {p}: cannot read it: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"token file {p}: not text") from None
    if not text or len(text.split()) != 1:
        raise UsageError(f"token file {p}: expected one token on one line")
    return text


def check_url(server: str) -> str:
    """``server`` without a trailing slash: http(s)://host[:port][/prefix]; plain http only to loopback."""
    url = server.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise UsageError(f"--server {server!r}: expected https://host[:port] (the URL of opsflow serve)")
    if parts.username or parts.password:
        raise UsageError("--server: no credentials in the URL (the token comes from OPSFLOW_TOKEN or a token file)")
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "::1", "localhost"):
        raise UsageError(f"--server {url}: plain http would send the token in clear text; use https")
    return url


class Client:
    """One server, one token; use as a context manager (or call :meth:`close`)."""

    def __init__(self, server: str, token: str, ca_file: str | None = None, timeout: httpx.Timeout = TIMEOUT) -> None:
        self.url = check_url(server)
        verify: Any = True
        if ca_file:
            import ssl

            try:
                verify = ssl.create_default_context(cafile=str(Path(ca_file).expanduser()))
            except (OSError, ssl.SSLError) as exc:
                raise UsageError(f"--ca-file {ca_file}: not a readable PEM certificate file ({exc})") from None
        self._http = httpx.Client(base_url=self.url + API, timeout=timeout, verify=verify,
                                  headers={"Authorization": f"Bearer {token}", "Accept": "application/json",
                                           "User-Agent": "opsflow-cli"})

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ---- the calls ----------------------------------------------------------------------
    def start_run(self, runbook: str, params: dict[str, Any], limit: str | None, check: bool) -> dict[str, Any]:
        """POST /runs: the id at once (the server resolves ``runbook`` in its runbooks directory)."""
        return self._call("POST", "/runs", json={"runbook": runbook, "params": params, "limit": limit, "check": check})

    def get_run(self, run_id: str) -> dict[str, Any]:
        """GET /runs/{id}: {run, results, approvals, event, live}."""
        return self._call("GET", f"/runs/{_seg(run_id)}")

    def list_runs(self, limit: int, **filters: Any) -> list[dict[str, Any]]:
        """GET /runs, newest first, following the cursor until ``limit`` runs."""
        out: list[dict[str, Any]] = []
        params = {k: v for k, v in filters.items() if v is not None}
        cursor = None
        while len(out) < limit:
            page = self._call("GET", "/runs", params={**params, "limit": min(1000, limit - len(out)),
                                                     **({"cursor": cursor} if cursor else {})})
            out += page["runs"]
            cursor = page.get("next_cursor")
            if not cursor or not page["runs"]:
                break
        return out

    def decide(self, run_id: str, approved: bool, comment: str | None) -> dict[str, Any]:
        """POST /runs/{id}/approve or /deny."""
        return self._call("POST", f"/runs/{_seg(run_id)}/{'approve' if approved else 'deny'}",
                          json={"comment": comment})

    def cancel(self, run_id: str) -> dict[str, Any]:
        return self._call("POST", f"/runs/{_seg(run_id)}/cancel")

    def resume(self, run_id: str, params: dict[str, Any], force: bool) -> dict[str, Any]:
        """POST /runs/{id}/resume: the new run's id at once."""
        return self._call("POST", f"/runs/{_seg(run_id)}/resume", json={"params": params, "force": force})

    def stream(self, run_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """GET /runs/{id}/stream: (kind, data) server-sent events until the run's ``end``."""
        kind = ""
        try:
            with self._http.stream("GET", f"/runs/{_seg(run_id)}/stream",
                                   headers={"Accept": "text/event-stream"}) as resp:
                if resp.status_code != 200:
                    resp.read()
                    self._raise_for(resp)
                for line in resp.iter_lines():
                    if line.startswith("event: "):
                        kind = line[7:].strip()
                    elif line.startswith("data: "):
                        data = json.loads(line[6:])
                        yield kind, data
                        if kind == "end":
                            return
        except httpx.HTTPError as exc:
            raise self._unreachable(exc, f"the stream of run {run_id}") from None
        except json.JSONDecodeError:
            raise ServerFailed(f"{self.url}: the stream of run {run_id} is not what opsflow serve sends") from None
        raise Unreachable(f"{self.url}: the stream of run {run_id} ended before the run did "
                          f"(see `opsflow show {run_id} --server {self.url}`)")

    # ---- plumbing -----------------------------------------------------------------------
    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc, f"{method} {API}{path}") from None
        if resp.status_code >= 400:
            self._raise_for(resp)
        try:
            body: dict[str, Any] = resp.json()
        except ValueError:
            raise ServerFailed(f"{self.url}: {method} {API}{path} answered {resp.status_code} without JSON "
                               "(is this opsflow serve?)") from None
        return body

    def _raise_for(self, resp: httpx.Response) -> None:
        try:
            body = resp.json()
            error, message = str(body.get("error", "")), str(body.get("message", ""))
        except (ValueError, AttributeError):
            error, message = "", ""
        if resp.status_code == 401:
            raise TokenRefused(f"{self.url}: {TOKEN_REFUSED}")
        if resp.status_code >= 500:
            raise ServerFailed(f"{self.url}: the server failed ({resp.status_code}"
                               f"{': ' + message if message else ''})")
        raise Refused(resp.status_code, error or "error",
                      f"{self.url}: {message or f'refused ({resp.status_code}) — is this opsflow serve?'}")

    def _unreachable(self, exc: httpx.HTTPError, what: str) -> Unreachable:
        cause = _root_cause(exc)
        import ssl

        if isinstance(cause, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
            reason = (f"TLS: the server's certificate is not trusted ({getattr(cause, 'verify_message', None) or cause})"
                      "; for a private CA give --ca-file or OPSFLOW_CA_FILE")
        elif isinstance(cause, ssl.SSLError):
            reason = f"TLS handshake failed ({cause.reason or cause}; is it https?)"
        elif isinstance(cause, ConnectionRefusedError) or "Connection refused" in str(exc):
            reason = "connection refused (is opsflow serve running there?)"
        elif isinstance(exc, httpx.TimeoutException):
            reason = "no answer in time"
        elif isinstance(exc, httpx.ConnectError):
            reason = f"cannot connect ({cause or exc})"
        else:
            reason = f"the connection failed ({type(exc).__name__}: {exc or cause})"
        return Unreachable(f"{self.url}: {what}: {reason}")


def _seg(run_id: str) -> str:
    """A run id as one path segment (never a way to another route)."""
    from urllib.parse import quote

    return quote(run_id, safe="")


def _root_cause(exc: BaseException) -> BaseException | None:
    """The first OSError (refused, TLS) under an httpx error, else the deepest cause."""
    seen, last = exc.__cause__ or exc.__context__, None
    while seen is not None and seen is not last:
        if isinstance(seen, OSError):
            return seen
        last, seen = seen, seen.__cause__ or seen.__context__
    return last
