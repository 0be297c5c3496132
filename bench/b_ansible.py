"""3. Ansible step: an opsflow `ansible` step against `ansible-playbook` of the same playbook.

Same hosts, same forks, same SSH settings (the lab's ssh_config, ControlMaster with
a control directory fresh for every round, pipelining, host keys checked): both
start cold, as a user would run them. opsflow goes through ansible-runner.
"""

from __future__ import annotations

from pathlib import Path

from bench.core import Figure, Sample, Stats, check_target, figure, interleave, measured, run_ok, run_record
from bench.env import BenchEnv

NAME = "ansible"

PLAYBOOK = """\
- name: bench
  hosts: all
  gather_facts: false
  tasks:
    - name: a command
      ansible.builtin.command: /bin/true
      changed_when: false
"""


def run(env: BenchEnv) -> list[Figure]:
    size = env.size
    play = env.write("ansible/bench-play.yml", PLAYBOOK)
    figs: list[Figure] = []
    for n in size.ansible_hosts:
        forks = min(size.concurrency, n)
        inv = env.inventory("servers", n)
        rb = env.write(f"ansible/bench-ansible-{n}.yaml", f"""\
            name: bench-ansible
            targets: servers
            concurrency: {forks}
            steps:
              - name: play
                ansible: {play.name}
            """)
        db = env.db(f"ansible-{n}")
        db.parent.mkdir(parents=True, exist_ok=True)
        step_durations: list[float] = []

        def opsflow(n: int = n, rb: Path = rb, inv: Path = inv, db: Path = db,
                    durations: list[float] = step_durations) -> Sample:
            p = measured(env.opsflow("run", str(rb), "-i", str(inv), "--json", "-q", "--db", str(db)),
                         env=env.env(), grace=2.0)
            rec = run_record(p)
            results = rec.get("results", [])
            ok = run_ok(p, rec, n)
            if ok:
                durations.append(max(r["ended_at"] for r in results) - min(r["started_at"] for r in results))
            return Sample(wall=p.wall, cpu=p.cpu, ok=ok, detail=f"rc {p.rc} {p.stderr[-300:]}")

        def playbook(inv: Path = inv, forks: int = forks) -> Sample:
            control = env.tmpdir("cp-")
            ansible_env = env.env(
                ANSIBLE_SSH_ARGS=f"-F {env.ssh_config} -o ControlMaster=auto -o ControlPersist=60s",
                ANSIBLE_SSH_CONTROL_PATH_DIR=str(control), ANSIBLE_PIPELINING="True",
                ANSIBLE_HOST_KEY_CHECKING="True", ANSIBLE_RETRY_FILES_ENABLED="False", ANSIBLE_TIMEOUT="10",
                ANSIBLE_NOCOLOR="True", ANSIBLE_LOCAL_TEMP=str(control / "tmp"))
            p = measured([str(env.bindir / "ansible-playbook"), "-i", str(inv), "-f", str(forks), str(play)],
                         env=ansible_env, grace=0.2)
            return Sample(wall=p.wall, cpu=p.cpu, ok=p.rc == 0, detail=f"rc {p.rc} {p.stdout[-300:]}")

        env.say(f"  {n} server(s), forks {forks}")
        samples = interleave({"opsflow": opsflow, "playbook": playbook}, size.ansible_rounds, size.warmup, env.say)
        fig = figure(NAME, f"ansible step, {n} server(s): wall", samples, "opsflow", "playbook",
                     lambda s: s.wall, "s", baseline_label=f"`ansible-playbook -f {forks}`, same playbook")
        inner = Stats.of(step_durations[-size.ansible_rounds:], "s")
        if inner:
            fig.note = f"the step itself (ansible-runner, as recorded) p50 {inner.p50:.2f} s; the rest is the CLI"
        limit = 1.1 if n == 1 else 1.05  # issue 16: 1 server ≤ 1.1×, 10 servers ≤ 1.05×
        fig.target = f"≤ {limit:g}×"
        figs.append(check_target(fig, max_ratio=limit))
        figs.append(figure(NAME, f"ansible step, {n} server(s): controller CPU", samples, "opsflow", "playbook",
                           lambda s: s.cpu, "CPU-s", baseline_label=f"`ansible-playbook -f {forks}`"))
    return figs
