"""The KPI report as one self-contained HTML page, for a service owner to present.

:func:`render_html` takes the report dict of :mod:`opsflow.reports` and returns a page that needs
nothing but itself: the charts are inline SVG drawn by matplotlib's SVG backend (text kept as text,
``svg.fonttype = 'none'``), the CSS is in the page, no script, no font, nothing to fetch. The page
is the Jinja2 template ``templates/report.html.j2`` with autoescape on: every string from the store
(runbook, host, operator names, review titles) is data. Matplotlib is imported only when a chart is
drawn, so other commands do not pay for it.

A section without data says so ("no data in this period") instead of drawing an empty chart.
"""

from __future__ import annotations

import functools
import io
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from opsflow.reports.text import (
    NO_DATA,
    event_rows,
    fmt_duration,
    fmt_num,
    fmt_pct,
    objective_rows,
    review_fields,
    summary,
)
from opsflow.textsafe import for_xml

if TYPE_CHECKING:
    import jinja2
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Okabe–Ito: tells apart for colour-blind readers, and stays distinct printed in grey
OK, FAIL, INK, MUTED, ACCENT, GRID = "#0072B2", "#D55E00", "#1F2933", "#6B7280", "#E69F00", "#D9DEE5"
_MAX_LABEL = 36
_MAX_HOSTS = 40


# -- charts -----------------------------------------------------------------------------------

def _label(value: Any) -> str:
    text = for_xml(value).replace("\n", " ")
    return text if len(text) <= _MAX_LABEL else text[: _MAX_LABEL - 1] + "…"


@contextmanager
def _style(salt: str) -> Iterator[None]:
    import matplotlib

    with matplotlib.rc_context({
            "svg.fonttype": "none", "svg.hashsalt": f"opsflow-{salt}", "text.parse_math": False,
            "font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans", "Liberation Sans", "Arial"],
            "font.size": 10, "axes.edgecolor": MUTED, "axes.labelcolor": INK, "xtick.color": INK,
            "ytick.color": INK, "axes.spines.top": False, "axes.spines.right": False,
            "axes.titleweight": "bold", "axes.titlesize": 10.5, "axes.titlelocation": "left",
            "legend.frameon": False}):
        yield


def _svg(fig: Figure, name: str, label: str) -> str:
    """The figure as an ``<svg>`` element to inline: no XML prolog, no doctype, no metadata."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight", pad_inches=0.08)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg, count=1, flags=re.S)
    from markupsafe import escape

    return svg.replace("<svg ", f'<svg class="chart chart-{name}" role="img" aria-label="{escape(label)}" ', 1)


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _week_label(week: Any) -> str:
    try:
        return date.fromisoformat(str(week)[:10]).strftime("%d %b")
    except ValueError:
        return _label(week)


def trends_chart(trends: list[dict[str, Any]]) -> str | None:
    if not any((t.get("runs") or 0) for t in trends):
        return None
    with _style("trends"):
        fig = _new_figure(10, 4.4)
        rate_ax, ax = fig.subplots(2, 1, sharex=True, height_ratios=[1, 2.2])
        x = list(range(len(trends)))
        ok = [t.get("succeeded") or 0 for t in trends]
        failed = [t.get("failed") or 0 for t in trends]
        other = [max(0, (t.get("runs") or 0) - a - b) for t, a, b in zip(trends, ok, failed, strict=True)]
        ax.bar(x, ok, color=OK, width=0.62, label="succeeded")
        ax.bar(x, failed, bottom=ok, color=FAIL, width=0.62, label="failed", hatch="///", edgecolor="white",
               linewidth=0)
        if any(other):
            ax.bar(x, other, bottom=[a + b for a, b in zip(ok, failed, strict=True)], color=GRID, width=0.62, label="other")
        for xi, t in zip(x, trends, strict=True):
            ax.annotate(fmt_num(t.get("runs") or 0), (xi, t.get("runs") or 0), xytext=(0, 3),
                        textcoords="offset points", ha="center", fontsize=8.5, color=MUTED)
        ax.set_xticks(x, [_week_label(t.get("week")) for t in trends], parse_math=False)
        ax.set_ylabel("runs per week")
        ax.set_xlabel("week starting (Monday)")
        ax.set_ylim(0, max(t.get("runs") or 0 for t in trends) * 1.15)
        ax.yaxis.grid(True, color=GRID, linewidth=0.8)
        ax.set_axisbelow(True)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9)
        rates = [(t["success_rate"] * 100 if isinstance(t.get("success_rate"), int | float) else math.nan)
                 for t in trends]
        rate_ax.plot(x, rates, color=INK, marker="o", markersize=4, linewidth=1.6)
        for xi, r in zip(x, rates, strict=True):
            if not math.isnan(r):
                rate_ax.annotate(fmt_pct(r / 100), (xi, r), textcoords="offset points", xytext=(0, 6),
                                 ha="center", fontsize=8.5, color=INK, parse_math=False)
        low = min([r for r in rates if not math.isnan(r)] or [0])
        rate_ax.set_ylim(max(0, min(low - 5, 90)), 106)
        rate_ax.set_ylabel("success rate (%)")
        rate_ax.yaxis.grid(True, color=GRID, linewidth=0.8)
        rate_ax.tick_params(axis="x", length=0)
        return _svg(fig, "trends", "Runs per week, succeeded and failed, with the success rate")


def _bound(le: Any) -> float:
    try:
        return float(le)
    except (TypeError, ValueError):
        return math.inf  # "+Inf", None


def _compact(seconds: float) -> str:
    """A bucket bound: ``30 s``, ``5 min``, ``1 h``, ``2 d``."""
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return fmt_duration(seconds)


def _bucket_labels(bounds: list[float], lower: float) -> list[str]:
    labels, previous = [], lower
    for bound in bounds:
        labels.append(f"> {_compact(previous)}" if math.isinf(bound) else f"≤ {_compact(bound)}")
        previous = bound
    return labels


def _bucket_position(value: float, bounds: list[float], lower: float) -> float:
    """Where ``value`` falls on the bucket axis (bar ``i`` spans ``i-0.5 … i+0.5``), interpolated in its bucket."""
    for i, upper in enumerate(bounds):
        if value <= upper:
            frac = 0.5 if math.isinf(upper) or upper <= lower else (value - lower) / (upper - lower)
            return i - 0.5 + max(0.0, min(1.0, frac))
        lower = upper
    return len(bounds) - 0.5


def _trim(buckets: list[dict[str, Any]], keep: list[float]) -> tuple[list[float], list[int], float]:
    """Bounds and counts from the first to the last bucket with runs (or holding a p50/p95), and the lower bound."""
    bounds = [_bound(b.get("le")) for b in buckets]
    counts = [int(b.get("count") or 0) for b in buckets]
    used = [i for i, c in enumerate(counts) if c]
    used += [next((i for i, b in enumerate(bounds) if v <= b), len(bounds) - 1) for v in keep]
    first, last = min(used), max(used)
    return bounds[first:last + 1], counts[first:last + 1], bounds[first - 1] if first else 0.0


def durations_chart(distributions: dict[str, list[dict[str, Any]]], runbooks: list[dict[str, Any]]) -> str | None:
    shown = [(name, buckets) for name, buckets in distributions.items() if any((b.get("count") or 0) for b in buckets)]
    if not shown:
        return None
    stats = {rb.get("name"): rb for rb in runbooks}
    cols = 2 if len(shown) > 1 else 1
    rows = math.ceil(len(shown) / cols)
    with _style("durations"):
        fig = _new_figure(10, 2.4 * rows + 0.2)
        axes = fig.subplots(rows, cols, squeeze=False)
        for ax, (name, buckets) in zip(axes.flat, shown, strict=False):
            rb = stats.get(name) or {}
            marks = [(float(rb[key]), tag, colour, style, y) for key, tag, colour, style, y in
                     (("duration_p50_s", "p50", INK, "--", 1.0), ("duration_p95_s", "p95", FAIL, ":", 0.86))
                     if isinstance(rb.get(key), int | float)]
            bounds, counts, lower = _trim(buckets, [m[0] for m in marks])
            x = list(range(len(bounds)))
            ax.bar(x, counts, color=OK, width=0.8)
            ax.set_xticks(x, _bucket_labels(bounds, lower), fontsize=8.5, parse_math=False)
            ax.set_title(_label(name), parse_math=False)
            ax.set_ylabel("runs")
            ax.set_xlim(-0.6, max(len(bounds), 4) - 0.4)
            ax.set_ylim(0, max(counts) * 1.3)
            ax.yaxis.grid(True, color=GRID, linewidth=0.8)
            ax.set_axisbelow(True)
            for value, tag, colour, style, y in marks:
                pos = _bucket_position(value, bounds, lower)
                ax.axvline(pos, color=colour, linestyle=style, linewidth=1.4)
                ax.annotate(f"{tag} {fmt_duration(value)}", (pos, y), xycoords=("data", "axes fraction"),
                            xytext=(4, -1), textcoords="offset points", va="top", fontsize=8.5,
                            color=colour, parse_math=False, bbox={"facecolor": "white", "edgecolor": "none",
                                                                 "pad": 1, "alpha": 0.85})
        for ax in list(axes.flat)[len(shown):]:
            ax.set_visible(False)
        fig.supxlabel("run duration (bucket upper bound)", fontsize=9.5, color=INK)
        return _svg(fig, "durations", "Run durations per runbook, with p50 and p95")


def heatmap_chart(heatmap: dict[str, Any]) -> tuple[str | None, int]:
    """The chart, and how many hosts were left out (only the most failing are drawn)."""
    hosts, runbooks = list(heatmap.get("hosts") or []), list(heatmap.get("runbooks") or [])
    counts = [[int(c or 0) for c in row] for row in heatmap.get("failures") or []]
    if not hosts or not runbooks or not any(any(row) for row in counts):
        return None, 0
    order = sorted(range(len(hosts)), key=lambda i: -sum(counts[i]))[:_MAX_HOSTS]
    order.sort()
    left_out = len(hosts) - len(order)
    hosts, counts = [hosts[i] for i in order], [counts[i] for i in order]
    top = max(max(row) for row in counts)
    with _style("heatmap"):
        fig = _new_figure(min(10, 2.2 + 1.15 * len(runbooks)), 0.9 + 0.36 * len(hosts))
        ax = fig.add_subplot()
        image = ax.imshow(counts, cmap="Reds", vmin=0, vmax=max(top, 1), aspect="auto")
        for y, row in enumerate(counts):
            for x, c in enumerate(row):
                ax.text(x, y, str(c), ha="center", va="center", fontsize=9,
                        color="white" if c > 0.55 * top else (INK if c else MUTED), parse_math=False)
        ax.set_xticks(range(len(runbooks)), [_label(r) for r in runbooks], rotation=25, ha="right",
                      parse_math=False)
        ax.set_yticks(range(len(hosts)), [_label(h) for h in hosts], parse_math=False)
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        bar = fig.colorbar(image, ax=ax, shrink=0.8, pad=0.02)
        bar.set_label("failed runs")
        bar.outline.set_visible(False)
        return _svg(fig, "heatmap", "Failed runs per host and runbook"), left_out


def events_chart(events: dict[str, Any]) -> str | None:
    if not events.get("received"):
        return None
    rows = [(label, int(n or 0)) for label, n in event_rows(events)]
    colours = [MUTED, OK, OK, FAIL] + [GRID] * (len(rows) - 4)
    with _style("events"):
        fig = _new_figure(5.4, 0.7 + 0.3 * len(rows))
        ax: Axes = fig.add_subplot()
        y = list(range(len(rows)))[::-1]
        ax.barh(y, [n for _, n in rows], color=colours, height=0.65)
        ax.set_yticks(y, [_label(label) for label, _ in rows], parse_math=False)
        for yi, (_, n) in zip(y, rows, strict=True):
            ax.annotate(fmt_num(n), (n, yi), xytext=(4, 0), textcoords="offset points", va="center", fontsize=9)
        ax.set_xlabel("events")
        ax.set_xlim(0, max(n for _, n in rows) * 1.12 or 1)
        ax.xaxis.grid(True, color=GRID, linewidth=0.8)
        ax.set_axisbelow(True)
        return _svg(fig, "events", "Events by outcome")


# -- the page ---------------------------------------------------------------------------------

def _finalize(value: Any) -> Any:
    """Every value printed by the template: None or absent as a dash, controls made visible (Markup stays Markup)."""
    import jinja2
    from markupsafe import Markup

    if value is None or isinstance(value, jinja2.Undefined):
        return "—"
    if isinstance(value, Markup):
        return value
    return for_xml(value) if isinstance(value, str) else value


@functools.cache
def _environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("opsflow.reports", "templates"), autoescape=True,
                             finalize=_finalize, undefined=jinja2.ChainableUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters.update(duration=fmt_duration, pct=fmt_pct, num=fmt_num, when=when)
    return env


def when(value: Any) -> str:
    """An ISO 8601 instant as ``3 Mar 2025, 06:00 UTC``; anything else as it is."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return f"{moment.day} {moment:%b %Y, %H:%M}" + (" UTC" if moment.tzinfo is not None else "")


def _days(since: Any, until: Any) -> float | None:
    try:
        return (datetime.fromisoformat(str(until)) - datetime.fromisoformat(str(since))).total_seconds() / 86400
    except (TypeError, ValueError):
        return None


def _clamp(value: Any, low: float = 0.0, high: float = 1.0) -> float:
    return max(low, min(high, float(value))) if isinstance(value, int | float) else 0.0


def _objectives(report: dict[str, Any]) -> list[dict[str, Any]]:
    from opsflow.reports.text import fmt_burn, fmt_measure

    rows = []
    for o in objective_rows(report):
        budget = o.get("budget_remaining")
        level = "none" if budget is None else "good" if budget > 0.25 else "low" if budget > 0 else "spent"
        burn = o.get("burn_rate")
        good, total = o.get("good"), o.get("total")
        sample = (f"{fmt_num(good)} of {fmt_num(total)}" if isinstance(good, int) and total else
                  f"{fmt_num(total)} measured" if total else "nothing measured" if total == 0 else "")
        rows.append({"service": o.get("service"), "runbooks": o["runbooks"], "sample": sample,
                     "name": o.get("name"), "description": o.get("description") or "",
                     "target": fmt_measure(o.get("target"), o.get("unit")),
                     "actual": fmt_measure(o.get("actual"), o.get("unit")),
                     "met": None if o.get("actual") is None else o.get("met"),
                     "budget": fmt_pct(budget, 0), "budget_width": round(_clamp(budget) * 100, 1), "level": level,
                     "burn": fmt_burn(burn), "burn_hot": isinstance(burn, int | float) and burn > 1})
    return rows


def _versions(report: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for rb in report.get("runbooks") or []:
        versions = rb.get("versions") or []
        if len(versions) < 2:
            continue
        rows, previous = [], None
        for v in versions:
            row = {**v, "rate_delta": "", "p50_delta": ""}
            if previous is not None:
                a, b = previous.get("success_rate"), v.get("success_rate")
                if isinstance(a, int | float) and isinstance(b, int | float):
                    row["rate_delta"] = f"{(b - a) * 100:+.1f} pp"
                a, b = previous.get("duration_p50_s"), v.get("duration_p50_s")
                if isinstance(a, int | float) and isinstance(b, int | float) and a:
                    row["p50_delta"] = f"{(b - a) / a * 100:+.0f}%"
            rows.append(row)
            previous = v
        out.append({"name": rb.get("name"), "versions": rows})
    return out


def _schedule_entries(schedule: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for e in [*(schedule.get("entries") or []), {**schedule, "entry": None}]:
        slots = int(e.get("slots") or 0)
        parts = [(k, int(e.get(k) or 0)) for k in ("run_in_slot", "rescheduled", "missed", "skipped")]
        rows.append({**e, "adherence": (e.get("run_in_slot") or 0) / slots if slots else None,
                     "segments": [(k, round(n / slots * 100, 2)) for k, n in parts if n and slots]})
    return rows


def _backups(report: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for b in report.get("backups") or []:
        age, rpo = b.get("last_backup_age_s"), b.get("rpo_s")
        use = age / rpo if isinstance(age, int | float) and isinstance(rpo, int | float) and rpo else None
        rows.append({**b, "rpo_use": use, "rpo_width": round(_clamp((use or 0) / 2) * 100, 1)})
    return rows


def render_html(report: dict[str, Any]) -> str:
    runbooks = report.get("runbooks") or []
    heatmap_svg, hosts_left_out = heatmap_chart(report.get("heatmap") or {})
    charts = {"trends": trends_chart(report.get("trends") or []),
              "durations": durations_chart(report.get("distributions") or {}, runbooks),
              "heatmap": heatmap_svg, "events": events_chart(report.get("events") or {})}
    from markupsafe import Markup

    context = {
        "r": report, "s": summary(report), "days": _days(report.get("since"), report.get("until")), "no_data": NO_DATA, "hosts_left_out": hosts_left_out,
        "charts": {k: Markup(v) if v else None for k, v in charts.items()},
        "objectives": _objectives(report), "versions": _versions(report), "backups": _backups(report),
        "schedule_rows": _schedule_entries(report.get("schedule") or {}),
        "events": report.get("events") or {}, "event_rows": event_rows(report.get("events") or {}),
        "slow_runs": [{"runbook": rb.get("name"), **s} for rb in runbooks for s in rb.get("slow_runs") or []],
        "reviews": [review_fields(x) for x in report.get("reviews") or []],
        "reviews_due": [review_fields(x) for x in report.get("reviews_due") or []],
        "lessons": [(rb.get("name"), rb.get("lessons") or {}) for rb in runbooks
                    if any((rb.get("lessons") or {}).values())],
    }
    return _environment().get_template("report.html.j2").render(context)
