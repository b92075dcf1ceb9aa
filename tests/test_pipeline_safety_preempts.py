"""A life-safety message that arrives while a telemetry batch is being decoded does not wait for
the whole batch: what is decoded commits, the SOS commits next, and the rest of the batch follows,
in order, every message stored and acknowledged exactly once."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from gateway.ingest.mqtt import LIFE_SAFETY, TELEMETRY, Inbound
from gateway.install import traffic
from tests.rules_harness import Harness


def test_an_sos_arriving_mid_batch_commits_before_the_rest_of_the_batch(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    acks: list[tuple[int, list[int]]] = []
    h.pipeline.acker = lambda session, items: acks.append((session, [i.mid for i in items]))
    rng = random.Random(3)
    h.at(0)
    senders = [
        d
        for d in h.sim.values()
        if d.type != "sos_button" and not h.routing.is_safety_topic(traffic.telemetry(d, rng)[0])
    ]
    button = next(d for d in h.sim.values() if d.type == "sos_button")
    mids = iter(range(1, 1000))

    def inbound(session: int, topic: str, payload: bytes) -> Inbound:
        return Inbound(session, 0, next(mids), 1, topic, payload, False, False, h.clock.wall_ms, 0)

    tele = [inbound(TELEMETRY, *traffic.telemetry(senders[i % len(senders)], rng)) for i in range(40)]
    sos = inbound(LIFE_SAFETY, *traffic.sos_press(button))
    decoded: list[int] = []
    one = h.pipeline._one

    def one_then_press(item: Inbound, key: int, buf: Any) -> None:
        one(item, key, buf)
        decoded.append(item.mid)
        if len(decoded) == 5:  # the press reaches the pipeline while the 5th message is decoded
            h.pipeline.submit(sos)

    h.pipeline._one = one_then_press  # type: ignore[method-assign]
    acks.clear()
    for item in tele:
        h.pipeline.submit(item)
    h.pipeline.run_once(flush=True)

    tele_mids = [i.mid for i in tele]
    assert (
        acks
        == [
            (TELEMETRY, tele_mids[:5]),  # what was decoded when the press arrived
            (LIFE_SAFETY, [sos.mid]),  # the press, next
            (TELEMETRY, tele_mids[5:]),  # the rest of the batch, in order
        ]
    )
    assert decoded == [*tele_mids[:5], sos.mid, *tele_mids[5:]]  # nothing decoded twice
    stored: int = h.store.conn.execute(
        "SELECT count(DISTINCT msg_key) FROM readings WHERE rx_ms = ?", (h.clock.wall_ms,)
    ).fetchone()[0]
    assert stored == 41  # every message stored (and, by ``decoded``, each decoded once)
    assert [i["type"] for i in h.incidents() if i["type"] == "sos"] == ["sos"]
    h.close()


def test_a_batch_without_a_waiting_sos_commits_whole(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    acks: list[tuple[int, int]] = []
    h.pipeline.acker = lambda session, items: acks.append((session, len(items)))
    rng = random.Random(4)
    h.at(0)
    senders = [
        d
        for d in h.sim.values()
        if d.type != "sos_button" and not h.routing.is_safety_topic(traffic.telemetry(d, rng)[0])
    ]
    acks.clear()
    for i in range(40):
        topic, payload = traffic.telemetry(senders[i % len(senders)], rng)
        h.pipeline.submit(Inbound(TELEMETRY, 0, i + 1, 1, topic, payload, False, False, h.clock.wall_ms, 0))
    h.pipeline.run_once(flush=True)
    assert acks == [(TELEMETRY, 40)]
    h.close()
