"""Helpers of the site-view tests (issue 20): the example community on a private broker, a gateway
with its API on a given store, and a year of generated incidents."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support import ROOT

EXAMPLE = ROOT / "edge_config" / "examples" / "community.yaml"


def example_site(
    directory: Path, broker_port: int, *, name: str = "site.yaml", fire_lane_max_min: int | None = None
) -> Path:
    """The example community as a file of its own, talking to ``broker_port`` (its comments kept:
    adoption must keep them); ``fire_lane_max_min``: a car in a fire lane is an incident sooner."""
    text = EXAMPLE.read_text(encoding="utf-8")
    if fire_lane_max_min is not None:
        old = "  parking_sensor: {expected_interval_s: 43200}\n"
        assert old in text
        text = text.replace(
            old, f"  parking_sensor: {{expected_interval_s: 43200, fire_lane_max_min: {fire_lane_max_min}}}\n"
        )
    text = re.sub(r"(?m)^(mqtt:\n  host: 127\.0\.0\.1\n  port: )1883$", rf"\g<1>{broker_port}", text, count=1)
    text = text.replace("path: ./data/gateway.db", f"path: {directory / 'gateway.db'}", 1)
    assert f"port: {broker_port}" in text
    path = directory / name
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path
