"""`python -m bench`: bring up the bench lab, run the benchmarks, print and record the table.

Options: ``--quick`` (tiny sizes: proves the suite runs), ``--only NAME`` (repeatable or
comma-separated: step, fanout, dispatch, ansible, network, store, cli, events, backups, schedule,
reports), ``--out DIR``
for the JSON record (default bench/results/), ``--readme PATH`` for the table (default
bench/README.md for a full run; a quick run updates no README unless given one),
``--keep-lab``. A full run of only some benchmarks keeps, in the README's table, the rows
of the others from the latest full record under ``--out`` that has them (``--no-merge``:
only this run's rows).
A benchmark never asserts a time. Exit 0 when every selected benchmark ran, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import (
    b_ansible,
    b_backups,
    b_cli,
    b_dispatch,
    b_events,
    b_fanout,
    b_network,
    b_reports,
    b_schedule,
    b_step,
    b_store,
)
from bench.core import BENCH_DIR, Figure, loadavg, machine
from bench.env import FULL, QUICK, BenchEnv, bring_up_lab
from bench.report import earlier_runs, render_section, table_order, update_readme, write_json

BENCHES: dict[str, tuple[Callable[[BenchEnv], list[Figure]], str]] = {
    # name: (run, what it needs)
    "cli": (b_cli.run, ""),
    "store": (b_store.run, ""),
    "step": (b_step.run, "servers"),
    "fanout": (b_fanout.run, "servers"),
    "dispatch": (b_dispatch.run, "servers"),
    "ansible": (b_ansible.run, "servers"),
    "network": (b_network.run, "routers"),
    "events": (b_events.run, ""),
    "backups": (b_backups.run, "routers"),
    "schedule": (b_schedule.run, ""),
    "reports": (b_reports.run, ""),
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes (seconds, not minutes): proves the suite runs")
    p.add_argument("--only", action="append", default=[], metavar="NAME",
                   help=f"run only these benchmarks ({', '.join(BENCHES)}); repeatable or comma-separated")
    p.add_argument("--lab-name", default="bench", help="name of the lab (default bench)")
    p.add_argument("--state-dir", default=None, help="the lab's state dir (default /tmp/opsflow-bench/lab-NAME)")
    p.add_argument("--keep-lab", action="store_true", help="leave the lab up at the end")
    p.add_argument("--out", default=str(BENCH_DIR / "results"), help="directory of the JSON records")
    p.add_argument("--readme", default=None, help="README whose table to update (full run: bench/README.md)")
    p.add_argument("--no-readme", action="store_true", help="update no README")
    p.add_argument("--no-merge", action="store_true",
                   help="a partial full run: the README table holds only this run's rows (default: the other "
                        "benchmarks' rows are kept from the latest full record that has them)")
    a = p.parse_args(argv)
    names = [n.strip() for item in a.only for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        p.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHES)}")
    a.selected = names or list(BENCHES)
    return a


def lab_problem() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root (Linux namespaces)"
    try:
        from opsflow.lab import preflight

        preflight.check()
    except Exception as exc:  # noqa: BLE001 - any reason the lab cannot run is reported
        return f"lab unavailable: {exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    size = QUICK if a.quick else FULL
    t_start = time.time()

    def say(msg: str) -> None:
        print(f"[{time.time() - t_start:6.1f}s] {msg}", file=sys.stderr, flush=True)

    work = Path(tempfile.mkdtemp(prefix="opsflow-bench-"))
    env = BenchEnv(size=size, work=work, say_fn=say)
    doc: dict[str, Any] = {"suite": "opsflow benchmarks (issue 7)", "size": size.name,
                           "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(t_start)),
                           "selected": a.selected, "machine": machine(), "benches": {}, "errors": {}}
    say(f"opsflow benchmarks, {size.name} size: {', '.join(a.selected)}")
    figs: list[Figure] = []
    needs_lab = [n for n in a.selected if BENCHES[n][1]]
    problem = lab_problem() if needs_lab else None
    lab = None
    try:
        for name in [n for n in a.selected if not BENCHES[n][1]]:
            figs += _run_one(name, env, doc, say)
        if needs_lab and problem:
            for name in needs_lab:
                doc["errors"][name] = f"skipped: {problem}"
            say(f"skipping {', '.join(needs_lab)}: {problem}")
        elif needs_lab:
            servers = size.servers_needed if any(BENCHES[n][1] == "servers" for n in needs_lab) else 0
            routers = size.routers_for(needs_lab)
            state_dir = Path(a.state_dir or f"/tmp/opsflow-bench/lab-{a.lab_name}")
            say(f"lab {a.lab_name}: {servers} servers, {routers} routers in {state_dir}")
            t0 = time.perf_counter()
            lab = bring_up_lab(state_dir, a.lab_name, servers, routers, lambda m: say(f"  lab: {m}"))
            doc["lab"] = {"name": a.lab_name, "shape": f"{servers} servers + {routers} routers",
                          "up_s": round(time.perf_counter() - t0, 2)}
            env.lab = lab
            time.sleep(0 if a.quick else 10)  # let the load of bringing 220 hosts up settle
            for name in needs_lab:
                figs += _run_one(name, env, doc, say)
    finally:
        if lab is not None and not a.keep_lab:
            say("lab down")
            try:
                lab.down()
            except Exception as exc:  # noqa: BLE001 - the results are still written
                say(f"lab down failed: {exc}")
        shutil.rmtree(work, ignore_errors=True)

    doc["loadavg_at_end"] = loadavg()
    doc["took_s"] = time.time() - t_start
    out_dir = Path(a.out)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(t_start))
    json_path = out_dir / f"{stamp}-{size.name}.json"
    write_json(json_path, doc, figs)
    try:
        shown = str(json_path.resolve().relative_to(BENCH_DIR.parent))
    except ValueError:
        shown = str(json_path)
    figs = table_order(figs, list(BENCHES))
    section = render_section(doc, figs, shown)
    print(section)
    readme = None if a.no_readme else (a.readme or (None if a.quick else str(BENCH_DIR / "README.md")))
    if readme:
        others = [n for n in BENCHES if n not in a.selected]
        if others and not a.quick and not a.no_merge:
            # a partial full run: keep the rows of the benchmarks it did not run from earlier full records
            earlier = earlier_runs(out_dir, others, exclude=json_path)
            section = render_section(doc, figs, shown, earlier=earlier, order=list(BENCHES))
            kept = sorted({n for _, _, fs in earlier for n in {f.bench for f in fs}})
            say(f"README table: this run's rows + the rows of {', '.join(kept) or 'nothing'} from earlier "
                f"full records")
        update_readme(Path(readme), section)
        say(f"table written to {readme}")
    say(f"record written to {json_path}")
    return 1 if doc["errors"] else 0


def _run_one(name: str, env: BenchEnv, doc: dict[str, Any], say: Callable[[str], None]) -> list[Figure]:
    say(f"{name}: start (load {loadavg()})")
    t0 = time.perf_counter()
    entry: dict[str, Any] = {"load_before": loadavg()}
    figs: list[Figure] = []
    try:
        figs = BENCHES[name][0](env)
    except Exception:  # noqa: BLE001 - one broken benchmark does not lose the others
        doc["errors"][name] = traceback.format_exc()
        say(f"{name}: FAILED\n{doc['errors'][name]}")
    entry.update(took_s=round(time.perf_counter() - t0, 1), load_after=loadavg(), figures=len(figs))
    doc["benches"][name] = entry
    say(f"{name}: {len(figs)} figures in {entry['took_s']} s")
    return figs


if __name__ == "__main__":
    sys.exit(main())
