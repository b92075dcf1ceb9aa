"""One backoff policy (gateway/core/backoff.py) for every retry loop (issue 24 item 10)."""

from __future__ import annotations

import ast
from pathlib import Path

from gateway.core.backoff import backoff_s

ROOT = Path(__file__).resolve().parent.parent
RETRY_LOOPS = (
    "gateway/ingest/mqtt.py",  # MQTT reconnect
    "gateway/tickets/notify.py",  # MQTT/webhook notification deliveries
    "gateway/channels/policy.py",  # staff channels
    "gateway/residents/sender.py",  # residents' SMS
    "cloud_sync/sender.py",  # the sync sender
)


def test_doubles_from_lo_up_to_the_cap_with_equal_jitter() -> None:
    assert backoff_s(1, 1, 300, 1.0) == 1 and backoff_s(1, 1, 300, 0.0) == 0.5
    assert backoff_s(5, 1, 300, 1.0) == 16 and backoff_s(20, 1, 300, 1.0) == 300
    assert backoff_s(10_000, 0.5, 30, 1.0) == 30  # no overflow however long the outage
    assert backoff_s(3, 5, 2, 1.0) == 5  # a cap below lo means lo
    draws = [backoff_s(12, 0.5, 30.0) for _ in range(300)]
    assert all(15 <= d <= 30 for d in draws) and len({round(d, 3) for d in draws}) > 100


def test_every_retry_loop_uses_the_one_backoff() -> None:
    for rel in RETRY_LOOPS:
        tree = ast.parse((ROOT / rel).read_text(encoding="utf-8"))
        imported = {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "gateway.core.backoff"
            for alias in node.names
        }
        assert "backoff_s" in imported, f"{rel} does not use gateway.core.backoff"
        own = [n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "backoff_s"]
        assert not own, f"{rel} defines a backoff of its own"
