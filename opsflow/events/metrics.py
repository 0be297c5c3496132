"""The daemon's Prometheus metrics (text exposition format 0.0.4), without a client library."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

from opsflow.events.models import REASONS

Labels = tuple[tuple[str, str], ...]
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)

FAMILIES: dict[str, tuple[str, str]] = {  # name → (type, help)
    "opsflow_events_received_total": ("counter", "Events received, by source."),
    "opsflow_events_matched_total": ("counter", "Events that matched a rule, by rule."),
    "opsflow_events_suppressed_total": ("counter", "Matched events (or actions) that started no run, by reason."),
    "opsflow_requests_rejected_total": ("counter", "HTTP requests and syslog packets refused, by reason."),
    "opsflow_runs_started_total": ("counter", "Remediation runs started, by rule."),
    "opsflow_runs_finished_total": ("counter", "Remediation runs finished, by rule and status."),
    "opsflow_runs_canceled_total": ("counter", "Queued remediations canceled before they started, by reason."),
    "opsflow_event_queue_depth": ("gauge", "Remediations waiting for a worker."),
    "opsflow_event_queue_capacity": ("gauge", "Remediations the queue holds at most."),
    "opsflow_runs_running": ("gauge", "Remediation runs in progress."),
    "opsflow_breaker_open": ("gauge", "1 when the rule's circuit breaker is open."),
    "opsflow_event_to_start_seconds": ("histogram", "Seconds from an event's receipt to the start of its run."),
    "opsflow_event_to_end_seconds": ("histogram", "Seconds from an event's receipt to the end of its run."),
}


def _labels(labels: dict[str, str] | None) -> Labels:
    return tuple(sorted((labels or {}).items()))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt(labels: Labels, extra: tuple[tuple[str, str], ...] = ()) -> str:
    items = labels + extra
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in items) + "}" if items else ""


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, dict[Labels, float]] = {name: {} for name in FAMILIES}
        self._hist: dict[str, dict[Labels, list[float]]] = {}  # name → labels → bucket counts + [sum, count]
        self._gauges: dict[str, Callable[[], dict[Labels, float]]] = {}
        for reason in REASONS:
            self._values["opsflow_events_suppressed_total"][(("reason", reason),)] = 0.0

    def inc(self, name: str, labels: dict[str, str] | None = None, by: float = 1.0) -> None:
        with self._lock:
            series = self._values[name]
            key = _labels(labels)
            series[key] = series.get(key, 0.0) + by

    def set(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        with self._lock:
            self._values[name][_labels(labels)] = value

    def gauge(self, name: str, read: Callable[[], dict[Labels, float]]) -> None:
        """A gauge read when scraped."""
        self._gauges[name] = read

    def observe(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        with self._lock:
            series = self._hist.setdefault(name, {})
            counts = series.setdefault(_labels(labels), [0.0] * (len(LATENCY_BUCKETS) + 2))
            for i, bound in enumerate(LATENCY_BUCKETS):
                if value <= bound:
                    counts[i] += 1
            counts[-2] += value
            counts[-1] += 1

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        with self._lock:
            return self._values[name].get(_labels(labels), 0.0)

    def render(self) -> str:
        gauges = {name: read() for name, read in self._gauges.items()}
        lines: list[str] = []
        with self._lock:
            for name, (kind, help_text) in FAMILIES.items():
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
                if kind == "histogram":
                    for labels, counts in sorted(self._hist.get(name, {}).items()):
                        for bound, n in zip(LATENCY_BUCKETS, counts, strict=False):
                            lines.append(f"{name}_bucket{_fmt(labels, (('le', _num(bound)),))} {_num(n)}")
                        lines.append(f"{name}_bucket{_fmt(labels, (('le', '+Inf'),))} {_num(counts[-1])}")
                        lines.append(f"{name}_sum{_fmt(labels)} {_num(counts[-2])}")
                        lines.append(f"{name}_count{_fmt(labels)} {_num(counts[-1])}")
                    continue
                series = gauges.get(name, self._values[name])
                for labels, v in sorted(series.items()):
                    lines.append(f"{name}{_fmt(labels)} {_num(v)}")
        return "\n".join(lines) + "\n"
