"""The readings log is pruned by age once a slice at a time: rows past retention go, newer rows
stay, and a log whose oldest row is within retention is left alone (without scanning the slice)."""

from __future__ import annotations

import random
from pathlib import Path

from gateway.ingest.pipeline import PRUNE_BOUNDS_SQL
from gateway.install import traffic
from tests.rules_harness import Harness


def rx_times(h: Harness) -> list[int]:
    return [r[0] for r in h.store.conn.execute("SELECT rx_ms FROM readings ORDER BY id")]


def send(h: Harness, rng: random.Random, n: int) -> None:
    devs = [d for d in h.sim.values() if d.type != "sos_button"]
    for i in range(n):
        h.publish(*traffic.telemetry(devs[i % len(devs)], rng))


def prune_now(h: Harness) -> None:
    h.pipeline._next_prune = 0.0
    h.tick()


def test_rows_past_retention_go_and_newer_rows_stay(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.pipeline.retention_ms = 60_000
    rng = random.Random(1)
    h.at(0)
    send(h, rng, 10)
    old = set(rx_times(h))
    h.at(30)
    send(h, rng, 10)
    prune_now(h)
    assert len(rx_times(h)) == 20, "nothing is past retention yet"
    h.at(90)  # the first ten are 90 s old, the next ten 60 s: only the first are past 60 s
    send(h, rng, 5)
    prune_now(h)
    left = rx_times(h)
    assert not old & set(left)
    assert len(left) == 15
    assert h.pipeline.pruned_total == 10
    h.close()


def test_a_log_within_retention_is_left_alone(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    rng = random.Random(2)
    h.at(0)
    send(h, rng, 30)
    statements: list[str] = []
    h.store.conn.set_trace_callback(statements.append)
    prune_now(h)
    h.store.conn.set_trace_callback(None)
    assert len(rx_times(h)) == 30 and h.pipeline.pruned_total == 0
    assert not [s for s in statements if "LIMIT" in s and "readings" in s], "the slice was scanned"
    h.close()


def test_the_bounds_are_looked_up_not_scanned(tmp_path: Path) -> None:
    """A week's log is 2.4M rows: reading its first and last id must not visit them all."""
    h = Harness(tmp_path)
    plan = [r[3] for r in h.store.conn.execute("EXPLAIN QUERY PLAN " + PRUNE_BOUNDS_SQL)]
    assert "SCAN readings" not in plan and plan.count("SEARCH readings") == 2, plan
    h.close()
