"""A platform: what opsflow knows about one kind of network device (pure data and text logic, no I/O)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from opsflow.platforms import delta as deltas
from opsflow.platforms.edit import Dialect, apply
from opsflow.platforms.tree import Node, diff_text, parse


class InvalidConfig(ValueError):
    """Output that is not a configuration: never stored as a version."""


@dataclass(frozen=True)
class Step:
    """One exchange with the device during a change or a restore (run by the network connector).

    kinds: ``config`` (lines through Netmiko's config mode, rejected lines stop it), ``send`` (one
    command; ``expect`` a regex to wait for instead of the prompt), ``paste`` (raw text written to the
    session, then wait for ``expect``), ``stage`` (``text`` copied by SCP to the device file ``path``,
    its md5 then checked with the ``verify`` command), ``save`` (Netmiko's save_config).
    """

    kind: str
    text: str = ""
    lines: tuple[str, ...] = ()
    expect: str | None = None
    path: str = ""
    verify: str = ""  # stage: the command whose output holds the staged file's md5
    capture: bool = False  # this output is the platform's own diff (--check)
    enter: bool = True  # config: enter/leave config mode around the lines
    leave: bool = True


@dataclass(frozen=True)
class Plan:
    """How to bring a device to a target config: ``check`` shows the platform's own diff (if it has one)
    and leaves the device as it was; ``apply`` changes it. ``delta`` is opsflow's computed delta
    (what is shown, and what is sent where the platform has no replace mechanism)."""

    mechanism: str
    delta: list[str]
    check: list[Step] = field(default_factory=list)
    apply: list[Step] = field(default_factory=list)


@dataclass(frozen=True)
class Platform:
    name: str
    netmiko: str  # the Netmiko device_type that drives it
    show_config: str  # the running config, paging already off (Netmiko's session preparation)
    dialect: Dialect
    volatile: tuple[str, ...]  # regexes of lines that change without a config change
    errors: str  # regex (multiline) of the CLI's error answers
    required: tuple[tuple[str, str], ...]  # (regex that a complete config matches, what it means)
    last_line: str | None = None  # regex the last line of a complete config matches ("end")
    salted: tuple[str, ...] = ()  # regexes whose group 1 is a secret re-encrypted on every show
    mechanism: str = "delta"  # how a restore is done (see ``plan``)
    native_check: str = ""  # the platform's own diff command (described in the docs table)
    save: bool = True  # a change must be saved (write memory) to survive a reload
    commit: bool = False  # a change in config mode takes effect on ``commit`` (Junos, IOS-XR, PAN-OS)
    delta_rules: deltas.IndentRules | None = None
    plan_fn: Callable[[Platform, str, list[str]], Plan] | None = None
    notes: str = ""

    # ---- text ---------------------------------------------------------------------------------

    @property
    def syntax(self) -> str:
        return self.dialect.syntax

    def _volatile(self) -> re.Pattern[str]:
        return re.compile("|".join(f"(?:{v})" for v in self.volatile) or r"(?!)", re.I)

    def config_lines(self, text: str) -> list[str]:
        vol = self._volatile()
        return [line.rstrip() for line in text.replace("\r", "").splitlines() if line.strip() and not vol.match(line)]

    def normalize(self, text: str) -> str:
        """The configuration without volatile lines, with one trailing newline."""
        return "\n".join(self.config_lines(text)) + "\n"

    def error(self, text: str) -> str | None:
        m = re.search(self.errors, text, re.M | re.I)
        return m.group(0).strip() if m else None

    def validate(self, text: str) -> str:
        """The normalized config, or InvalidConfig saying why the output is not a complete one."""
        if not text.strip():
            raise InvalidConfig("empty output")
        err = self.error(text)
        if err:
            raise InvalidConfig(f"the device answered with an error: {err!r}")
        lines = self.config_lines(text)
        if len(lines) < 3:
            raise InvalidConfig(f"only {len(lines)} line(s): truncated or not a configuration")
        body = "\n".join(lines)
        for pattern, meaning in self.required:
            if not re.search(pattern, body, re.M):
                raise InvalidConfig(f"{meaning}: not a complete {self.name} configuration")
        last = lines[-1].strip()
        if self.last_line and not re.fullmatch(self.last_line, last):
            raise InvalidConfig(f"does not end as a {self.name} configuration does (last line {last[:40]!r}): "
                                "truncated")
        if self.syntax in ("braces", "forti"):
            opened = self._open_blocks(lines)
            if opened:
                raise InvalidConfig(f"{opened} block(s) never closed: truncated")
        return self.normalize(text)

    def _open_blocks(self, lines: list[str]) -> int:
        depth = 0
        for line in lines:
            s = line.strip()
            if self.syntax == "braces" and not s.startswith("#"):
                depth += s.endswith("{") - (s == "}")
            elif self.syntax == "forti":
                w = s.split(None, 1)[0] if s else ""
                depth += (w in ("config", "edit")) - (w in ("end", "next"))
        return depth

    def stabilize(self, new: str, old: str | None) -> str:
        """``new`` with each salted secret put back as ``old`` had it when only the salt changed,
        so an unchanged device stores no new version."""
        if not self.salted or not old:
            return new
        pats = [re.compile(p) for p in self.salted]

        def mask(line: str) -> str:
            for p in pats:
                line = p.sub(lambda m: m.group(0).replace(m.group(1), "<salted>"), line)
            return line

        previous: dict[str, list[str]] = {}
        for line in old.splitlines():
            previous.setdefault(mask(line), []).append(line)
        out = []
        for line in new.splitlines():
            masked = mask(line)
            if masked != line and previous.get(masked):
                line = previous[masked].pop(0)
            out.append(line)
        return "\n".join(out) + ("\n" if new.endswith("\n") else "")

    # ---- structure ----------------------------------------------------------------------------

    def tree(self, text: str) -> Node:
        return parse("\n".join(self.config_lines(text)), self.syntax)

    def compare(self, before: str, after: str) -> str:
        """A hierarchical diff of two configs (any depth); empty when they are the same (salts aside)."""
        after = self.stabilize(after, before)
        if self.name == "frr":  # as it always was: a unified diff of the lines
            return "\n".join(difflib.unified_diff(self.config_lines(before), self.config_lines(after),
                                                  "running-config (before)", "running-config (after)",
                                                  lineterm="", n=1))
        return diff_text(self.tree(before), self.tree(after), self.syntax)

    def candidate(self, running: str, lines: list[str]) -> str:
        """What applying ``lines`` in config mode would change (the --check of network.config)."""
        tree = self.tree(running)
        apply(tree, lines, self.dialect)
        return diff_text(self.tree(running), tree, self.syntax)

    def delta(self, running: str, target: str) -> list[str]:
        """Commands that turn ``running`` into ``target`` (empty when they already match; salts aside)."""
        running = self.stabilize(running, target)
        have, want = self.tree(running), self.tree(target)
        if self.syntax == "forti":
            return deltas.forti_delta(have, want)
        if self.syntax == "routeros":
            return deltas.routeros_delta(have, want)
        if self.syntax == "braces":
            return deltas.set_delta(have, want, self.dialect.roots)
        assert self.delta_rules is not None
        return deltas.indent_delta(have, want, self.delta_rules)

    def same(self, running: str, target: str) -> bool:
        """The two configs have the same content (at every level; order of siblings aside)."""
        running = self.stabilize(running, target)
        have, want = self.tree(running), self.tree(target)
        return not diff_text(have, want, self.syntax) and not self.delta(running, target)

    def plan(self, running: str, target: str) -> Plan:
        lines = self.config_lines(target)
        if self.plan_fn is not None:
            return self.plan_fn(self, running, lines)
        delta = self.delta(running, target)
        apply_steps = [Step("config", lines=tuple(delta))] if delta else []
        return Plan("delta", delta, [], apply_steps + ([Step("save")] if self.save and delta else []))
