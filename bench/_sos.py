"""Spotting an SOS press in the store's incident events, for the benchmarks that time presses."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


def press_seen(rows: Iterable[tuple[int, str, str, Any]], incident_device: dict[str, str], device_id: str) -> bool:
    """Walk new ``incident_events`` rows (seq, incident_id, kind, data JSON) in order: remember which
    device each new SOS incident is for, and tell whether one of them records a press of
    ``device_id`` (its incident created, or a repeat counted on it)."""
    found = False
    for _seq, iid, kind, data in rows:
        d = json.loads(data)
        if kind == "created" and d.get("type") == "sos":
            incident_device[iid] = d["devices"][0]
        if kind in ("created", "repeated") and incident_device.get(iid) == device_id:
            found = True
    return found
