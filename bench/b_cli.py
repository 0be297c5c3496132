"""6. CLI start: `opsflow --help` and `opsflow validate` on the example runbooks, against `python -c pass`.

The target (< 300 ms) is on opsflow's own p50; the ratio to a bare interpreter start
shows how much of it is opsflow. No lab needed: `validate` uses the example
inventory (inventory/hosts.yml), which declares the groups the example runbooks target.
"""

from __future__ import annotations

from bench.core import ROOT, Figure, Sample, check_target, figure, interleave, measured
from bench.env import BenchEnv

NAME = "cli"


def run(env: BenchEnv) -> list[Figure]:
    size = env.size
    os_env = env.env()

    def cmd(argv: list[str], expect: str = "") -> Sample:
        p = measured(argv, env=os_env, cwd=ROOT)
        ok = p.rc == 0 and expect in p.stdout
        return Sample(wall=p.wall, cpu=p.cpu, ok=ok, detail=f"rc {p.rc} {p.stderr[-300:]}")

    runbooks = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "runbooks").glob("*.y*ml"))
    env.say(f"  --help, validate ({len(runbooks)} runbooks), python -c pass")
    s = interleave({
        "help": lambda: cmd(env.opsflow("--help"), "Usage"),
        "validate": lambda: cmd(env.opsflow("validate", *runbooks, "-i", "inventory/hosts.yml"), "ok"),
        "pass": lambda: cmd([env.python, "-c", "pass"]),
    }, size.cli_rounds, size.warmup, env.say)
    ms = 1000.0
    figs = []
    for key, label in (("help", "`opsflow --help`"),
                       ("validate", f"`opsflow validate` ({len(runbooks)} example runbooks)")):
        fig = figure(NAME, f"CLI start: {label}", s, key, "pass", lambda x: x.wall * ms, "ms",
                     baseline_label="`python -c pass`", note="target is absolute: opsflow p50 < 300 ms")
        fig.target = "< 300 ms"
        figs.append(check_target(fig, max_abs=300.0))
    return figs
