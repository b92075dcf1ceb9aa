"""Life-safety readings and health points ride with the next request instead of one each, while
incident events still go at once and nothing waiting ever goes behind telemetry
(cloud_sync/sender.py ``next_batch``; README "Pi budget")."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cloud_sync import lineproto as lp
from tests.sync_helpers import Feeder

AGE_S = 5.0


@pytest.fixture
def feeder() -> Iterator[Feeder]:
    # no server: next_batch only reads the outbox; send_personal so the resident's SOS button counts
    f = Feeder("http://127.0.0.1:9", max_batch_age_s=AGE_S, batch_size=200, send_personal="true")
    yield f
    f.close()


def _lines(batch: object) -> list[str]:
    assert isinstance(batch, list)
    return [str(r[1]) for r in batch]


def test_a_routine_check_in_of_a_life_safety_device_waits_for_the_batch_age(feeder: Feeder) -> None:
    now = 1_800_000_000_000
    feeder.batch([("sos-r1", {"battery": 90, "action": None}, now)], now=now)
    clock = [now + 100]
    s = feeder.sender(clock=lambda: clock[0])
    try:
        batch, wait = s.next_batch()
        assert batch is None
        assert AGE_S - 0.2 < wait <= AGE_S  # asleep until its age is up, not polling
        clock[0] = now + int(AGE_S * 1000)
        batch, wait = s.next_batch()
        assert wait == 0.0
        assert [line.split(",", 1)[0] for line in _lines(batch)] == [lp.M_TELEMETRY]
        assert "device=sos-r1" in _lines(batch)[0]
    finally:
        s.stop()


def test_an_incident_event_takes_the_waiting_readings_along_at_once(feeder: Feeder) -> None:
    now = 1_800_000_000_000
    feeder.batch([("sos-r1", {"battery": 90}, now)], now=now)
    feeder.batch([], incidents=1, now=now + 50)
    s = feeder.sender(clock=lambda: now + 60)
    try:
        batch, wait = s.next_batch()
        assert wait == 0.0
        kinds = sorted(line.split(",", 1)[0] for line in _lines(batch))
        assert kinds == sorted([lp.M_TELEMETRY, lp.M_INCIDENT])
    finally:
        s.stop()


def test_waiting_readings_go_before_telemetry_that_is_due(feeder: Feeder) -> None:
    now = 1_800_000_000_000
    feeder.batch([("door-b1", {"contact": True}, now)], now=now)  # ordinary telemetry, older
    feeder.batch([("sos-r1", {"battery": 90}, now + 4_000)], now=now + 4_000)
    s = feeder.sender(clock=lambda: now + int(AGE_S * 1000) + 10)  # the telemetry is due, the reading is not
    try:
        batch, wait = s.next_batch()
        assert wait == 0.0
        lines = _lines(batch)
        assert len(lines) == 1 and "device=sos-r1" in lines[0]
    finally:
        s.stop()
