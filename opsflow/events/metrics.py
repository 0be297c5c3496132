"""The daemon's Prometheus metrics, on ``prometheus_client``: one ``CollectorRegistry`` per daemon.

Counters and histograms are ``prometheus_client`` objects in the daemon's own registry (never the
global one); gauges read when scraped (queue depth, runs in progress, open breakers) come from a
collector yielding ``GaugeMetricFamily``. Other collectors — the store's run metrics,
``opsflow.reports.metrics.StoreCollector`` — join the same registry with :meth:`Metrics.register`, so
``/metrics`` is one exposition. Label values are counts' keys only (sources, rules, reasons, statuses),
never event data. Known label values are exported at 0 from the start, so a series does not appear
only with its first increment (``rate()`` of a counter that starts at 1 misses that first event).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from opsflow.events.models import REASONS, SOURCES
from opsflow.results import RunStatus

Labels = tuple[tuple[str, str], ...]
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # what prometheus_client pairs with generate_latest's default output

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
LABELS: dict[str, tuple[str, ...]] = {  # name → label names (every family not here has none)
    "opsflow_events_received_total": ("source",),
    "opsflow_events_matched_total": ("rule",),
    "opsflow_events_suppressed_total": ("reason",),
    "opsflow_requests_rejected_total": ("reason",),
    "opsflow_runs_started_total": ("rule",),
    "opsflow_runs_finished_total": ("rule", "status"),
    "opsflow_runs_canceled_total": ("reason",),
    "opsflow_breaker_open": ("rule",),
}
# the label values known in advance, exported at 0 (opsflow.events.server refuses with these reasons)
REJECT_REASONS = ("unauthorized", "not_found", "method_not_allowed", "malformed", "length_required", "too_large",
                  "unsupported_media_type", "draining", "store", "syslog_source")
CANCEL_REASONS = ("resolved", "shutdown")
FINISHED_STATUSES = tuple(str(s) for s in RunStatus if s not in (RunStatus.RUNNING, RunStatus.WAITING))
KNOWN: dict[str, tuple[str, ...]] = {"opsflow_events_received_total": SOURCES,
                                     "opsflow_events_suppressed_total": REASONS,
                                     "opsflow_requests_rejected_total": REJECT_REASONS,
                                     "opsflow_runs_canceled_total": CANCEL_REASONS}


def _names(labels: Labels | dict[str, str] | None, names: tuple[str, ...]) -> list[str]:
    """Label values in the family's label order (a missing one is "")."""
    given = dict(labels or {})
    return [str(given.get(n, "")) for n in names]


class _Gauges:
    """The gauge families: values set, or read from a callback when scraped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.values: dict[str, dict[Labels, float]] = {}
        self.reads: dict[str, Callable[[], dict[Labels, float]]] = {}

    def describe(self) -> Iterator[Metric]:
        for name, (kind, help_text) in FAMILIES.items():
            if kind == "gauge":
                yield GaugeMetricFamily(name, help_text, labels=LABELS.get(name, ()))

    def collect(self) -> Iterator[Metric]:
        for name, (kind, help_text) in FAMILIES.items():
            if kind != "gauge":
                continue
            read = self.reads.get(name)
            if read is not None:
                series = read()
            else:
                with self._lock:
                    series = dict(self.values.get(name, {}))
            family = GaugeMetricFamily(name, help_text, labels=LABELS.get(name, ()))
            for labels, value in sorted(series.items()):
                family.add_metric(_names(labels, LABELS.get(name, ())), value)
            yield family


class _WithoutCreated:
    """A registry's families without the ``_created`` samples (text format 0.0.4 has no place for them)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            kept = Metric(family.name, family.documentation, family.type, family.unit)
            kept.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield kept


class Metrics:
    """The daemon's metrics in a registry of their own; ``render`` is the /metrics body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._counters: dict[str, Counter] = {}
        self._histograms: dict[str, Histogram] = {}
        self._gauges = _Gauges()
        for name, (kind, help_text) in FAMILIES.items():
            labels = LABELS.get(name, ())
            if kind == "counter":
                self._counters[name] = Counter(name, help_text, labels, registry=self.registry)
            elif kind == "histogram":
                self._histograms[name] = Histogram(name, help_text, labels, registry=self.registry,
                                                   buckets=LATENCY_BUCKETS)
        self.registry.register(self._gauges)
        for name, values in KNOWN.items():
            for value in values:
                self._counters[name].labels(value)

    def register(self, collector: Collector) -> None:
        """Another collector in the same registry (a clash of metric names raises ValueError)."""
        self.registry.register(collector)

    def known_rules(self, rules: Iterable[str]) -> None:
        """Export the per-rule counters at 0 for every rule loaded (they stay when a rule goes away)."""
        for rule in rules:
            self._counters["opsflow_events_matched_total"].labels(rule)
            self._counters["opsflow_runs_started_total"].labels(rule)
            for status in FINISHED_STATUSES:
                self._counters["opsflow_runs_finished_total"].labels(rule, status)

    def inc(self, name: str, labels: dict[str, str] | None = None, by: float = 1.0) -> None:
        counter = self._counters[name]
        (counter.labels(*_names(labels, LABELS[name])) if name in LABELS else counter).inc(by)

    def set(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        if FAMILIES[name][0] != "gauge":
            raise ValueError(f"{name} is a {FAMILIES[name][0]}, not a gauge")
        key = tuple(sorted((labels or {}).items()))
        with self._gauges._lock:
            self._gauges.values.setdefault(name, {})[key] = value

    def gauge(self, name: str, read: Callable[[], dict[Labels, float]]) -> None:
        """A gauge read when scraped: ``read()`` → {((label, value), ...): number}."""
        if FAMILIES[name][0] != "gauge":
            raise ValueError(f"{name} is a {FAMILIES[name][0]}, not a gauge")
        self._gauges.reads[name] = read

    def observe(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        histogram = self._histograms[name]
        (histogram.labels(*_names(labels, LABELS[name])) if name in LABELS else histogram).observe(value)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """A counter's or gauge's current value (0 when the series does not exist)."""
        wanted = {k: str(v) for k, v in (labels or {}).items()}
        source: Collector = self._gauges
        if name in self._counters:
            source = self._counters[name]
        for family in source.collect():
            for sample in family.samples:
                if sample.name == name and sample.labels == wanted:
                    return float(sample.value)
        return 0.0

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format (``CONTENT_TYPE``), every collector registered."""
        return generate_latest(_WithoutCreated(self.registry))

    def render(self) -> str:
        return self.exposition().decode()
