"""A device simulator for the lab: SSH servers (asyncssh) that answer as network platforms do.

Cisco IOS / IOS-XE / NX-OS / IOS-XR, Arista EOS, Junos, FortiOS, PAN-OS, RouterOS and AOS-CX,
each from a small YAML of its recorded behaviour (``platforms/<platform>.yaml``: prompts, paging,
command outputs, the show-config banner with its volatile lines, errors) plus its config-mode
semantics (``opsflow.platforms.edit``) with a mutable running config. Netmiko drives it for real,
host keys checked against the ``known_hosts`` it writes. See ``server`` for how to start it.
"""
