"""6. CLI start: `opsflow --help` and `opsflow validate` on the example runbooks, against `python -c pass`.

The targets are on opsflow's own p50 (`--help` < 300 ms, issue 7; `validate` < 150 ms, issue 16); the
ratio to a bare interpreter start shows how much of it is opsflow. No lab needed: `validate` uses the
example inventory (inventory/hosts.yml), which declares the groups the example runbooks target.

`validate` is measured as a user meets it: again on unchanged files (the cache of validated runbooks under
$OPSFLOW_HOME/cache serves what depends on the files alone; targets and template variables are checked
against the inventory every time), and cold, the cache of validated runbooks emptied before each round
(the first validation after every runbook changed).
"""

from __future__ import annotations

import shutil

from bench.core import ROOT, Figure, Sample, check_target, figure, interleave, measured
from bench.env import BenchEnv

NAME = "cli"


def run(env: BenchEnv) -> list[Figure]:
    size = env.size
    os_env = env.env()
    runbook_cache = env.work / "home" / "cache" / "runbooks"

    def cmd(argv: list[str], expect: str = "") -> Sample:
        p = measured(argv, env=os_env, cwd=ROOT)
        ok = p.rc == 0 and expect in p.stdout
        return Sample(wall=p.wall, cpu=p.cpu, ok=ok, detail=f"rc {p.rc} {p.stderr[-300:]}")

    def cold(argv: list[str]) -> Sample:
        shutil.rmtree(runbook_cache, ignore_errors=True)
        return cmd(argv, "ok")

    runbooks = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "runbooks").glob("*.y*ml"))
    validate = env.opsflow("validate", *runbooks, "-i", "inventory/hosts.yml")
    env.say(f"  --help, validate ({len(runbooks)} runbooks; again and cold), python -c pass")
    s = interleave({
        "help": lambda: cmd(env.opsflow("--help"), "Usage"),
        "validate": lambda: cmd(validate, "ok"),
        "validate-cold": lambda: cold(validate),
        "pass": lambda: cmd([env.python, "-c", "pass"]),
    }, size.cli_rounds, size.warmup, env.say)
    ms = 1000.0
    figs = []
    for key, label, limit, issue in (
            ("help", "`opsflow --help`", 300.0, "issue 7"),
            ("validate", f"`opsflow validate` ({len(runbooks)} example runbooks, unchanged)", 150.0, "issue 16"),
            ("validate-cold", f"`opsflow validate` ({len(runbooks)} example runbooks), cache emptied", 0.0, "")):
        note = f"target is absolute: opsflow p50 < {limit:g} ms ({issue})" if limit else \
            "the first validation after the runbooks changed: YAML, models built, templates compiled"
        fig = figure(NAME, f"CLI start: {label}", s, key, "pass", lambda x: x.wall * ms, "ms",
                     baseline_label="`python -c pass`", note=note)
        if limit:
            fig.target = f"< {limit:g} ms"
            check_target(fig, max_abs=limit)
        figs.append(fig)
    return figs
