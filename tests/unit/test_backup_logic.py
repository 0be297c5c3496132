from __future__ import annotations

from datetime import UTC, datetime

from opsflow.backup.archives import retained
from opsflow.backup.configs import restore_delta

RUNNING = """\
frr version 8.4.4
hostname r1
ip route 10.0.0.0/8 Null0
ip route 192.0.2.0/24 Null0
!
interface eth0
 description lan
 ip ospf cost 50
exit
!
router ospf
 network 10.0.0.0/24 area 0
exit
!
end
"""
TARGET = """\
frr version 8.4.4
hostname r1
ip route 10.0.0.0/8 Null0
!
interface eth0
 description lan
exit
!
router bgp 65000
 neighbor 10.0.0.2 remote-as 65001
exit
!
end
"""


def test_restore_delta() -> None:
    assert restore_delta(RUNNING, TARGET) == [
        "no ip route 192.0.2.0/24 Null0", "no router ospf", "interface eth0", "no ip ospf cost 50", "exit",
        "router bgp 65000", "neighbor 10.0.0.2 remote-as 65001", "exit"]
    assert restore_delta(TARGET, TARGET) == []
    assert restore_delta(RUNNING.replace("hostname r1", "hostname r2"), RUNNING) == ["hostname r1"]


def ts(day: str) -> float:
    return datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp()


def test_retention_gfs() -> None:
    items = [(f"b{i:02d}", ts(f"2026-10-{i:02d}T03:00:00")) for i in range(1, 32)]
    items += [("b31b", ts("2026-10-31T15:00:00"))]
    assert retained(items, 2) == {"b31b", "b31"}
    assert retained(items, None, daily=3) == {"b31b", "b30", "b29"}
    # ISO weeks of October 2026: newest backup of each of the last 2 weeks
    assert retained(items, None, weekly=2) == {"b31b", "b25"}
    assert retained(items, 1, monthly=1) == {"b31b"}
    assert retained(items, None) == {i for i, _ in items}
