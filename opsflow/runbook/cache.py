"""The cache of validated runbooks: running or validating an unchanged runbook again skips the YAML
parser, the models (pydantic builds them on first use) and the template compiler (Jinja2).

An entry is keyed by the digest of the runbook's text and of the code that validates it (the sources
of :mod:`opsflow.runbook`, :mod:`opsflow.events.models` and :mod:`opsflow.yamlpos`, the installed
pydantic, Jinja2 and PyYAML): it holds what does not depend on anything else — the validated
:class:`~opsflow.runbook.models.Runbook`, the positioned YAML tree and, for each template, where it is
and the variables it names that the runbook itself does not define. What depends on the inventory or
on other files (targets, hosts patterns, template variables against the inventory's, playbooks and
sub-runbooks found) is checked again on every load, from that, without Jinja2.

Only runbooks whose own checks passed are kept; storage is :mod:`opsflow.diskcache` (kind ``runbooks``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsflow import diskcache

if TYPE_CHECKING:
    from opsflow.postree import PosDict
    from opsflow.runbook.models import Runbook

KIND = "runbooks"
_HERE = Path(__file__).parent


@dataclass(frozen=True)
class TemplateUse:
    """One template string of a runbook: where (its path in the tree), its compile problem if any, and
    the variables it names that neither the runbook (params, registered results) nor opsflow define."""

    loc: tuple[str | int, ...]
    problem: str | None
    free: frozenset[str]


@dataclass(frozen=True)
class Entry:
    runbook: Runbook
    tree: PosDict
    templates: tuple[TemplateUse, ...]


@lru_cache(maxsize=1)
def _code() -> tuple[Any, ...]:
    root = _HERE.parent
    return (*diskcache.code_stamp(_HERE, root / "events" / "models.py", root / "yamlpos.py"),
            *(diskcache.package_stamp(p) for p in ("pydantic", "pydantic_core", "jinja2", "yaml")))


def key(text: str) -> str:
    return diskcache.digest((KIND, _code(), text))


def get(text: str) -> Entry | None:
    entry = diskcache.get(KIND, key(text))
    return entry if isinstance(entry, Entry) else None


def put(text: str, entry: Entry) -> None:
    diskcache.put(KIND, key(text), entry)
