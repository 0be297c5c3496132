"""The local lab: real OpenSSH servers and FRRouting routers in namespaces of this machine.

``Lab(state_dir, name).up(servers, routers)`` builds, as root and without Docker:

* one bridge ``ofl-<short>`` in the root namespace holding ``.1`` of a private /24
  (10.250.x.0/24, chosen not to overlap any route of the machine); the root
  namespace reaches every host over it, forwarding stays off;
* per host a network namespace ``ofl-<name>-srvN`` / ``-rtrN`` with a veth on the
  bridge, plus its own mount, UTS and PID namespaces (``unshare``) whose PID 1 is
  the host's init script (``<state>/hosts/<host>/init``). Its ``fstab`` mounts
  overlayfs over /etc /var /usr /home /opt /srv (writes stay in
  ``<state>/hosts/<host>/upper``, pre-filled by ``up`` with the host's hostname,
  /etc/hosts, sshd config and ed25519 host key, and /sbin/init -> the lab init so
  sysvinit ``service`` works), a private /run and /tmp, and a fresh /root; then it
  starts sshd on the host's address. Servers ``.11``, ``.12``, ...; routers ``.250``,
  ``.249``, ... (up to 220 servers and 20 routers). ``<state>/hosts`` is a tmpfs of
  the lab's own (thousands of small files; on ext4, inode allocation was the largest
  cost of a 200-host ``up``), so what hosts write is held in RAM until ``down``. The
  lab links carry IPv4 only (no IPv6 router solicitations/DAD/MLD flooding the LAN).
* routers also run FRR 8.4 (zebra, staticd, ospfd; OSPF area 0 on eth0, hello 1 s,
  dead 3 s, retransmit 1 s: adjacencies are Full ~4.5 s after ``up``) and have a user ``admin``
  whose login shell is vtysh (Netmiko ``cisco_ios``). Root may log in with the lab
  key on every host (on routers it gets bash, for debugging).

It writes an ed25519 client key, ``known_hosts`` (every host key, by address),
``ssh_config`` (strict host key checking) and an Ansible-style ``inventory.yml``.
``down`` kills the recorded pids (each host's init, then its ``unshare``: the whole
PID namespace goes), anything else in the lab's namespaces, and removes namespaces,
links, the tmpfs and the files; it also finds leftovers by name, so it is safe
after a crashed ``up``.

Measured on the project machine (Debian 12 VM, 2 cores, 24 GiB, kernel 6.18), with
another engineer's workload running (load 3-9, so +-15 %). ``up`` = from nothing to
every sshd listening and vtysh answering on the routers; memory at the end of ``up``:

=======================  ======  =========  ========  ========  =================
lab                      up      processes  RSS sum   PSS sum   MemAvailable drop
=======================  ======  =========  ========  ========  =================
2 servers + 2 routers    0.55 s  24         96 MiB    40 MiB    ~30 MiB
4 servers + 2 routers    0.46 s  32         116 MiB   43 MiB    ~30 MiB
200 servers + 2 routers  5.6 s   816        2.0 GiB   380 MiB   ~500 MiB
=======================  ======  =========  ========  ========  =================

No light mode: every server is a full host (4 processes: unshare, init, its sleep,
sshd; ~10 MiB RSS but ~1.8 MiB PSS, the binaries' pages being shared); a router adds
watchfrr, zebra, staticd and ospfd. ``down``: 0.15 s for 2+2, 0.7 s for 200+2.
``status`` of 202 hosts: ~1.8 s (one SSH banner per host, in parallel).
"""

from __future__ import annotations

from opsflow.lab.core import FAULT_MODES, FaultMode, HostStatus, Lab

__all__ = ["FAULT_MODES", "FaultMode", "HostStatus", "Lab"]
