"""The coalesced device rows (last seen, values, battery): handed over once a second by the tick and
written a slice per commit, so no single transaction (which an SOS would wait behind) writes them
all; nothing is lost, a newer state wins, and stopping writes whatever is still due."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

import gateway.ingest.pipeline as pl
from gateway.install import traffic
from tests.rules_harness import Harness


def last_seen(h: Harness) -> dict[str, int | None]:
    return dict(h.store.conn.execute("SELECT device_id, last_seen_ms FROM devices").fetchall())


@pytest.fixture
def h(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    monkeypatch.setattr(pl, "DEVICE_ROWS_PER_COMMIT", 2)
    harness = Harness(tmp_path)
    yield harness
    harness.close()


def send_all(h: Harness, rng: random.Random) -> list[str]:
    """One telemetry message from every device (each its own commit); returns the device ids."""
    ids = []
    for d in h.sim.values():
        if d.type == "sos_button":
            continue
        h.publish(*traffic.telemetry(d, rng))
        ids.append(d.id)
    return ids


def test_a_tick_writes_one_slice_and_the_following_commits_write_the_rest(h: Harness) -> None:
    rng = random.Random(1)
    h.at(0)
    send_all(h, rng)  # every device comes online: those rows are written at once
    h.clock.step(1000)
    ids = send_all(h, rng)  # now only "last seen" changes: coalesced, nothing written yet
    t_sent = h.clock.wall_ms
    assert len(ids) >= 6, "the site needs more devices than three slices"
    assert all(last_seen(h)[d] < t_sent for d in ids)

    h.tick()  # hands every row over and writes one slice
    assert sum(last_seen(h)[d] == t_sent for d in ids) == 2
    assert len(h.pipeline._rows_due) == len(ids) - 2

    other = h.sim[ids[0]]
    h.publish(*traffic.telemetry(other, rng))  # any telemetry commit writes the next slice
    assert sum(last_seen(h)[d] >= t_sent for d in ids) == 4
    while h.pipeline._rows_due:
        h.publish(*traffic.telemetry(other, rng))
    assert all(last_seen(h)[d] >= t_sent for d in ids)


def test_a_newer_state_replaces_a_row_still_due(h: Harness) -> None:
    rng = random.Random(2)
    h.at(0)
    ids = send_all(h, rng)
    last = h.sim[ids[-1]]
    h.clock.step(1000)
    send_all(h, rng)  # the last device's row is due last
    t1 = h.clock.wall_ms
    h.tick()
    assert h.pipeline._rows_due[last.id][0] == t1
    h.clock.step(1000)
    h.publish(*traffic.telemetry(last, rng))  # reports again while its older row is still due
    t2 = h.clock.wall_ms
    h.tick()  # the newer state replaces the due one
    assert h.pipeline._rows_due[last.id][0] == t2
    while h.pipeline._rows_due:
        h.publish(*traffic.telemetry(h.sim[ids[0]], rng))
    assert last_seen(h)[last.id] == t2


def test_stopping_writes_every_row_still_due(h: Harness) -> None:
    rng = random.Random(3)
    h.at(0)
    send_all(h, rng)
    h.clock.step(2000)
    ids = send_all(h, rng)
    t_sent = h.clock.wall_ms
    h.pipeline.start()
    h.pipeline.stop()
    assert h.pipeline._rows_due == {}
    seen = last_seen(h)
    assert all(seen[d] == t_sent for d in ids)


def test_a_life_safety_commit_writes_no_device_rows(h: Harness) -> None:
    rng = random.Random(4)
    h.at(0)
    send_all(h, rng)
    h.clock.step(1000)
    send_all(h, rng)
    h.tick()
    due = dict(h.pipeline._rows_due)
    assert due
    sos = next(d for d in h.sim.values() if d.type == "sos_button")
    h.send(sos.id, "sos")  # its own short transaction: nothing else rides along
    assert any(i["category"] for i in h.incidents())
    assert h.pipeline._rows_due == due
