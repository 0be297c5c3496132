"""Files the lab writes: keys, each host's init and configs, known_hosts, ssh_config, inventory."""

from __future__ import annotations

import contextlib
import functools
import grp
import os
import pwd
import shlex
import stat
import subprocess
import tempfile
from pathlib import Path

import yaml

from opsflow.errors import LabError
from opsflow.lab.plan import OVERLAID, HostRecord, LabState

# -- small helpers -------------------------------------------------------------------


def write_file(
    path: Path, text: str | bytes, mode: int = 0o644, owner: tuple[int, int] | None = None, atomic: bool = True
) -> None:
    """Write with the given mode and owner (set before any byte lands); atomic: via a temp file + rename."""
    data = text.encode() if isinstance(text, str) else text
    if not atomic:  # a new file in a fresh directory: nobody reads it half-written
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            os.fchmod(fd, mode)
            if owner is not None:
                os.fchown(fd, *owner)
            os.write(fd, data)
        finally:
            os.close(fd)
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        if owner is not None:
            os.fchown(fd, *owner)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ed25519_keypair(comment: str, ssh_keygen: str) -> tuple[bytes, str]:
    """(OpenSSH private key, public key line). In-process when `cryptography` is there, else ssh-keygen."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    except ImportError:  # pragma: no cover - cryptography comes with paramiko
        with tempfile.TemporaryDirectory() as tmp:
            key = Path(tmp) / "key"
            subprocess.run(
                [ssh_keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)],
                check=True,
                capture_output=True,
            )
            return key.read_bytes(), key.with_suffix(".pub").read_text().strip()
    priv = Ed25519PrivateKey.generate()
    private = priv.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = priv.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, f"{public.decode()} {comment}"


# -- per host ------------------------------------------------------------------------

INIT = r"""#!/bin/bash
# opsflow lab: PID 1 of host {name} ({kind}) -- written by `opsflow lab up`.
# It runs in the host's own network, mount, UTS and PID namespaces (unshare). Its
# mounts (./fstab) give the host a private /run, /tmp and /root and copy-on-write
# /etc /var /usr /home /opt /srv (overlayfs: writes land in ./upper, which `up`
# pre-filled with the host's hostname, hosts, sshd config and keys, /sbin/init).
# Being PID 1, it ends when its `unshare` parent is killed (opsflow lab down).
H={hostdir}
NAME={name}
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
umask 022
OUT=$H
fail() {{ echo "$*" >"$OUT/failed" || echo "$*" >"$H/failed"; echo "init: FAILED: $*" >&2; exit 1; }}

if [ "$$" != 1 ]; then
    # run as /sbin/init by a tool: there is only one init, and it is running
    echo "this is the opsflow lab init of $NAME; it runs once, as PID 1" >&2; exit 0
fi
echo "$NAME" >/proc/sys/kernel/hostname || fail "set the hostname"
echo 1 >/proc/sys/net/ipv6/conf/eth0/disable_ipv6 2>/dev/null  # the lab LAN is IPv4 (lo keeps ::1)
ip -batch - <<<"link set lo up
addr add {address}/{prefixlen} dev eth0
link set eth0 up" || fail "configure eth0 with {address}/{prefixlen}"
# Drop this mount namespace's copies of the machine's netns handles: they would keep
# other labs' namespaces alive after those labs are taken down.
umount -l /run/netns 2>/dev/null
mount -a -T "$H/fstab" || {{ [ -e /run/ofl/init ] && OUT=/run/ofl; fail "mount the host's file systems ($H/fstab)"; }}
OUT=/run/ofl
mkdir -p -m 0755 /run/sshd && mkdir -p -m 1777 /run/lock
{router}
/usr/sbin/sshd -E /var/log/opsflow-sshd.log || fail "sshd did not start: $(tail -n 2 /var/log/opsflow-sshd.log | tr '\n' ' ')"
n=0
until [ -s /run/sshd.pid ]; do  # written once sshd listens on its address
    n=$((n + 1)); [ $n -ge 1000 ] && fail "sshd is not listening: $(tail -n 2 /var/log/opsflow-sshd.log | tr '\n' ' ')"
    sleep 0.02
done
: >/run/ofl/ready
trap '' HUP INT TERM
# Stay as PID 1 and reap orphans (bash reaps any child on SIGCHLD).
while :; do sleep infinity & wait $!; done
"""

INIT_ROUTER = r"""
if id admin >/dev/null 2>&1; then
    usermod -s /usr/bin/vtysh -a -G frrvty,frr -p '*' admin || fail "usermod admin"
else
    useradd -m -s /usr/bin/vtysh -G frrvty,frr -p '*' admin || fail "useradd admin"
fi
install -d -m 700 -o admin -g admin /home/admin/.ssh \
    && install -m 600 -o admin -g admin /run/ofl/root/.ssh/authorized_keys /home/admin/.ssh/authorized_keys \
    || fail "install admin's authorized_keys"
/usr/lib/frr/frrinit.sh start >/run/ofl/frr-start.log 2>&1 \
    || fail "FRR did not start: $(tail -n 2 /run/ofl/frr-start.log | tr '\n' ' ')"
n=0
until vtysh -c 'show version' >/dev/null 2>&1; do
    n=$((n + 1)); [ $n -ge 300 ] && fail "vtysh does not answer 30 s after FRR started"
    sleep 0.1
done
"""

SSHD_CONFIG = """\
# opsflow lab: sshd of {name}
ListenAddress {address}
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/sshd.pid
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AuthorizedKeysFile .ssh/authorized_keys
MaxStartups 200:30:400
MaxSessions 64
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
"""

FRR_DAEMONS = """\
# opsflow lab: FRR daemons of {name} (zebra and staticd always run)
bgpd=no
ospfd=yes
ospf6d=no
ripd=no
ripngd=no
isisd=no
pimd=no
pim6d=no
ldpd=no
nhrpd=no
eigrpd=no
babeld=no
sharpd=no
pbrd=no
bfdd=no
fabricd=no
vrrpd=no
pathd=no
vtysh_enable=yes
zebra_options="  -A 127.0.0.1 -s 90000000"
ospfd_options="  -A 127.0.0.1"
staticd_options="-A 127.0.0.1"
"""

FRR_CONF = """\
frr version 8.4
frr defaults traditional
hostname {name}
log file /var/log/frr/frr.log informational
service integrated-vtysh-config
!
interface eth0
 description lab LAN
 ip ospf hello-interval 1
 ip ospf dead-interval 3
 ip ospf retransmit-interval 1
exit
!
router ospf
 ospf router-id {address}
 network {subnet} area 0
exit
!
"""

VTYSH_CONF = "service integrated-vtysh-config\n"


def hosts_file(state: LabState, host: HostRecord) -> str:
    lines = [
        "127.0.0.1\tlocalhost",
        f"127.0.1.1\t{host.name}",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "",
        f"# opsflow lab {state.name}",
    ]
    lines += [f"{h.address}\t{h.name}" for h in state.hosts]
    return "\n".join(lines) + "\n"


def _fstab_path(path: Path | str) -> str:
    return "".join({" ": "\\040", "\t": "\\011", "\n": "\\012", "\\": "\\134"}.get(c, c) for c in str(path))


def fstab(hostdir: Path, name: str) -> str:
    """The host's mounts, in order (one `mount -a` in the init instead of a dozen processes)."""
    lines = [
        "ofl-sys /sys sysfs nosuid,nodev,noexec 0 0",  # this network namespace's devices
        "ofl-run /run tmpfs mode=0755,nosuid,nodev,size=64m 0 0",
        f"{_fstab_path(hostdir)} /run/ofl none bind,X-mount.mkdir 0 0",
    ]
    for d in OVERLAID:
        opts = f"lowerdir=/{d},upperdir=/run/ofl/upper/{d},workdir=/run/ofl/work/{d}"
        lines.append(f"ofl-{name}-{d} /{d} overlay {opts} 0 0")
    lines += [
        "ofl-tmp /tmp tmpfs mode=1777,nosuid,nodev,size=256m 0 0",
        "/run/ofl/root /root none bind 0 0",
    ]
    return "\n".join(lines) + "\n"


def _ids(user: str, group: str) -> tuple[int, int]:
    try:
        return pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid
    except KeyError as exc:
        raise LabError(f"user/group {user}:{group} missing on this machine (is frr installed?)") from exc


def _dir_like(upper: Path, lower: Path, rel: str) -> Path:
    """upper/rel, each level created with the owner and mode of lower/rel (an overlay merges them)."""
    for part in Path(rel).parts:
        upper, lower = upper / part, lower / part
        if not upper.exists():
            upper.mkdir()
            try:
                st = os.stat(lower)
                os.chown(upper, st.st_uid, st.st_gid)
                os.chmod(upper, stat.S_IMODE(st.st_mode))
            except FileNotFoundError:
                os.chmod(upper, 0o755)
    return upper


@functools.cache
def _root_dotfiles() -> dict[str, bytes]:
    found = {}
    for dot in ("profile", "bashrc"):
        with contextlib.suppress(OSError):
            found[dot] = Path(f"/usr/share/base-files/dot.{dot}").read_bytes()
    return found


def write_host(
    state: LabState, host: HostRecord, hostdir: Path, authorized_key: str, host_key: tuple[bytes, str]
) -> None:
    """The host's directory: init, fstab, a /root, and upper dirs pre-filled with its own files."""

    def put(path: Path, text: str | bytes, mode: int = 0o644, owner: tuple[int, int] | None = None) -> None:
        write_file(path, text, mode, owner, atomic=False)

    for d in OVERLAID:
        upper = hostdir / "upper" / d
        upper.mkdir(parents=True, exist_ok=True)
        (hostdir / "work" / d).mkdir(parents=True, exist_ok=True)
        # the root of an overlay takes its owner and mode from the upper dir
        st = os.stat("/" + d)
        os.chown(upper, st.st_uid, st.st_gid)
        os.chmod(upper, stat.S_IMODE(st.st_mode))
    fmt = {
        "name": host.name,
        "kind": host.kind,
        "address": host.address,
        "prefixlen": state.prefixlen,
        "subnet": state.subnet,
        "hostdir": shlex.quote(str(hostdir)),
        "router": INIT_ROUTER.strip() if host.kind == "router" else "",
    }
    put(hostdir / "init", INIT.format(**fmt), 0o755)
    put(hostdir / "fstab", fstab(hostdir, host.name))

    root = hostdir / "root"  # bind-mounted on /root: fresh, not the machine's (no pyenv in .bashrc)
    (root / ".ssh").mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    (root / ".ssh").chmod(0o700)
    put(root / ".ssh" / "authorized_keys", authorized_key + "\n", 0o600)
    for dot, content in _root_dotfiles().items():
        put(root / f".{dot}", content)

    upper = hostdir / "upper"
    etc = upper / "etc"
    put(etc / "hostname", host.name + "\n")
    put(etc / "hosts", hosts_file(state, host))
    ssh_dir = _dir_like(etc, Path("/etc"), "ssh")
    put(ssh_dir / "sshd_config", SSHD_CONFIG.format(**fmt))
    put(ssh_dir / "ssh_host_ed25519_key", host_key[0], 0o600)
    put(ssh_dir / "ssh_host_ed25519_key.pub", host_key[1] + "\n")
    for machine_key in Path("/etc/ssh").glob("ssh_host_*"):
        if not machine_key.name.startswith("ssh_host_ed25519_key") and not (ssh_dir / machine_key.name).exists():
            os.mknod(ssh_dir / machine_key.name, stat.S_IFCHR, os.makedev(0, 0))  # whiteout: hide the machine's keys
    # /sbin/init -> the lab init, so sysvinit tools (service, testinfra, Ansible) do not assume systemd
    sbin = _dir_like(upper / "usr", Path("/usr"), "sbin")
    (sbin / "init").unlink(missing_ok=True)
    os.symlink("/run/ofl/init", sbin / "init")
    if host.kind == "server":
        write_demoapp(upper, host.name)
    if host.kind == "router":
        frr_dir = _dir_like(etc, Path("/etc"), "frr")
        frr = _ids("frr", "frr")
        put(frr_dir / "daemons", FRR_DAEMONS.format(**fmt), 0o640, frr)
        put(frr_dir / "frr.conf", FRR_CONF.format(**fmt), 0o640, frr)
        put(frr_dir / "vtysh.conf", VTYSH_CONF, 0o640, _ids("frr", "frrvty"))


def write_demoapp(upper: Path, name: str) -> None:
    """A small demo application on every server, so each example runbook has something to act on:
    config in /etc/demoapp, data in /srv/demoapp, logs in /var/log/demoapp, scratch in /var/tmp/demoapp."""
    files = {
        "etc/demoapp/app.conf": f"# demoapp on {name}\nlisten = 0.0.0.0:8080\nworkers = 2\n",
        "etc/demoapp/conf.d/logging.conf": "level = info\n",
        "srv/demoapp/data/records.csv": "id,name\n" + "".join(f"{i},record-{i}\n" for i in range(1, 51)),
        "srv/demoapp/data/state.json": '{"version": 1}\n',
        "var/log/demoapp/current.log": "".join(f"2026-12-01T00:{i:02d}:00Z info request {i} ok\n"
                                               for i in range(60)),
        "var/tmp/demoapp/cache.tmp": "x" * 4096,
    }
    for rel, text in files.items():
        top, *middle, _ = Path(rel).parts
        # each directory level takes the owner and mode of the machine's own directory, where it has one
        _dir_like(upper / top, Path("/" + top), str(Path(*middle)))
        write_file(upper / rel, text, 0o644, None, atomic=False)


# -- for clients ---------------------------------------------------------------------


def known_hosts(state: LabState, host_keys: dict[str, str]) -> str:
    lines = []
    for h in state.hosts:
        keytype, blob = host_keys[h.name].split()[:2]
        lines.append(f"{h.address} {keytype} {blob}")
    return "\n".join(lines) + "\n"


def ssh_config(state: LabState, private_key: Path, known_hosts_path: Path) -> str:
    out = [f"# opsflow lab {state.name}: use with `ssh -F {private_key.parent / 'ssh_config'} srv1`", ""]
    for h in state.hosts:
        user = "root" if h.kind == "server" else "admin"
        out += [f"Host {h.name} {h.address}", f"  HostName {h.address}", f"  User {user}", ""]
    patterns = " ".join([h.name for h in state.hosts] + [h.address for h in state.hosts])
    q = _ssh_quote
    out += [
        f"Host {patterns}",
        f"  IdentityFile {q(private_key)}",
        "  IdentitiesOnly yes",
        f"  UserKnownHostsFile {q(known_hosts_path)}",
        "  GlobalKnownHostsFile /dev/null",
        "  StrictHostKeyChecking yes",
        "  CheckHostIP no",
        "  HashKnownHosts no",
        "  KexAlgorithms curve25519-sha256",
        "  ServerAliveInterval 2",
        "  ServerAliveCountMax 3",
        "  ConnectTimeout 5",
        "  BatchMode yes",
        "  LogLevel ERROR",
        "",
    ]
    return "\n".join(out)


def _ssh_quote(path: Path) -> str:
    s = str(path)
    if '"' in s:
        raise LabError(f"state dir path must not contain a double quote: {s}")
    return f'"{s}"' if any(c.isspace() for c in s) else s


def inventory(state: LabState, private_key: Path, known_hosts_path: Path) -> str:
    servers = {h.name: {"ansible_host": h.address} for h in state.hosts if h.kind == "server"}
    routers = {h.name: {"ansible_host": h.address} for h in state.hosts if h.kind == "router"}
    doc = {
        "all": {
            "vars": {
                "ansible_ssh_private_key_file": str(private_key),
                "opsflow_known_hosts": str(known_hosts_path),
            },
            "children": {
                "servers": {
                    "vars": {
                        "ansible_user": "root",
                        "platform": "linux",
                        "ansible_python_interpreter": "/usr/bin/python3",
                    },
                    "hosts": servers,
                },
                "routers": {
                    "vars": {"ansible_user": "admin", "platform": "frr"},
                    "hosts": routers,
                },
            },
        }
    }
    header = f"# opsflow lab {state.name} ({state.subnet}) -- written by `opsflow lab up`\n"
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
