"""The local lab: real OpenSSH servers and FRRouting routers in namespaces of this machine.

``Lab(state_dir, name).up(servers, routers)`` builds, as root and without Docker:

* one bridge ``ofl-<short>`` in the root namespace holding ``.1`` of a private /24
  (10.250.x.0/24, chosen not to overlap any route of the machine); the root
  namespace reaches every host over it, forwarding stays off;
* per host a network namespace ``ofl-<name>-srvN`` / ``-rtrN`` with a veth on the
  bridge, plus its own mount, UTS and PID namespaces (``unshare``) whose PID 1 is
  the host's init script (``<state>/hosts/<host>/init``). It mounts overlayfs over
  /etc /var /usr /home /opt /srv (writes stay in ``<state>/hosts/<host>/upper``),
  private tmpfs on /run, /tmp and /root, sets the hostname and starts sshd on the
  host's address with its own ed25519 host key. Servers ``.11``, ``.12``, ...;
  routers ``.250``, ``.249``, ... (up to 220 servers and 20 routers).
* routers also run FRR 8.4 (zebra, staticd, ospfd; OSPF area 0 on eth0, hello 1 s,
  dead 4 s) and have a user ``admin`` whose login shell is vtysh.

It writes an ed25519 client key, ``known_hosts`` (every host key, by address),
``ssh_config`` (strict host key checking) and an Ansible-style ``inventory.yml``.
``down`` kills the recorded pids (SIGKILL to ``unshare`` ends a host's PID
namespace), anything else in the lab's namespaces, and removes namespaces, links
and files; it also finds leftovers by name, so it is safe after a crashed ``up``.

Measured on the project machine (Debian 12 VM, 2 cores, 24 GiB; kernel 6.18),
``up`` from nothing to every sshd answering (and vtysh on routers):

=======================  ==========  =========  ========  ==========
lab                      up time     processes  RSS sum   PSS sum
=======================  ==========  =========  ========  ==========
2 servers + 2 routers    0.95 s      22         89 MiB    24 MiB
4 servers + 2 routers    0.95 s      28         109 MiB   26 MiB
200 servers + 2 routers  6.9 s       616        1.73 GiB  0.21 GiB
=======================  ==========  =========  ========  ==========

Every host is a full host (no light mode): per server 3 processes (init, its
``sleep``, sshd), ~8.6 MiB RSS but ~1 MiB PSS since the binaries' pages are shared;
a router adds watchfrr, zebra, staticd and ospfd. ``down`` of 200 servers: ~3 s.
"""

from __future__ import annotations

from opsflow.lab.core import FAULT_MODES, FaultMode, HostStatus, Lab

__all__ = ["FAULT_MODES", "FaultMode", "HostStatus", "Lab"]
