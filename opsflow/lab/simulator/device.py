"""One simulated device and its CLI sessions (no I/O but the device's state file and fault file).

A ``Device`` holds its running configuration as a tree (``opsflow.platforms.tree``), the files of
its flash, its checkpoints and pending candidates. A ``Session`` is one SSH shell: it turns each
line typed into the text the platform would answer, including the prompt, per the platform's YAML
(``platforms/<name>.yaml``: prompts, paging, show commands, banners with volatile values, errors)
and the platform's config-mode semantics (``opsflow.platforms.edit``): direct edits (IOS, NX-OS,
AOS-CX, FortiOS, RouterOS), a candidate committed by ``commit`` / ``commit replace`` (IOS-XR,
Junos, PAN-OS), configure sessions (EOS), ``configure replace`` of a file (IOS-XE) and
checkpoint/rollback (NX-OS).

Faults for tests: a file ``<state>/<name>.fault`` holding words ``error``, ``cut`` (the config cut
short, then the prompt) or ``drop`` (cut short, then the connection closed): each show of the config
consumes the first word and is spoiled by it. The running config (without volatile lines) is mirrored to ``<state>/<name>.cfg``.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from opsflow.platforms import Platform, get
from opsflow.platforms.edit import Editor, apply_set
from opsflow.platforms.tree import Node, diff_text, parse_braces, render

SPECS = Path(__file__).with_name("platforms")


def load_spec(platform: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((SPECS / f"{platform}.yaml").read_text())
    return data


class Drop(Exception):
    """Close the connection now (a fault, or logout)."""


@dataclass
class Device:
    name: str
    platform: str
    state_dir: Path
    tree: Node
    spec: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)
    checkpoints: list[Node] = field(default_factory=list)
    candidate: Node | None = None  # PAN-OS: one shared candidate
    shows: int = 0
    booted: float = field(default_factory=time.time)

    @classmethod
    def create(cls, name: str, platform: str, config: str, state_dir: Path) -> Device:
        p = get(platform)
        dev = cls(name, platform, state_dir, p.tree(config), load_spec(platform))
        dev.persist()
        return dev

    @property
    def p(self) -> Platform:
        return get(self.platform)

    @property
    def host(self) -> str:
        m = re.search(self.spec["hostname"], self.body(), re.M)
        return m.group(1) if m else self.name

    def body(self, tree: Node | None = None) -> str:
        """The config as the device lists it, without the volatile banner."""
        tree = tree or self.tree
        syntax = self.p.syntax
        if syntax != "indent":
            lines = render(tree, syntax)
            if self.spec.get("braces_indent"):
                lines = [re.sub(r"^((?:    )+)", lambda m: " " * (len(m.group(1)) // 2), line) for line in lines]
            return "\n".join(lines) + "\n"
        step, sep = " " * self.spec.get("indent", 1), self.spec.get("separator", "!")
        out: list[str] = []
        for c in tree.children:
            out.append(c.text)
            out += [step * (d + 1) + n.text for d, n in c.walk()]
            if c.children and sep is not None:
                out.append(sep)
        return "\n".join(out) + "\n"

    def persist(self) -> None:
        tmp = self.state_dir / f".{self.name}.cfg.tmp"
        tmp.write_text(self.body())
        tmp.replace(self.state_dir / f"{self.name}.cfg")

    def values(self, **extra: Any) -> dict[str, Any]:
        now = time.gmtime()
        up = int(time.time() - self.booted)
        return {"host": self.host, "clock": time.strftime("%H:%M:%S", now), "date": time.strftime("%a %b %d %Y", now),
                "iso": time.strftime("%Y-%m-%d %H:%M:%S", now), "uptime": f"{up // 60} minutes, {up % 60} seconds",
                "counter": 4271895732163 + self.shows, **extra}

    def show(self) -> str:
        """The show-config output: banner (volatile values), body (secrets re-salted), footer."""
        self.shows += 1
        body = self.body()
        salt = self.spec.get("salt")
        if salt:
            body = re.sub(salt, lambda m: m.group(0).replace(
                m.group(1), base64.b64encode(os.urandom(max(8, len(m.group(1)) * 3 // 4))).decode()[: len(m.group(1))]),
                body)
        v = self.values(bytes=len(body))
        text = self.spec.get("header", "").format(**v) + body + (self.spec.get("footer") or "")
        if self.spec.get("timestamp"):
            text = time.strftime("%a %b %d %H:%M:%S.123 UTC", time.gmtime()) + "\n" + text
        fault = self.state_dir / f"{self.name}.fault"
        if fault.exists():
            kinds = fault.read_text().split()
            kind = kinds.pop(0) if kinds else ""
            if kinds:
                fault.write_text("\n".join(kinds) + "\n")
            else:
                fault.unlink()
            if kind == "error":
                return self.spec["unknown"].format(word="running-config")
            lines = text.splitlines()
            text = "\n".join(lines[: len(lines) * 3 // 5])
            if kind == "drop":
                raise Drop(text)
        return text


@dataclass
class Session:
    dev: Device
    mode: str = "exec"  # exec | config | load (Junos load override terminal) | confirm (XR commit replace)
    paging: bool = True
    editor: Editor | None = None
    work: Node | None = None  # what config mode edits (running, or a candidate)
    entered: Node | None = None  # XR: the lines of this session alone (what commit replace installs)
    eos_session: str = ""
    loaded: list[str] = field(default_factory=list)
    _typed: list[str] = field(default_factory=list)

    @property
    def spec(self) -> dict[str, Any]:
        return self.dev.spec

    def banner(self) -> str:
        return self.prompt()

    def prompt(self) -> str:
        pr, host = self.spec["prompt"], self.dev.host
        features = self.spec.get("features", [])
        ctx = self.editor.context if self.editor is not None else []
        if "forti" in features or "routeros" in features:
            if self.editor is None or not ctx:
                return pr["exec"].format(host=host)
            mode = ctx[-1].split(None, 1)[-1].strip('"') if "forti" in features else ctx[-1]
            return pr["sub"].format(host=host, mode=mode)
        if self.mode == "exec":
            return pr["exec"].format(host=host)
        banner = self.spec.get("config_banner", "")
        if self.eos_session:
            return pr["session"].format(host=host, session=self.eos_session[:6])
        if ctx and "sub" in pr:
            words = ctx[-1].split()
            mode = self.spec.get("submodes", {}).get(words[0], "sub")
            return pr["sub"].format(host=host, mode=mode.replace("{1}", words[1] if len(words) > 1 else ""))
        return (f"{banner}\n" if banner else "") + pr["config"].format(host=host)

    # ---- input ------------------------------------------------------------------------------

    def line(self, raw: str) -> str:
        """The answer to one typed line (without its echo), ending with the next prompt."""
        loading = self.mode == "load"
        out = self._dispatch(raw.rstrip("\r\n"))
        text = out.replace("\r\n", "\n").strip("\n")
        if loading and self.mode == "load":  # Junos reads the pasted config without prompts
            return ""
        if self.mode == "confirm":  # a question, answered on the next line
            return out
        return (text + "\n" if text else "") + self.prompt()

    def _dispatch(self, raw: str) -> str:
        cmd = raw.strip()
        if self.mode == "load":
            return self._load_line(raw)
        if self.mode == "confirm":
            return self._xr_confirm(cmd)
        if not cmd:
            return ""
        features = self.spec.get("features", [])
        if self.mode == "exec" and ("forti" in features or "routeros" in features):
            return self._flat(cmd, raw)
        if self.mode == "config":
            return self._config(cmd, raw)
        return self._exec(cmd)

    def unknown(self, cmd: str) -> str:
        return str(self.spec["unknown"]).format(word=(cmd.split() or [""])[0])

    def _common(self, cmd: str) -> str | None:
        """Commands every mode answers the same way; None if ``cmd`` is not one."""
        spec = self.spec
        if cmd in spec["paging"]["disable"]:
            self.paging = False
            return spec["paging"].get("answer", "")
        if cmd in spec.get("commands", {}):
            return str(spec["commands"][cmd]).format(**self.dev.values())
        if cmd in spec["show_config"]:
            return self.dev.show()
        if cmd in spec.get("save", {}).get("commands", []):
            return str(spec["save"]["output"])
        if cmd in ("exit", "quit", "logout") and self.mode == "exec":
            raise Drop("")
        md5 = spec.get("md5")
        if md5:
            m = re.fullmatch(md5["command"].replace("{path}", r"(\S+)").replace(" ", r"\s+"), cmd)
            if m:
                data = self.dev.files.get(m.group(1))
                if data is None:
                    return f"%Error opening {m.group(1)} (No such file or directory)"
                return str(md5["output"]).format(path=m.group(1), md5=hashlib.md5(data.encode(),
                                                                                 usedforsecurity=False).hexdigest())
        return None

    def _enter(self, work: Node) -> str:
        self.mode, self.work = "config", work
        self.editor = Editor(work, self.dev.p.dialect)
        return str(self.spec.get("config_hello", ""))

    def _exec(self, cmd: str) -> str:
        common = self._common(cmd)
        if common is not None:
            return common
        features = self.spec.get("features", [])
        if cmd in self.spec.get("enter_config", []):
            if "junos" in features:
                self._enter(copy.deepcopy(self.dev.tree))
                return "Entering configuration mode"
            if "panos" in features:
                if self.dev.candidate is None:
                    self.dev.candidate = copy.deepcopy(self.dev.tree)
                self._enter(self.dev.candidate)
                return ""
            if "commit" in features:
                self.entered = Node("")
                return self._enter(copy.deepcopy(self.dev.tree))
            return self._enter(self.dev.tree)
        m = re.fullmatch(r"configure session (\S+)", cmd)
        if m and "session" in features:
            self.eos_session = m.group(1)
            return self._enter(copy.deepcopy(self.dev.tree))
        if "configure_replace" in features or "checkpoint" in features:
            return self._files(cmd)
        return self.unknown(cmd)

    def _files(self, cmd: str) -> str:
        dev = self.dev
        m = re.fullmatch(r"configure replace (\S+)( force)?", cmd) or \
            re.fullmatch(r"rollback running-config file (\S+)", cmd)
        if m:
            if m.group(1) not in dev.files:
                return f"%Error opening {m.group(1)} (No such file or directory)"
            dev.tree = dev.p.tree(dev.files[m.group(1)])
            dev.persist()
            return ("Total number of passes: 1\nRollback Done" if cmd.startswith("configure")
                    else "Collecting Running-Config\nGenerating Rollback patch\nExecuting Rollback patch\n"
                         "Rollback completed successfully.")
        m = re.fullmatch(r"show archive config differences (\S+) system:running-config", cmd) or \
            re.fullmatch(r"show diff rollback-patch running-config file (\S+)", cmd)
        if m:
            if m.group(1) not in dev.files:
                return f"%Error opening {m.group(1)} (No such file or directory)"
            diff = diff_text(dev.tree, dev.p.tree(dev.files[m.group(1)]), "indent")
            return ("Contextual Config Diffs:\n" if cmd.startswith("show archive") else "#Generating Rollback Patch\n") \
                + (diff or "!No changes")
        if cmd == "checkpoint" or cmd.startswith("checkpoint "):
            dev.checkpoints.append(copy.deepcopy(dev.tree))
            return "...........Done"
        return self.unknown(cmd)

    # ---- config mode -------------------------------------------------------------------------

    def _leave(self) -> str:
        self.mode, self.editor, self.work, self.entered, self.eos_session = "exec", None, None, None, ""
        return ""

    def _config(self, cmd: str, raw: str) -> str:
        features = self.spec.get("features", [])
        for pattern in self.spec.get("reject", []):
            if re.search(pattern, cmd):
                return self.unknown(cmd)
        if cmd.startswith("do "):
            return self._exec(cmd[3:])
        if "junos" in features:
            return self._junos(cmd, raw)
        if "panos" in features:
            return self._panos(cmd, raw)
        if "commit" in features and cmd.startswith(("commit", "abort")) or cmd in ("end",) and "commit" in features:
            return self._xr(cmd)
        if self.eos_session:
            return self._eos(cmd, raw)
        assert self.editor is not None
        if cmd == "end" or (cmd == "exit" and not self.editor.context):
            return self._leave()
        if cmd in self.spec["show_config"] or cmd.startswith("show "):
            return self._common(cmd) or self.unknown(cmd)
        self.editor.feed(raw)
        if self.entered is not None:
            self._replay(raw)
        elif self.work is self.dev.tree:
            self.dev.persist()
        return ""

    def _replay(self, raw: str) -> None:
        """XR: what this session typed, applied to an empty tree (the target of commit replace)."""
        self._typed.append(raw)
        self.entered = Node("")
        ed = Editor(self.entered, self.dev.p.dialect)
        for line in self._typed:
            ed.feed(line)

    def _commit(self, tree: Node) -> None:
        self.dev.tree = copy.deepcopy(tree)
        self.dev.persist()

    def _xr(self, cmd: str) -> str:
        assert self.work is not None
        if cmd == "commit replace":
            self.mode = "confirm"
            return ("This commit will replace or remove the entire running configuration. This operation can be "
                    "service affecting.\nDo you wish to proceed? [no]: ")
        if cmd.startswith("commit"):
            self._commit(self.work)
            self._typed = []
            return ""
        if cmd == "abort" or cmd == "end":
            return self._leave()
        return self.unknown(cmd)

    def _xr_confirm(self, answer: str) -> str:
        self.mode = "config"
        if answer.lower() in ("yes", "y"):
            self._commit(self.entered or Node(""))
            self.work = copy.deepcopy(self.dev.tree)
            self.editor = Editor(self.work, self.dev.p.dialect)
            self._typed = []
        return ""

    def _eos(self, cmd: str, raw: str) -> str:
        assert self.editor is not None and self.work is not None
        if cmd == "rollback clean-config":
            self.work.children = []
            return ""
        if cmd == "show session-config diffs":
            return diff_text(self.dev.tree, self.work, "indent")
        if cmd == "commit":
            self._commit(self.work)
            return self._leave()
        if cmd in ("abort", "end"):
            return self._leave()
        if cmd == "exit" and not self.editor.context:
            return self._leave()
        self.editor.feed(raw)
        return ""

    def _junos(self, cmd: str, raw: str) -> str:
        assert self.work is not None
        if cmd in ("exit configuration-mode", "exit", "quit"):
            return self._leave()
        if cmd == "load override terminal":
            self.mode, self.loaded = "load", []
            return "[Type ^D at a new line to end input]"
        if cmd == "show | compare":
            return diff_text(self.dev.tree, self.work, "braces")
        if cmd == "rollback 0":
            self.work.children = copy.deepcopy(self.dev.tree).children
            return "load complete"
        if cmd == "commit check":
            return "configuration check succeeds"
        if cmd.startswith("commit confirmed"):
            self._commit(self.work)
            return "configuration check succeeds\ncommit confirmed will be automatically rolled back in 5 minutes " \
                   "unless confirmed\ncommit complete"
        if cmd.startswith("commit"):
            self._commit(self.work)
            return "configuration check succeeds\ncommit complete"
        if cmd.startswith(("set ", "delete ")) and apply_set(self.work, cmd, self.dev.p.dialect):
            return ""
        return self.unknown(cmd)

    def _load_line(self, raw: str) -> str:
        if "\x04" not in raw:
            self.loaded.append(raw)
            return ""
        self.loaded.append(raw.split("\x04")[0])
        assert self.work is not None
        self.work.children = parse_braces(self.loaded).children
        self.mode = "config"
        return "load complete"

    def _panos(self, cmd: str, raw: str) -> str:
        assert self.work is not None
        if cmd == "exit":
            return self._leave()
        if cmd == "commit":
            self._commit(self.work)
            return ("Commit job 7 is in progress. Use Ctrl+C to return to command prompt\n....55%....100%\n"
                    "Configuration committed successfully")
        if cmd.startswith(("set ", "delete ")) and apply_set(self.work, cmd, self.dev.p.dialect):
            return ""
        return self.unknown(cmd)

    # ---- FortiOS and RouterOS: configuration typed at the prompt ------------------------------

    def _flat(self, cmd: str, raw: str) -> str:
        common = self._common(cmd)
        if common is not None:
            return common
        for pattern in self.spec.get("reject", []):
            if re.search(pattern, cmd):
                return self.unknown(cmd)
        if self.editor is None:
            self.editor = Editor(self.dev.tree, self.dev.p.dialect)
        if not self.editor.feed(raw):
            return self.unknown(cmd)
        self.dev.persist()
        return ""
