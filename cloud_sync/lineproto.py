"""InfluxDB line protocol, built with plain string formatting (no Point objects: ~4x faster).

Schema (docs/sync.md is the reference):
- ``edge_telemetry``   one point per stored reading; fields are the canonical values.
- ``edge_incident``    one point per incident lifecycle event.
- ``edge_health``      one gateway health point every ``sync.heartbeat_s``.

Timestamps are nanoseconds. The last six digits (below the millisecond) are the outbox row id
modulo 1,000,000, so two points of one series in the same millisecond still differ; the
millisecond itself is also made unique per series at enqueue (see :class:`UniqueMs`), because
VictoriaMetrics keeps only millisecond precision.
"""

from __future__ import annotations

import bisect
import json
import math
from array import array
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Hashable

M_TELEMETRY = "edge_telemetry"
M_INCIDENT = "edge_incident"
M_HEALTH = "edge_health"

MAX_STRING = 1024  # longest string field value kept (characters)

_TAG_TRANS = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": " ", "\r": " ", "\\": "/"})
_FIELD_KEY_TRANS = _TAG_TRANS
_STR_TRANS = str.maketrans({'"': r"\"", "\\": "\\\\", "\n": " ", "\r": " "})


def tag_value(value: str) -> str:
    """Escape a tag key or value (commas, equals, spaces; newlines and backslashes replaced)."""
    return value.translate(_TAG_TRANS)


def string_field(value: str) -> str:
    if len(value) > MAX_STRING:
        value = value[:MAX_STRING]
    return '"' + value.translate(_STR_TRANS) + '"'


_key_cache: dict[str, str] = {}


def field_key(key: str) -> str:
    k = _key_cache.get(key)
    if k is None:
        k = str(key).translate(_FIELD_KEY_TRANS)
        if k == "time" or k.startswith("_"):
            k = "v" + k  # reserved by InfluxDB ("time", "_field", "_measurement", ...)
        if len(_key_cache) < 10_000:
            _key_cache[key] = k
    return k


def tags(pairs: Mapping[str, str | None]) -> str:
    """``,k=v`` for every non-empty value, keys sorted (InfluxDB's preferred order)."""
    return "".join(f",{tag_value(k)}={tag_value(v)}" for k, v in sorted(pairs.items()) if v)


def fields(values: Mapping[str, Any]) -> str:
    """Field set from canonical values. Numbers are written as floats (no ``i`` suffix) so a value
    that is sometimes 85 and sometimes 85.5 never conflicts in type; bools as true/false; strings
    quoted and capped; None, NaN/inf, lists and objects are left out."""
    parts: list[str] = []
    for k, v in values.items():
        t = type(v)
        if t is bool:
            parts.append(f"{field_key(k)}={'true' if v else 'false'}")
        elif t is int:
            parts.append(f"{field_key(k)}={v}")
        elif t is float:
            if math.isfinite(v):
                parts.append(f"{field_key(k)}={v!r}")
        elif t is str:
            parts.append(f"{field_key(k)}={string_field(v)}")
    return ",".join(parts)


def ns(ms: int, row_id: int) -> int:
    return ms * 1_000_000 + row_id % 1_000_000


class UniqueMs:
    """Makes the millisecond of each point unique within its series (per process).

    The ns discriminator alone keeps points apart in InfluxDB, but VictoriaMetrics stores
    milliseconds, so two readings of one device within one millisecond would collapse there.
    A point landing on a millisecond its series already used (remembered for ``window_ms`` behind
    the newest, at most ``depth`` per series) moves to the next free millisecond, or just after the
    newest one used. Decided once, when the line is built. The window covers the pipeline's clock
    skew limit (5 min), so late readings are checked too.

    Memory: each series keeps its used milliseconds in one sorted ``array('q')``, 8 bytes a point.
    (A dict entry and an int object per point took ~140 bytes: 50 MB for the 360,000 points of a
    6-minute window at 1,000 readings/s.) At most ``max_points`` are kept in all; past that every
    series forgets its older half, so above ~1,300 points/s the window gets shorter instead of the
    process bigger (a reading arriving later than that may keep a millisecond already used).
    """

    def __init__(
        self, window_ms: int = 6 * 60_000, depth: int = 4096, max_series: int = 100_000, max_points: int = 1 << 19
    ) -> None:
        self.window_ms = window_ms
        self.depth = depth
        self.max_series = max_series
        self.max_points = max_points
        self.points = 0  # remembered in all series
        self._used: dict[Hashable, array[int]] = {}
        # Forgetting moves the array's tail: done in steps of an eighth, not for every point.
        self._keep_ms = window_ms + window_ms // 8
        self._keep_n = depth + max(1, depth // 8)

    def take(self, key: Hashable, ms: int) -> int:
        used = self._used.get(key)
        if used is None:
            if len(self._used) >= self.max_series:
                self._used.clear()
                self.points = 0
            self._used[key] = array("q", (ms,))
            self.points += 1
            return ms
        newest = used[-1]
        if ms > newest:
            used.append(ms)
        else:
            i = bisect.bisect_left(used, ms)
            if used[i] == ms:  # taken: the next millisecond if free, else just after the newest
                i += 1
                if ms < newest and used[i] != ms + 1:
                    ms += 1
                    used.insert(i, ms)
                else:
                    ms = newest + 1
                    used.append(ms)
            else:
                used.insert(i, ms)
        self.points += 1
        if used[-1] - used[0] > self._keep_ms or len(used) > self._keep_n:
            cut = max(bisect.bisect_left(used, used[-1] - self.window_ms), len(used) - self.depth)
            del used[:cut]
            self.points -= cut
        if self.points > self.max_points:
            self._halve()
        return ms

    def _halve(self) -> None:
        total = 0
        for used in self._used.values():
            del used[: len(used) // 2]
            total += len(used)
        self.points = total


# --- incident events -------------------------------------------------------------------------------

# Keys never copied into a point: personal data and bulky lists.
PRIVATE_KEYS = frozenset({"resident_id", "resident", "resident_name", "readings", "phone", "name", "note", "comment"})


# Any: a JSON value (decoded payload or stored JSON column)
def scrub(obj: Any, depth: int = 0) -> Any:
    """A copy without personal keys (recursively), for the ``data`` JSON field."""
    if depth > 6:
        return None
    if isinstance(obj, Mapping):
        return {str(k): scrub(v, depth + 1) for k, v in obj.items() if str(k) not in PRIVATE_KEYS}
    if isinstance(obj, list | tuple):
        return [scrub(v, depth + 1) for v in obj[:50]]
    return obj


def json_field(obj: Any, limit: int = 2000) -> str:
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return string_field(text) if len(text) <= MAX_STRING else '"' + text.translate(_STR_TRANS) + '"'
