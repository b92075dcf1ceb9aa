"""The one retry backoff: capped exponential with "equal jitter".

    delay(attempt) = min(hi, lo * 2^(attempt-1)) * (0.5 .. 1.0)

Used by every retry loop (MQTT reconnect, notification deliveries, staff channels, residents'
SMS, the sync sender), so the gateway backs off the same way whatever failed. Why this shape:

- exponential and capped: a dead service is probed less and less often, but never less than once
  per ``hi``, so recovery is noticed within ``hi``;
- jitter: gateways (or channel targets) that failed together do not retry together;
- *equal* jitter (half fixed, half random) rather than full jitter: a retry never comes sooner than
  half the nominal delay, so a failing peer is not hammered by an unlucky draw of 0.

``rnd`` is the random draw in [0, 1]; callers pass their own source so tests can fix it.
"""

from __future__ import annotations

import random

MAX_DOUBLINGS = 30  # 2**30 * any sensible lo is past every cap; keeps the float finite


def backoff_s(attempt: int, lo: float, hi: float, rnd: float | None = None) -> float:
    """Delay before retry number ``attempt`` (1 = the first retry), in seconds."""
    draw = random.random() if rnd is None else rnd
    hi = max(hi, lo)
    nominal = min(hi, lo * 2 ** min(max(0, attempt - 1), MAX_DOUBLINGS))
    return float(nominal * (0.5 + draw / 2))
