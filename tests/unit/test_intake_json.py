"""Hook bodies parsed by orjson take the standard library's answer wherever the two would differ."""

from __future__ import annotations

import json

import pytest

from opsflow.events import intake
from opsflow.store.events import _dumps


def _stdlib(body: bytes) -> object:
    """What the standard library's path alone gives (or the refusal's message)."""
    saved = intake._orjson
    intake._orjson = None  # type: ignore[assignment]
    try:
        return intake.load_json(body)
    except intake.PayloadError as exc:
        return f"refused: {exc}"
    finally:
        intake._orjson = saved


def _fast(body: bytes) -> object:
    try:
        return intake.load_json(body)
    except intake.PayloadError as exc:
        return f"refused: {exc}"


@pytest.mark.parametrize("body", [
    b'{"version": "4", "alerts": [{"labels": {"a": "b"}}]}',
    b'{"n": 12345678901234567890123}',  # over 64 bits: exact, not a float
    b'[-99999999999999999999]',
    b'123456789012345678901234567890',
    b'{"f": 1.5e300, "g": -0.0, "i": 18446744073709551615}',
    b'{"nul": "a\\u0000b"}',  # not storable: refused with where
    b'["\\ud800"]',  # a lone surrogate: refused with where
    b'{"pair": "\\ud83d\\ude00"}',  # a valid pair
    b'{"x": NaN}',  # the standard library accepts it
    b'[' * 40 + b']' * 40,  # too deep
    b'[' * 31 + b']' * 31,  # deep, within the limit
    b'{"a": ',  # not JSON
    b'\xff\xfe',  # not UTF-8
    b'"\\\\u0000 is text here"',
])
def test_orjson_and_the_standard_library_agree(body: bytes) -> None:
    if intake._orjson is None:
        pytest.skip("orjson is not installed")
    fast, slow = _fast(body), _stdlib(body)
    assert json.dumps(fast, sort_keys=True) == json.dumps(slow, sort_keys=True), (fast, slow)


def test_payload_text_reads_back_the_same() -> None:
    doc = {"labels": {"a": "é"}, "annotations": {}, "data": {"n": 3, "big": 2 ** 70, "nested": [{"x": None}]}}
    assert json.loads(_dumps(doc)) == doc  # the integer over 64 bits through the standard library
    assert json.loads(_dumps({"labels": {"k": "v"}, "data": {"t": object}}))["data"]["t"].startswith("<class")
