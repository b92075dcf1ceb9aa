"""gateway/core/compactjson.py writes exactly the text json.dumps writes with the same options."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as s

from gateway.core.compactjson import dumps, make_dumps

scalars = s.none() | s.booleans() | s.integers() | s.floats() | s.text()
values = s.recursive(scalars, lambda inner: s.lists(inner, max_size=4) | s.dictionaries(s.text(), inner, max_size=4))


def reference(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str)


@given(values)
def test_same_text_as_json_dumps(obj: Any) -> None:
    assert dumps(obj) == reference(obj)


def test_default_and_special_values() -> None:
    odd = {"t": dt.datetime(2026, 12, 6, 12, 0), "n": math.nan, "i": math.inf, "门": "禁", 1: [1.5, None]}
    assert dumps(odd) == reference(odd)
    assert make_dumps(lambda o: "x")({"t": object()}) == '{"t":"x"}'
