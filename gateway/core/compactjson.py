"""Compact JSON text for the store's columns, with one encoder built once.

``json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str)`` builds a new encoder
on every call, and ``JSONEncoder(...).encode`` sets up its C encoder again on each call too:
3.6 and 5.9 us for a sensor's values, against 2.0 us for the C encoder made once here. The
pipeline writes such text for every reading and device row, the rules and the incident log for
their state: a few per cent of a message's CPU (bench/pi_budget.py, README "Pi budget").

The text is the same, byte for byte, as ``json.dumps`` with those options: the standard
library's own C encoder with the same settings (tests/test_compactjson.py). Without the C
accelerator (another Python implementation) it falls back to the standard encoder. One
difference by design: no check for circular references (what is stored is decoded JSON and
plain values, never a cycle).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any


def make_dumps(default: Callable[[Any], Any] = str) -> Callable[[Any], str]:
    """A ``dumps(obj) -> str`` for compact, non-ASCII-escaping JSON with ``default`` for the rest."""
    if c_make_encoder is None:
        return json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=default).encode
    enc = c_make_encoder(None, default, encode_basestring, None, ":", ",", False, False, True)

    def dumps(obj: Any) -> str:  # Any: whatever json.dumps accepts
        return "".join(enc(obj, 0))

    return dumps


dumps = make_dumps()
