"""The simulator's SSH side (asyncssh): one listener per device, all in one process.

``python -m opsflow.lab.simulator DEVICES.yaml STATE_DIR`` where DEVICES.yaml is::

    authorized_keys: /path/to/id_ed25519.pub    # the client keys accepted (any user name)
    listen: 127.0.0.1
    devices:
      - {name: ios1, platform: cisco_ios, port: 2201, config: /path/to/config.txt}

Each device gets its own ed25519 host key; ``STATE_DIR/known_hosts`` lists them as
``[address]:port`` (so clients check host keys, as with the lab's hosts). ``STATE_DIR/ready``
appears once every device listens. A shell session answers as the platform's CLI does
(``device.Session``); an exec of ``scp -t PATH`` receives a file into the device's flash.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

import asyncssh
import yaml

from opsflow.lab.simulator.device import Device, Drop, Session


async def _scp_sink(process: Any, dev: Device, path: str) -> None:
    """The receiving side of ``scp -t``: one file."""
    out, inp = process.stdout, process.stdin
    out.write(b"\0")
    header = await inp.readuntil(b"\n")
    if header.startswith(b"T"):
        out.write(b"\0")
        header = await inp.readuntil(b"\n")
    size = int(header.split()[1])
    out.write(b"\0")
    data = await inp.readexactly(size)
    await inp.readexactly(1)
    dev.files[path] = data.decode(errors="replace")
    out.write(b"\0")
    process.exit(0)


def _paged(text: str, session: Session) -> tuple[str, str]:
    """The first page and the rest (empty when paging is off or the text fits)."""
    n = int(session.spec["paging"].get("lines", 0))
    lines = text.split("\n")
    if not session.paging or not n or len(lines) <= n + 1:
        return text, ""
    return "\n".join(lines[:n]) + "\n" + session.spec["paging"]["more"], "\n".join(lines[n:])


async def _shell(process: Any, dev: Device) -> None:
    session = Session(dev)

    def write(text: str) -> None:
        process.stdout.write(text.replace("\r\n", "\n").replace("\n", "\r\n").encode())

    write("\n" + session.banner())
    buf, skip_lf, rest = "", False, ""
    try:
        while True:
            data = await process.stdin.read(4096)
            if not data:
                break
            for ch in data.decode(errors="replace"):
                if rest:  # a page is shown: any key shows the next one, q stops
                    page, rest = ("", "") if ch == "q" else _paged(rest, session)
                    write("\r" + page if page else "\n" + session.prompt())
                    continue
                if ch == "\n" and skip_lf:
                    skip_lf = False
                    continue
                skip_lf = ch == "\r"
                if ch == "\x04" and session.mode == "load":
                    buf += ch
                elif ch not in "\r\n":
                    buf += ch
                    write(ch)
                    continue
                write("\n")
                line, buf = buf, ""
                try:
                    answer = session.line(line)
                except Drop as drop:
                    write(str(drop))
                    process.channel.get_connection().close()
                    return
                page, rest = _paged(answer, session)
                write(page)
    except (asyncssh.BreakReceived, asyncssh.TerminalSizeChanged, asyncssh.DisconnectError, ConnectionError):
        pass
    process.exit(0)


class _Server(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True


async def serve(spec: dict[str, Any], state: Path) -> list[Any]:
    listen = str(spec.get("listen", "127.0.0.1"))
    keys = asyncssh.read_authorized_keys(str(spec["authorized_keys"]))
    servers, known = [], []
    for d in spec["devices"]:
        dev = Device.create(d["name"], d["platform"], Path(d["config"]).read_text() if d.get("config") else "", state)
        host_key = asyncssh.generate_private_key("ssh-ed25519")
        known.append(f"[{listen}]:{d['port']} {host_key.export_public_key().decode().split()[0]} "
                     f"{host_key.export_public_key().decode().split()[1]}")

        async def handle(process: Any, dev: Device = dev) -> None:
            try:
                await _session(process, dev)
            except Exception:  # noqa: BLE001 - a simulator bug: say so and end this session only
                import traceback

                traceback.print_exc()
                process.exit(1)

        async def _session(process: Any, dev: Device) -> None:
            if process.command:
                argv = shlex.split(process.command)
                if argv[:2] == ["scp", "-t"]:
                    await _scp_sink(process, dev, argv[-1])
                    return
                process.stdout.write(Session(dev).line(process.command).encode())
                process.exit(0)
                return
            await _shell(process, dev)

        servers.append(await asyncssh.create_server(
            _Server, listen, int(d["port"]), server_host_keys=[host_key], authorized_client_keys=keys,
            process_factory=handle, encoding=None, line_editor=False, allow_scp=False,
            keepalive_interval=0, login_timeout=30))
    (state / "known_hosts").write_text("\n".join(known) + "\n")
    (state / "ready").write_text(json.dumps({d["name"]: d["port"] for d in spec["devices"]}))
    return servers


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 2:
        sys.stderr.write("usage: python -m opsflow.lab.simulator DEVICES.yaml STATE_DIR\n")
        return 2
    spec = yaml.safe_load(Path(args[0]).read_text())
    state = Path(args[1])
    state.mkdir(parents=True, exist_ok=True)
    loop = asyncio.new_event_loop()
    servers = loop.run_until_complete(serve(spec, state))
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.run_until_complete(stop.wait())
    for s in servers:
        s.close()
    return 0
