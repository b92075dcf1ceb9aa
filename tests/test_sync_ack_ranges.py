"""Telemetry acknowledged by id range (``outbox_sent``) and deleted later by the sender's clean-up.

The sender runs against an in-process target that records every body it accepts, so each test can
check that every point went out exactly once, that the backlog figures count only unsent points,
and that the rows of accepted batches really leave the store.
"""

from __future__ import annotations

from collections import Counter

from cloud_sync import sender as sender_mod
from cloud_sync.outbox import SentRanges, add_counters, oldest_unsent_ms, thin
from cloud_sync.status import sync_status
from cloud_sync.targets import WriteOutcome
from gateway.core import store as st
from tests.sync_helpers import Feeder, readings


class Recorder:
    """Accepts every write (2xx) and keeps the lines."""

    name = "recorder"

    def __init__(self) -> None:
        self.lines: Counter[str] = Counter()
        self.bodies = 0
        self.closed = False

    def write(self, body: bytes) -> WriteOutcome:
        self.bodies += 1
        self.lines.update(body.decode().split("\n"))
        return WriteOutcome(204)

    def close(self) -> None:
        self.closed = True  # the sender closes its target when it stops


def _recording_sender(f: Feeder) -> tuple[Recorder, sender_mod.Sender]:
    """A sender that writes to a Recorder and sends without waiting for full batches."""
    t = Recorder()
    s = f.sender(target=t)
    s.flush = True
    return t, s


def _telemetry_lines(f: Feeder) -> list[str]:
    return [r[0] for r in f.q("SELECT line FROM outbox WHERE prio=2 ORDER BY id")]


def _clean_up_all(s: sender_mod.Sender) -> int:
    """Run the clean-up until nothing acknowledged is left; returns the slices it took."""
    slices = 1
    while s.cleanup():
        slices += 1
    return slices


def _unsent(f: Feeder) -> int:
    return int(f.q("SELECT rows FROM outbox_totals WHERE prio=2")[0][0])


def test_sent_ranges_merge_gaps_and_cover() -> None:
    r = SentRanges()
    assert r.gaps() == [(0, None)]
    r.add(1, 10)
    r.add(21, 30)
    assert r.items == [(1, 10), (21, 30)] and r.gaps() == [(10, 21), (30, None)]
    assert r.covers(5) and r.covers(21) and not r.covers(15) and not r.covers(31)
    # the batch in flight is left out of the gaps too
    assert r.gaps(extra=(11, 15)) == [(15, 21), (30, None)]
    merged, absorbed = r.add(11, 20)  # fills the hole: one range again
    assert merged == (1, 30) and sorted(absorbed) == [1, 21] and r.items == [(1, 30)]
    assert SentRanges([(40, 50), (5, 9), (10, 12)]).items == [(5, 12), (40, 50)]


def test_ack_records_range_then_cleanup_deletes_rows() -> None:
    f = Feeder("http://127.0.0.1:9", batch_size=50)
    try:
        f.batch(readings(230, st.now_ms()), incidents=2)
        expected = Counter(_telemetry_lines(f))
        t, s = _recording_sender(f)
        batch, _ = s.next_batch()
        while batch is not None:
            assert s.stream(batch)
            batch, _ = s.next_batch()
        # every point accepted once; the backlog is empty although the rows are still there
        assert _unsent(f) == 0 and sync_status(f.store.conn)["backlog_points"] == 0
        assert f.q("SELECT count(*) FROM outbox WHERE prio=2")[0][0] == 230
        assert f.q("SELECT lo, hi FROM outbox_sent") == [tuple(s.acked.items[0])]
        assert oldest_unsent_ms(f.store.conn) is None
        assert {k: v for k, v in t.lines.items() if k.startswith("edge_telemetry")} == expected
        assert _clean_up_all(s) >= 1
        assert f.outbox_rows() == 0 and f.q("SELECT count(*) FROM outbox_sent") == [(0,)]
        assert s.pending_bytes == 0
        sent = dict(f.q("SELECT name, value FROM counters WHERE name LIKE 'sync_sent%'"))
        assert sent["sync_sent.telemetry"] == 230 and sent["sync_sent.events"] == 2
        s.stop()
    finally:
        f.close()


def test_restart_after_ack_before_cleanup_sends_nothing_twice() -> None:
    f = Feeder("http://127.0.0.1:9", batch_size=40)
    try:
        f.batch(readings(200, st.now_ms()))
        t, s = _recording_sender(f)
        batch, _ = s.next_batch()
        assert batch is not None and s.stream(batch)  # five batches back to back, none cleaned up
        s.stop()  # ... then the gateway stops
        assert t.closed  # and closed its target
        assert sum(t.lines.values()) == 200 and _unsent(f) == 0 and t.bodies == 5
        assert f.q("SELECT count(*) FROM outbox WHERE prio=2")[0][0] == 200
        f.batch(readings(30, st.now_ms() + 10_000))
        s2 = f.sender(target=t)  # a new process: the ranges come from the store
        s2.flush = True
        s2.open()
        assert s2.acked.items and s2.pending_bytes > 0
        steps = 1
        while s2.step()[0] == 0.0:  # send the 30 new points, then clean up: until it would wait
            steps += 1
        assert steps >= 2
        s2.stop()
        assert max(t.lines.values()) == 1 and sum(t.lines.values()) == 230  # nothing sent twice
        assert f.outbox_rows() == 0 and _unsent(f) == 0
    finally:
        f.close()


def test_live_batches_and_gaps_send_every_point_once() -> None:
    """With live_share, newest batches jump ahead of the backlog; the oldest-first batches then
    fill the gaps between acknowledged ranges: nothing is skipped, nothing sent twice."""
    f = Feeder("http://127.0.0.1:9", batch_size=25, live_share=0.5)
    try:
        now = st.now_ms()
        for k in range(8):
            f.batch(readings(60, now + k * 1000), incidents=1, now=now + k * 1000)
        expected = Counter(_telemetry_lines(f))
        t, s = _recording_sender(f)
        for _ in range(200):
            batch, _ = s.next_batch()
            if batch is None:
                break
            assert s.stream(batch)
            if len(s.acked.items) > 1:
                f.batch(readings(10, now + 20_000), now=now + 20_000)  # live data keeps coming
                expected.update(_telemetry_lines(f)[-10:])
        assert _unsent(f) == 0
        got = {k: v for k, v in t.lines.items() if k.startswith("edge_telemetry")}
        assert got == expected and max(got.values()) == 1
        assert s.acked.items == [(s.acked.items[0][0], s.acked.items[0][1])]  # merged back into one
        assert _clean_up_all(s) >= 1
        assert f.outbox_rows() == 0
        s.stop()
    finally:
        f.close()


def test_thinning_skips_acknowledged_rows_and_inflight_recount() -> None:
    f = Feeder("http://127.0.0.1:9", batch_size=100)
    try:
        f.batch(readings(400, st.now_ms()))
        _, s = _recording_sender(f)
        first, _ = s.next_batch()
        assert first is not None and s.stream(first) and _unsent(f) == 0  # all 400 accepted, rows kept
        f.batch(readings(300, st.now_ms() + 10_000))
        batch, _ = s.next_batch()
        assert isinstance(batch, sender_mod.Span) and batch.count == 100
        # The quota thins while this batch is read but not yet acknowledged (the race the epoch closes).
        c = f.store.conn
        c.execute("BEGIN IMMEDIATE")
        deleted, _freed = thin(c, 3000)
        add_counters(c, {"sync_thinned": deleted})  # as OutboxProcessor._check_quota does
        c.execute("COMMIT")
        in_batch = f.q("SELECT count(*) FROM outbox WHERE prio=2 AND id BETWEEN ? AND ?", batch.lo, batch.hi)[0][0]
        assert deleted > 0 and in_batch == 100 - deleted  # the oldest unsent: the batch just read
        covered = "EXISTS (SELECT 1 FROM outbox_sent s WHERE o.id BETWEEN s.lo AND s.hi)"
        assert f.q(f"SELECT count(*) FROM outbox o WHERE prio=2 AND {covered}")[0][0] == 400  # sent: untouched
        assert s.settle(batch, sender_mod.WriteOutcome(204))
        unsent_rows = f.q(
            "SELECT count(*), coalesce(sum(bytes), 0) FROM outbox o WHERE prio=2"
            " AND NOT EXISTS (SELECT 1 FROM outbox_sent s WHERE o.id BETWEEN s.lo AND s.hi)"
        )[0]
        totals = f.q("SELECT rows, bytes FROM outbox_totals WHERE prio=2")[0]
        assert tuple(totals) == tuple(unsent_rows) and totals[0] == 200  # no double count of the thinned
        counters = dict(f.q("SELECT name, value FROM counters"))
        assert counters["sync_sent.telemetry"] == 400 + 100  # thinned while in flight, yet sent: counted as sent
        assert counters["sync_thinned"] == 0  # thinned, then found to be sent after all
        s.stop()
    finally:
        f.close()


def test_cleanup_runs_while_busy_above_its_share_of_the_quota() -> None:
    f = Feeder("http://127.0.0.1:9", batch_size=50, quota_mb=1)
    try:
        f.batch(readings(1000, st.now_ms()))
        _, s = _recording_sender(f)
        s.cleanup_at = 20_000  # bytes: about two batches
        batch, _ = s.next_batch()
        assert batch is not None and s.stream(batch)  # the whole backlog, back to back
        assert _unsent(f) == 0
        left = f.q("SELECT coalesce(sum(bytes), 0) FROM outbox WHERE prio=2")[0][0]
        assert left == s.pending_bytes <= 20_000  # cleaned up on the way, not only when idle
        assert f.q("SELECT count(*) FROM outbox WHERE prio=2")[0][0] < 1000
        s.stop()
    finally:
        f.close()
