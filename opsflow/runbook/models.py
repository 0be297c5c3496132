"""Typed, frozen, strict models of a runbook. The JSON Schema (`opsflow schema`) is generated from these.

Each short form a ``mode="before"`` validator takes, and each rule an ``after`` validator enforces, is also
declared for the schema next to it (``json_schema_extra``, ``WithJsonSchema``; see
:mod:`opsflow.runbook.schemadecl`); tests/unit/test_schema.py holds the two to the same verdicts.
"""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from opsflow.runbook import schemadecl as js

if TYPE_CHECKING:
    from opsflow.events.models import Duration, Triggers, Whole

IDENT = r"^[A-Za-z_][A-Za-z0-9_]*$"
# what the validators accept as text, and the schema declares with the same patterns
NUMBER_TEXT = r"\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*"
COUNT_TEXT = r"\s*\+?[0-9]+\s*"
PERCENT_TEXT = r"\s*(?:[0-9]*[1-9][0-9]*(?:\.[0-9]+)?|[0-9]+\.[0-9]*[1-9][0-9]*)%\s*"
TEMPLATE = r"\{\{"  # a value holding {{ is a template: checked when rendered


def whole(value: Any) -> Any:
    """``opsflow.events.models.whole`` (3.0 -> 3), imported when a value is validated, not with this module."""
    from opsflow.events.models import whole as of_events

    return of_events(value)


def _event_types() -> None:
    """The types of the event models some fields name (``Duration``, ``Triggers``, ``Whole``), put in this
    module's namespace when the first model is built: importing opsflow.events.models builds its models."""
    if "Triggers" not in globals():
        from opsflow.events import models as events

        globals().update(Duration=events.Duration, Triggers=events.Triggers, Whole=events.Whole)


class _Model(BaseModel):
    # strict: YAML gives real types, so "3" is not 3, 1 is not true and true is not 1 (as in the schema).
    # defer_build: a model is built when it first validates, not at import — a run of a runbook from the
    # cache of validated runbooks (opsflow.runbook.cache) builds none of them.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)

    @classmethod
    def model_rebuild(cls, *, force: bool = False, raise_errors: bool = True, _parent_namespace_depth: int = 2,
                      _types_namespace: Any = None) -> bool | None:
        # pydantic builds a deferred model through here (first validation, schema, rebuild); only the models
        # that name an event type (Runbook, Step, ApproveAction, Escalation) need opsflow.events.models
        depth = _parent_namespace_depth + 1
        built = super().model_rebuild(force=force, raise_errors=False, _parent_namespace_depth=depth,
                                      _types_namespace=_types_namespace)
        if built is not False:
            return built
        _event_types()
        return super().model_rebuild(force=force, raise_errors=raise_errors, _parent_namespace_depth=depth,
                                     _types_namespace=_types_namespace)


class Param(_Model):
    type: Literal["str", "int", "float", "bool", "list", "dict"] = "str"
    default: Any = None
    required: bool | None = Field(None, description="Defaults to true when there is no default.")
    secret: bool = Field(False, description="Never written to the store, logs or output.")
    description: str = ""
    choices: list[Any] | None = None

    @property
    def is_required(self) -> bool:
        return self.required if self.required is not None else self.default is None


def _number_or_template(value: float | str) -> float | str:
    if isinstance(value, str):
        if "{{" in value:
            return value
        if not re.fullmatch(NUMBER_TEXT, value):
            raise ValueError(f"expected a number or a {{{{ template }}}}, got {value!r}")
        return float(value)
    return value


_NUMBER_OR_TEMPLATE = {"type": "string", "pattern": f"{TEMPLATE}|^(?:{NUMBER_TEXT})$"}
# a number, or a template that renders to one when the step runs
Number = Annotated[float | str, AfterValidator(_number_or_template),
                   WithJsonSchema({"anyOf": [{"type": "number"}, _NUMBER_OR_TEMPLATE]})]


def _count_or_template(value: int | str) -> int | str:
    if isinstance(value, str):
        if "{{" in value:
            return value
        if not re.fullmatch(COUNT_TEXT, value):
            raise ValueError(f"expected a whole number or a {{{{ template }}}}, got {value!r}")
        value = int(value)
    if value < 0:
        raise ValueError(f"expected a number >= 0, got {value}")
    return value


Count = Annotated[int | str, BeforeValidator(whole), AfterValidator(_count_or_template), WithJsonSchema(
    {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": f"{TEMPLATE}|^(?:{COUNT_TEXT})$"}]})]


_TEMPLATE_PART = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)


def split_command(text: str) -> list[str]:
    """Split a command string into argv like a shell would (it is never run by one).

    Each ``{{ … }}`` stays inside one word, so a rendered value is always exactly
    one argument, whatever spaces or quotes it holds.
    """
    parts: list[str] = []

    def hide(m: re.Match[str]) -> str:
        parts.append(m.group(0))
        return f"\x00{len(parts) - 1}\x00"

    words = shlex.split(_TEMPLATE_PART.sub(hide, text))
    return [re.sub("\x00(\\d+)\x00", lambda m: parts[int(m.group(1))], w) for w in words]


def _argv(value: Any) -> Any:
    """A command is an argv list; a string is split like a shell would, never run by one."""
    if isinstance(value, str):
        return split_command(value)
    if isinstance(value, list):
        for item in value:
            if isinstance(item, bool):
                raise ValueError(f"argv item {item!r} is a YAML boolean; quote it, e.g. \"{str(item).lower()}\"")
        return [str(v) if isinstance(v, int | float) else v for v in value]
    return value


_ARGV = {"anyOf": [
    {"type": "array", "minItems": 1, "items": {"type": ["string", "number"]}},
    {"type": "string", "pattern": "[^ \t\r\n]", "description": "split into words like a shell would, never run by one"},
]}


class CommandAction(_Model):
    model_config = ConfigDict(json_schema_extra=js.shorthand(_ARGV))
    argv: Annotated[list[str], WithJsonSchema(_ARGV)] = Field(min_length=1)
    stdin: str | None = None
    env: dict[str, str] = {}
    chdir: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _short(cls, value: Any) -> Any:
        if isinstance(value, str | list):
            return {"argv": _argv(value)}
        if isinstance(value, dict) and "argv" in value:
            return {**value, "argv": _argv(value["argv"])}
        return value


class AnsibleAction(_Model):
    model_config = ConfigDict(json_schema_extra=js.shorthand({"type": "string", "description": "the playbook"}))
    playbook: str
    extra_vars: dict[str, Any] = {}
    tags: list[str] = []

    @model_validator(mode="before")
    @classmethod
    def _short(cls, value: Any) -> Any:
        return {"playbook": value} if isinstance(value, str) else value


class NetworkCommandAction(_Model):
    model_config = ConfigDict(json_schema_extra=js.shorthand(
        {"type": "string"}, {"type": "array", "minItems": 1, "items": {"type": "string"}}))
    commands: list[str] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _short(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"commands": [value]}
        if isinstance(value, list):
            return {"commands": value}
        return value


class NetworkConfigAction(_Model):
    model_config = ConfigDict(json_schema_extra=js.shorthand({"type": "array", "minItems": 1, "items": {"type": "string"}}))
    lines: list[str] = Field(min_length=1)
    save: bool = True

    @model_validator(mode="before")
    @classmethod
    def _short(cls, value: Any) -> Any:
        return {"lines": value} if isinstance(value, list) else value


CHECK_KINDS = (
    "file", "service", "port", "package", "command", "process",
    "disk_free", "memory_free", "testinfra", "show",
)


class Check(_Model):
    """One assertion. Exactly one of the kind keys (file, service, port, …) is set."""

    model_config = ConfigDict(json_schema_extra=js.exactly_one(CHECK_KINDS, null_is_absent=True))
    name: str | None = None
    # kinds
    file: str | None = None
    service: str | None = None
    port: Annotated[int | str, BeforeValidator(whole)] | None = Field(
        None, description="22, or a testinfra socket URL like tcp://0.0.0.0:22")
    package: str | None = None
    command: str | list[str] | None = None
    process: str | None = Field(None, description="a process command name that must be running")
    disk_free: str | None = Field(None, description="a mount path; use with min_mb or min_percent")
    memory_free: bool | None = Field(None, description="use with min_mb")
    testinfra: str | None = Field(None, description="a testinfra test file, run against each host")
    show: str | None = Field(None, description="a show command on a network device")
    # expectations
    exists: bool | None = None
    is_directory: bool | None = None
    contains: str | None = None
    not_contains: str | None = None
    matches: str | None = None
    mode: str | None = Field(None, description="octal, e.g. '0644'")
    owner: str | None = None
    running: bool | None = None
    enabled: bool | None = None
    listening: bool | None = None
    installed: bool | None = None
    rc: Annotated[int | str, BeforeValidator(whole), AfterValidator(_number_or_template), WithJsonSchema(
        {"anyOf": [{"type": "integer"}, _NUMBER_OR_TEMPLATE]})] | None = None
    min_mb: Number | None = None
    min_percent: Number | None = None
    value: str | None = Field(None, description="regex with one group: the parsed value compared with ge/le/eq")
    ge: Number | None = None
    le: Number | None = None
    eq: str | float | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Check:
        kinds = [k for k in CHECK_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"a check needs exactly one of {', '.join(CHECK_KINDS)}; got {kinds or 'none'}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in CHECK_KINDS if getattr(self, k) is not None)


class NetworkBackupAction(_Model):
    """Save the running configuration as a new version when it changed."""

    model_config = ConfigDict(json_schema_extra=js.shorthand({"type": "null"}, {"const": True}))

    @model_validator(mode="before")
    @classmethod
    def _short(cls, value: Any) -> Any:
        return {} if value is None or value is True else value


class NetworkRestoreAction(_Model):
    model_config = ConfigDict(json_schema_extra=js.shorthand({"type": "null"}, {"const": True}, {"type": "string"}))
    version: str = Field("latest", description="a version id, 'latest', or '~N' (N versions back)")

    @model_validator(mode="before")
    @classmethod
    def _short(cls, value: Any) -> Any:
        if value is None or value is True:
            return {}
        return {"version": value} if isinstance(value, str) else value


class BackupAction(_Model):
    paths: list[Annotated[str, WithJsonSchema({"type": "string", "pattern": f"^/|{TEMPLATE}"})]] = Field(
        min_length=1, description="absolute paths to archive")
    keep_last: Count | None = None
    keep_daily: Count = 0
    keep_weekly: Count = 0
    keep_monthly: Count = 0

    @field_validator("paths")
    @classmethod
    def _absolute(cls, value: list[str]) -> list[str]:
        for p in value:
            if not p.startswith("/") and "{{" not in p:
                raise ValueError(f"backup path {p!r} must be absolute")
        return value


class RestoreAction(_Model):
    model_config = ConfigDict(json_schema_extra=js.shorthand({"type": "null"}, {"const": True}))
    version: str = Field("latest", description="an archive id or 'latest'")
    from_host: str | None = Field(None, description="restore another host's backup (restore drills)")
    target: str | None = Field(None, description="restore under this directory instead of /")

    @model_validator(mode="before")
    @classmethod
    def _short(cls, value: Any) -> Any:
        return {} if value is None or value is True else value


Recipient = Annotated[str, Field(min_length=1, description="a user, a [notify] contact or team, or an Apprise URL")]


class Escalation(_Model):
    after: Duration = Field(description="still pending this long after the request: notify `to`")
    to: list[Recipient] = Field(min_length=1, description="users, [notify] contacts or teams, Apprise URLs")


class ApproveAction(_Model):
    model_config = ConfigDict(json_schema_extra=js.shorthand(
        {"type": "string", "description": "the message"}, {"type": "null"}, {"const": True}))
    message: str = "Approve to continue"
    timeout: float = Field(3600, gt=0, description="seconds to wait; no decision by then means deny")
    four_eyes: bool = Field(True, description="who started the run may not approve it (false: may)")
    escalate: list[Escalation] = Field(
        [], description="who else hears of the approval when it is still pending after each `after` "
                        "(ascending, each before the timeout); the runbook's owners hear of it at once")

    @field_validator("escalate")
    @classmethod
    def _escalate(cls, value: list[Escalation], info: ValidationInfo) -> list[Escalation]:
        timeout = info.data.get("timeout")
        previous = 0.0
        for level in value:
            if level.after <= 0:
                raise ValueError("escalate after 0 s: an escalation needs a time to wait, e.g. 15m")
            if timeout is not None and level.after >= timeout:
                raise ValueError(f"escalate after {level.after:g} s: not before the approval's timeout "
                                 f"({timeout:g} s), when it is denied")
            if level.after <= previous:
                raise ValueError(f"escalate after {level.after:g} s: the levels must be in ascending order "
                                 f"(the one before is {previous:g} s)")
            previous = level.after
        return value

    @model_validator(mode="before")
    @classmethod
    def _short(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"message": value}
        return {} if value is None or value is True else value


class RunbookAction(_Model):
    model_config = ConfigDict(json_schema_extra=js.shorthand({"type": "string", "description": "the runbook file"}))
    path: str = Field(description="runbook file, relative to this runbook or runbooks/")
    params: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _short(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value


def _serial(value: int | str | list[int | str]) -> int | str | list[int | str]:
    """Batch sizes: 2, "25%", or a list like [1, "25%", "100%"] (the last size repeats)."""
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, int) and item < 1:
            raise ValueError(f"serial batch size must be >= 1, got {item}")
        if isinstance(item, str) and not re.fullmatch(PERCENT_TEXT, item):
            raise ValueError(f"serial {item!r}: expected a number or a percentage like '25%'")
    if isinstance(value, list) and not value:
        raise ValueError("serial list is empty")
    return value


_BATCH = {"anyOf": [{"type": "integer", "minimum": 1}, js.text(PERCENT_TEXT)]}
Serial = Annotated[
    int | str | list[int | str],
    BeforeValidator(lambda v: [whole(i) for i in v] if isinstance(v, list) else whole(v)),
    AfterValidator(_serial),
    WithJsonSchema({"anyOf": [_BATCH, {"type": "array", "minItems": 1, "items": _BATCH}]}),
]


RETRY_CONDITIONS = ("failed", "unreachable", "timeout")


class Lock(_Model):
    model_config = ConfigDict(json_schema_extra=js.shorthand({"const": True}, {"enum": ["host", "runbook"]}))
    scope: Literal["host", "runbook"] = Field("host", description="lock each target host, or the runbook itself")
    wait: float = Field(0, ge=0, description="seconds to wait for a held lock; 0 refuses at once")

    @model_validator(mode="before")
    @classmethod
    def _short(cls, value: Any) -> Any:
        if value is True:
            return {}
        if isinstance(value, str):
            return {"scope": value}
        return value


ACTION_KEYS = ("ansible", "command", "network.command", "network.config", "verify", "local", "approve",
               "runbook", "network.backup", "network.restore", "backup", "restore")
_BARE_ACTIONS = ("approve", "network.backup", "network.restore", "restore")  # `key:` alone, or `key: true`


QUEUE = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"  # a Celery queue name (opsflow.dispatch.placement)


class Step(_Model):
    model_config = ConfigDict(json_schema_extra=js.exactly_one(ACTION_KEYS, null_is_absent=False, strip_null=True))
    name: str = Field(min_length=1)
    hosts: str | None = Field(None, description="inventory pattern overriding the runbook targets")
    when: str | None = Field(None, description="Jinja2 expression; the step runs on a host only when true")
    retries: Whole = Field(0, ge=0)
    delay: float = Field(1.0, ge=0)
    timeout: float | None = Field(None, gt=0, description="seconds per attempt")
    register_as: str | None = Field(None, alias="register", pattern=IDENT,
                                    description="name this step's result for later steps")
    ignore_errors: bool = False
    idempotent: bool = Field(False, description="safe to run again: re-run on another worker when the one "
                                                "running it died mid-step (else the host is marked interrupted)")
    queue: str | None = Field(None, pattern=QUEUE, description="the worker queue that runs this step "
                                                              "(--dispatch celery); default: the host's")
    changed_when: str | bool | None = None
    failed_when: str | bool | None = None
    # actions: exactly one
    ansible: AnsibleAction | None = None
    command: CommandAction | None = None
    network_command: NetworkCommandAction | None = Field(None, alias="network.command")
    network_config: NetworkConfigAction | None = Field(None, alias="network.config")
    verify: list[Check] | None = None
    local: CommandAction | None = None
    approve: ApproveAction | None = Field(None, description="pause until `opsflow approve` (timeout = deny)")
    runbook: RunbookAction | None = Field(None, description="run another runbook as part of this run")
    network_backup: NetworkBackupAction | None = Field(None, alias="network.backup")
    network_restore: NetworkRestoreAction | None = Field(None, alias="network.restore")
    backup: BackupAction | None = None
    restore: RestoreAction | None = None
    # production safety
    serial: Serial | None = Field(None, description="run the step's hosts in batches: 1, '25%', [1, '25%', '100%']")
    retry_on: list[Annotated[str | int, BeforeValidator(whole), WithJsonSchema(
        {"anyOf": [{"enum": list(RETRY_CONDITIONS)}, {"type": "integer"}]})]] = Field(
        ["failed", "unreachable", "timeout"],
        description="what is retried: failed, unreachable, timeout, or specific rc values")
    backoff: float = Field(1.0, ge=1.0, description="delay multiplier between attempts")
    rollback: list[Step] = Field([], description="steps undoing this one; run in reverse on a host that fails later")

    @field_validator("retry_on")
    @classmethod
    def _retry_on(cls, value: list[str | int]) -> list[str | int]:
        for item in value:
            if isinstance(item, str) and item not in RETRY_CONDITIONS:
                raise ValueError(f"retry_on {item!r}: one of {', '.join(RETRY_CONDITIONS)} or an rc number")
        return value

    @model_validator(mode="before")
    @classmethod
    def _one_action(cls, value: Any) -> Any:
        if isinstance(value, dict):
            found = [k for k in ACTION_KEYS if k in value]
            if len(found) != 1:
                raise ValueError(
                    f"a step needs exactly one action ({', '.join(ACTION_KEYS)}); got {', '.join(found) or 'none'}"
                )
            if value[found[0]] is None and found[0] not in _BARE_ACTIONS:
                raise ValueError(f"action {found[0]!r} needs a value")
            for key in _BARE_ACTIONS:
                if key in value and value[key] in (None, True):
                    value = {**value, key: {}}
        return value

    @property
    def action(self) -> str:
        for key in ACTION_KEYS:
            if getattr(self, key.replace(".", "_")) is not None:
                return key
        raise AssertionError("validated step without action")

    @property
    def spec(self) -> Any:
        return getattr(self, self.action.replace(".", "_"))


class Runbook(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    owners: list[Recipient] = Field(
        [], description="who is asked for this runbook's approvals: users, [notify] contacts or teams, Apprise URLs")
    targets: str = Field(min_length=1, description="inventory pattern: group, host, a:b, a:!b, a:&b")
    params: dict[str, Param] = Field({}, json_schema_extra={"propertyNames": {"pattern": IDENT}})
    concurrency: Whole = Field(20, ge=1, le=1000)
    timeout: float | None = Field(None, gt=0, description="overall seconds for the run")
    steps: list[Step] = Field(min_length=1)
    on_failure: list[Step] = []
    serial: Serial | None = Field(
        None, description="rolling batches: every step runs on one batch of hosts before the next batch starts")
    max_fail_percentage: float | None = Field(
        None, ge=0, le=100, description="stop starting batches once more than this % of a batch failed")
    lock: Lock | None = Field(None, description="true (per host), 'runbook', or {scope, wait}")
    queue: str | None = Field(None, pattern=QUEUE, description="the worker queue of its hosts (--dispatch "
                              "celery), below a host's or group's `opsflow_queue` variable")
    gather_facts: bool = Field(False, description="collect `facts` (hostname, kernel, os, cpus, memory) from "
                                                 "servers before the first step")
    triggers: Triggers | None = Field(None, description="events that start this runbook (`opsflow daemon`)")

    @field_validator("params")
    @classmethod
    def _param_names(cls, value: dict[str, Param]) -> dict[str, Param]:
        for key in value:
            if not re.match(IDENT, key):
                raise ValueError(f"param name {key!r} is not an identifier")
        return value

    @model_validator(mode="after")
    def _trigger_params(self) -> Runbook:
        if self.triggers is not None:
            self.triggers.check_params(set(self.params))
        return self
