"""The sender thread: outbox -> central store; a point leaves the backlog only after a 2xx.

It owns its own SQLite connection. Reads need no lock (WAL); each acknowledgement is one small
write transaction, so the pipeline's writer waits a few milliseconds at most. An accepted telemetry
batch is acknowledged by recording its id range in ``outbox_sent`` (totals, counters; no row is
touched); the rows themselves are deleted later, in slices of :data:`CLEANUP_ROWS`, when there is
nothing to send, after a failed write, or at once while they hold more than :data:`CLEANUP_SHARE`
of ``sync.quota_mb``. Deleting 5,000 rows costs as much CPU as reading them, and on a two-core
box that CPU is taken from the central store's own parser during a drain; deferring it lets a
backlog reach the central store sooner, and the space comes back within seconds of the drain.

Telemetry is read as a :class:`Span`: SQLite joins the request body in one aggregate query (no
Python object per point, GIL free during the read). ``synchronous=NORMAL`` on this connection: an
acknowledgement lost in a power cut only means the batch is sent again, and re-sent points are
idempotent (same series + timestamp).

Order: incident events (prio 0), then health (1), then telemetry (2). While a telemetry backlog
drains, ``live_share`` of the batches take the newest telemetry so live data is not starved.

Failure handling per reply (see docs/sync.md):
- 2xx: delete the batch.
- 413: split the batch in halves and send each (a single point too large is dead-lettered).
- 400 with a point-level message (InfluxDB names the bad line): dead-letter the named lines, send
  the rest again (idempotent); when no line is named, bisect down to the bad one.
- 429/503: wait Retry-After when given, else back off.
- 401/403: keep the data, raise a gateway-health alarm, back off and retry (a new token only needs
  a restart).
- anything else (other 4xx/5xx, no answer): keep the data, back off (exponential, capped, jittered).
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloud_sync import lineproto as lp
from cloud_sync.outbox import EPOCH_KEY, PRIO_NAMES, MiB, SentRanges, first_unsent_telemetry, sent_ranges
from cloud_sync.targets import Target, WriteOutcome, make_target
from gateway.core import store as st
from gateway.core.backoff import backoff_s
from gateway.core.histograms import SYNC_BATCH
from gateway.core.threadprio import yield_to_life_safety

if TYPE_CHECKING:
    from cloud_sync.outbox import OutboxProcessor
    from edge_config.sync_settings import SyncSettings

log = logging.getLogger("cloud_sync.sender")

IDLE_POLL_S = 0.25
MAX_RETRY_AFTER_S = 3600.0
ERROR_PERSIST_S = 10.0
DEAD_LETTER_MAX = 4096
MAX_ID = 1 << 62
CLEANUP_ROWS = 5000  # acknowledged rows deleted per clean-up transaction (a few ms; events never wait long)
CLEANUP_SHARE = 0.25  # acknowledged rows may hold this share of sync.quota_mb before clean-up runs while busy
# Incident events and life-safety readings per request. They are read as Python rows (~500 bytes
# each with the line); few at a time normally, but a backlog of life-safety readings after an
# outage must not take batch_size rows (twice, with the batch in flight) into memory.
URGENT_BATCH = 1000

# A 400 whose message says one of these is about particular points, not the whole request.
_POINT_ERROR = re.compile(
    r"unable to parse|partial write|field type conflict|invalid field|invalid tag|invalid boolean|invalid number|"
    r"bad timestamp|beyond retention|max-values-per-tag|dropped=|errors encountered on line",
    re.IGNORECASE,
)
_LINE_NO = re.compile(r"\bline (\d+)\b")
_PARSE = "unable to parse '"

Rows = list[tuple[Any, ...]]  # (id, line[, prio, bytes])


def _telemetry_in(c: sqlite3.Connection, lo: int, hi: int) -> tuple[int, int]:
    """(rows, accounted bytes) of the telemetry rows with ``lo <= id <= hi``."""
    n, nbytes = c.execute(
        "SELECT count(*), coalesce(sum(bytes), 0) FROM outbox WHERE prio=2 AND id BETWEEN ? AND ?", (lo, hi)
    ).fetchone()
    return int(n), int(nbytes)


@dataclass(frozen=True, slots=True)
class Span:
    """A telemetry batch: every prio-2 row with ``lo <= id <= hi`` (``count`` rows, ``nbytes``
    accounted bytes), and the request body SQLite joined for it. Every unsent telemetry row with
    ``cover_lo <= id <= cover_hi`` is in it (that range is recorded as sent on a 2xx); ``epoch``
    is ``meta.outbox_epoch`` as it was when the rows were read."""

    lo: int
    hi: int
    count: int
    nbytes: int
    body: bytes
    cover_lo: int = 0
    cover_hi: int = -1
    epoch: int = 0

    def __len__(self) -> int:
        return self.count


Batch = Rows | Span


def find_bad_lines(rows: Rows, message: str) -> set[int]:
    """Indexes of the rows the server's 400 message names (by text, or by 1-based line number)."""
    bad: set[int] = set()
    if _PARSE in message:
        by_line: dict[str, int] = {}
        for i, r in enumerate(rows):
            by_line.setdefault(r[1], i)
        start = 0
        while True:
            p = message.find(_PARSE, start)
            if p < 0:
                break
            p += len(_PARSE)
            end = message.find("'", p)
            while end >= 0:
                hit = by_line.get(message[p:end])
                if hit is not None:
                    bad.add(hit)
                    break
                end = message.find("'", end + 1)
            start = p
    if not bad and "line" in message and "errors encountered" in message:
        for m in _LINE_NO.finditer(message):
            n = int(m.group(1)) - 1
            if 0 <= n < len(rows):
                bad.add(n)
    return bad


class Sender:
    def __init__(
        self,
        store_path: str | Path,
        settings: SyncSettings,
        *,
        target: Target | None = None,
        shared: OutboxProcessor | None = None,
        on_alarm: Callable[[str, bool, dict[str, Any]], None] | None = None,
        clock: Callable[[], int] = st.now_ms,
    ) -> None:
        self.store_path = Path(store_path)
        self.s = settings
        self._target = target
        self.shared = shared  # the OutboxProcessor: .lock and .inflight (thinning skips in-flight rows)
        self.on_alarm = on_alarm
        self.clock = clock
        self.batch_size = int(settings.batch_size)
        self.max_age_ms = int(settings.max_batch_age_s * 1000)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.conn: sqlite3.Connection | None = None
        self._fails = 0
        self._live_credit = 0.0
        self._alarm_active = False
        self._persisted_error: tuple[str, float] | None = None
        self._pool: Any = None
        self.acked = SentRanges()  # acknowledged telemetry whose rows are not deleted yet (outbox_sent)
        self.pending_rows = 0  # rows in those ranges (estimates: forget requests may delete some)
        self.pending_bytes = 0  # and their accounted bytes
        self.cleanup_at = int(CLEANUP_SHARE * float(settings.quota_mb) * MiB)
        self.flush = False  # tests/bench: send partial telemetry batches without waiting for their age
        # status (also persisted in meta for other processes)
        self.last_success_ms: int | None = None
        self.last_error: str | None = None
        self.last_status: int | None = None
        self.sent = 0

    # --- lifecycle -------------------------------------------------------------------------------
    @property
    def target(self) -> Target:
        if self._target is None:
            self._target = make_target(self.s)
        return self._target

    def open(self) -> sqlite3.Connection:
        if self.conn is None:
            self.conn = st.connect(self.store_path)
            self.conn.execute("PRAGMA synchronous=NORMAL")
            # Debian builds SQLite with secure_delete on: every delete would rewrite whole pages.
            # FAST still zeroes what it can without extra I/O (the outbox holds no personal data by default).
            self.conn.execute("PRAGMA secure_delete=FAST")
            # SQLite's default page cache (2 MB). A drain reads each page once, and while nothing else
            # writes, a bigger cache kept the pages just sent: 16 MB of RSS after a drain.
            self.conn.execute("PRAGMA cache_size=-2000")
            self.acked = sent_ranges(self.conn)
            self.pending_rows = self.pending_bytes = 0
            for lo, hi in self.acked:
                n, nbytes = _telemetry_in(self.conn, lo, hi)
                self.pending_rows += n
                self.pending_bytes += nbytes
        return self.conn

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="cloud-sync", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._target is not None:
            try:
                self._target.close()
            except Exception:
                pass
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        # Catching up with the central store is bulk work: it yields the CPU to the pipeline and
        # the life-safety session (gateway/core/threadprio.py).
        yield_to_life_safety()
        self.open()
        while not self._stop.is_set():
            try:
                delay, wakeable = self.step()
            except sqlite3.Error as exc:
                log.error("sync: store error: %s", exc)
                delay, wakeable = 1.0, False
            except Exception:
                log.exception("sync: unexpected error")
                delay, wakeable = 1.0, False
            if delay > 0:
                if wakeable:
                    self._wake.wait(delay)
                    self._wake.clear()
                else:
                    self._stop.wait(delay)

    # --- one step ----------------------------------------------------------------------------------
    def step(self) -> tuple[float, bool]:
        """Send batches while full ones are ready. Returns (seconds to wait, whether a wake-up may cut it)."""
        batch, wait = self.next_batch()
        if batch is None:
            if self.acked and not self._stop.is_set():
                # Nothing to send: delete acknowledged rows, one short transaction per step, so an
                # incident event raised meanwhile waits for one slice at most.
                return (0.0 if self.cleanup() else wait), True
            return wait, True
        if self.stream(batch):
            self._fails = 0
            return 0.0, True
        if self.acked:
            self.cleanup()  # the link is down: use the wait to give space back
        return self._backoff(), False

    def stream(self, batch: Batch) -> bool:
        """Post batches back to back: while one request is in flight, this thread acknowledges the
        previous batch and reads the next (SQLite work overlaps the HTTP round trip). Stops at the
        first reply that is not 2xx and settles that batch the careful way (:meth:`settle`)."""
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(1, thread_name_prefix="cloud-sync-post", initializer=yield_to_life_safety)
        cur = batch
        self._set_inflight(cur)
        fut = self._pool.submit(self._post, cur)
        while True:
            nxt: Batch | None = None
            if not self._stop.is_set():
                nxt, _ = self.next_batch(after=cur)
            out = fut.result()
            if not out.ok:
                self._set_inflight(None)
                return self.settle(cur, out)
            if nxt:
                self._set_inflight(nxt)
                fut = self._pool.submit(self._post, nxt)
            self.ack(cur)
            self._ok()
            if not nxt:
                self._set_inflight(None)
                return True
            cur = nxt

    def _set_inflight(self, batch: Batch | None) -> None:
        if self.shared is not None:
            if isinstance(batch, Span):
                rng = (batch.lo, batch.hi)
            elif batch:
                rng = (min(r[0] for r in batch), max(r[0] for r in batch))
            else:
                rng = (0, -1)
            with self.shared.lock:
                self.shared.inflight = rng

    def _post(self, batch: Batch) -> WriteOutcome:
        body = batch.body if isinstance(batch, Span) else "\n".join(r[1] for r in batch).encode()
        t0 = time.perf_counter()
        out = self.target.write(body)
        SYNC_BATCH.observe(time.perf_counter() - t0, "ok" if out.ok else "failed")
        return out

    def _span(self, after: int, before: int | None, *, newest_from: int | None = None) -> Span | None:
        """The first ``batch_size`` telemetry rows with ``after < id < before`` (or, with
        ``newest_from``, from that id up), ascending, as a :class:`Span`.

        SQLite builds the body (``group_concat`` of the lines, as a blob: the UTF-8 bytes that go on
        the wire) in one C call: no Python object per row, and the GIL is free meanwhile, so the
        request in flight is not slowed down. The epoch is read by the same statement (one snapshot).
        """
        args: tuple[int, ...]
        if newest_from is not None:
            where, args = "id>=?", (newest_from,)
        else:
            where, args = "id>? AND id<?", (after, before if before is not None else MAX_ID)
        got = (
            self.open()
            .execute(
                "SELECT min(id), max(id), count(*), sum(bytes), CAST(group_concat(line, char(10)) AS BLOB),"
                f" (SELECT value FROM meta WHERE key='{EPOCH_KEY}')"
                f" FROM (SELECT id, line, bytes FROM outbox WHERE prio=2 AND {where} ORDER BY id LIMIT ?)",
                (*args, self.batch_size),
            )
            .fetchall()
        )
        if not got or not got[0][2]:
            return None
        lo, hi, count, nbytes, body, epoch = got[0]
        if newest_from is not None:
            cover = (int(lo), int(hi))
        elif count < self.batch_size and before is not None:
            cover = (after + 1, before - 1)  # the whole gap: it merges with the ranges on both sides
        else:
            cover = (after + 1, int(hi))
        return Span(int(lo), int(hi), int(count), int(nbytes or 0), bytes(body), *cover, int(epoch or 0))

    def next_batch(self, after: Batch | None = None) -> tuple[Batch | None, float]:
        """The next batch to send; with ``after`` (a batch in flight), one that does not overlap it.

        Incident events and health come as :data:`Rows` (few, through the partial index); telemetry
        as a :class:`Span` (a contiguous id range with its body already joined by SQLite)."""
        c = self.open()
        n = self.batch_size
        skip = json.dumps([r[0] for r in after]) if isinstance(after, list) else "[]"
        urgent = c.execute(
            "SELECT id, line, prio, bytes, created_ms FROM outbox WHERE prio<2"
            " AND id NOT IN (SELECT value FROM json_each(?)) ORDER BY prio, id LIMIT ?",
            (skip, min(n, URGENT_BATCH)),
        ).fetchall()
        # Incident events go at once. Life-safety readings and health points (the routine check-ins
        # of every SOS button and smoke detector, a few a second) ride with the next event or
        # telemetry request, waiting at most max_batch_age_s: a request of one point each was most
        # of the sender's CPU on a Pi (README "Pi budget").
        linger = 0.0
        if urgent:
            age = self.clock() - min(int(r[4]) for r in urgent)
            if (
                self.flush
                or after is not None
                or age >= self.max_age_ms
                or len(urgent) >= URGENT_BATCH
                or any(r[1].startswith(lp.M_INCIDENT) for r in urgent)
            ):
                return [r[:4] for r in urgent], 0.0
            linger = (self.max_age_ms - age) / 1000.0
        inflight = after if isinstance(after, Span) else None
        row = c.execute("SELECT rows FROM outbox_totals WHERE prio=2").fetchone()
        tele = (int(row[0]) if row else 0) - (inflight.count if inflight else 0)
        if tele <= 0:
            return None, (linger or IDLE_POLL_S)
        if after is not None and tele < n:
            return None, 0.0  # partial batches go the normal way (their age decides)
        if tele < n and not self.flush:
            oldest = first_unsent_telemetry(c, self.acked)
            if oldest is None:
                return None, (linger or IDLE_POLL_S)
            age = self.clock() - oldest[1]
            if age < self.max_age_ms:
                return None, min(linger or IDLE_POLL_S, IDLE_POLL_S, (self.max_age_ms - age) / 1000.0)
        if urgent:  # telemetry is due: what waited goes first (never behind telemetry)
            return [r[:4] for r in urgent], 0.0
        extra = (inflight.cover_lo, inflight.cover_hi) if inflight else None
        span: Span | None = None
        if tele > 2 * n and self.s.live_share > 0:
            self._live_credit += self.s.live_share
            if self._live_credit >= 1.0:
                self._live_credit -= 1.0
                # The newest n above everything sent or in flight (fewer there: the oldest instead).
                top = max(self.acked.top(), extra[1] if extra else 0)
                first = c.execute(
                    "SELECT id FROM outbox WHERE prio=2 AND id>? ORDER BY id DESC LIMIT 1 OFFSET ?", (top, n - 1)
                ).fetchall()
                if first:
                    span = self._span(0, None, newest_from=int(first[0][0]))
        if span is None:
            # Oldest first, in the gaps between acknowledged ranges (and the batch in flight).
            for after_id, before_id in self.acked.gaps(extra):
                span = self._span(after_id, before_id)
                if span is not None:
                    break
        return span, (0.0 if span else IDLE_POLL_S)

    def deliver(self, rows: Rows) -> bool:
        """Post ``rows``; True when every row is settled (accepted or dead-lettered)."""
        if not rows:
            return True
        self._set_inflight(rows)
        try:
            out = self._post(rows)
        finally:
            self._set_inflight(None)
        return self.settle(rows, out)

    def settle(self, batch: Batch, out: WriteOutcome) -> bool:
        """Act on the reply to ``batch``; True when every row is settled (accepted or dead-lettered)."""
        if out.ok:
            self.ack(batch)
            self._ok()
            return True
        status = out.status
        if isinstance(batch, Span):
            if status not in (400, 413):
                self._failed(out)
                return False
            rows = self._rows_of(batch)
            if len(rows) != batch.count:
                # Some were thinned since: the server's line numbers no longer match; ask again.
                return self.deliver(rows)
            return self.settle(rows, out)
        rows = batch
        if status == 413:
            if len(rows) > 1:
                mid = len(rows) // 2
                return self.deliver(rows[:mid]) and self.deliver(rows[mid:])
            self.dead_letter(rows, out)
            return True
        if status == 400 and _POINT_ERROR.search(out.message or ""):
            bad = find_bad_lines(rows, out.message)
            if bad:
                self.dead_letter([rows[i] for i in sorted(bad)], out)
                rest = [r for i, r in enumerate(rows) if i not in bad]
                return self.deliver(rest)  # the good lines again: idempotent if they were stored
            if len(rows) > 1:
                mid = len(rows) // 2
                return self.deliver(rows[:mid]) and self.deliver(rows[mid:])
            self.dead_letter(rows, out)
            return True
        self._failed(out)
        return False

    # --- store writes ----------------------------------------------------------------------------
    def _remove(self, c: sqlite3.Connection, rows: Rows) -> dict[int, tuple[int, int]]:
        """Delete ``rows``; returns {prio: (rows, bytes)} actually deleted (thinning may have won a race)."""
        prios = {r[2] for r in rows} if all(len(r) >= 4 for r in rows) else set()
        if len(prios) == 1:
            # A batch is a contiguous run of its priority class (ids grow in commit order), so a range
            # delete is exact, and ~5x cheaper than deleting 5000 ids one by one.
            (prio,) = prios
            ids = [r[0] for r in rows]
            n = c.execute("DELETE FROM outbox WHERE id BETWEEN ? AND ? AND prio=?", (min(ids), max(ids), prio)).rowcount
            if n == len(rows):
                nbytes = sum(r[3] for r in rows)
                c.execute("UPDATE outbox_totals SET rows=rows-?, bytes=bytes-? WHERE prio=?", (n, nbytes, prio))
                return {prio: (n, nbytes)}
            # some were thinned meanwhile: recount this class (rare)
            c.execute(
                "UPDATE outbox_totals SET rows=(SELECT count(*) FROM outbox WHERE prio=?1),"
                " bytes=(SELECT coalesce(sum(bytes), 0) FROM outbox WHERE prio=?1) WHERE prio=?1",
                (prio,),
            )
            return {prio: (n, 0)}
        got = c.execute(
            "DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?)) RETURNING prio, bytes",
            (json.dumps([r[0] for r in rows]),),
        ).fetchall()
        per: dict[int, tuple[int, int]] = {}
        for prio, nbytes in got:
            r, b = per.get(prio, (0, 0))
            per[prio] = (r + 1, b + nbytes)
        if per:
            c.executemany(
                "UPDATE outbox_totals SET rows=rows-?, bytes=bytes-? WHERE prio=?",
                [(r, b, p) for p, (r, b) in per.items()],
            )
        return per

    def _write(self, fn: Callable[[sqlite3.Connection], None]) -> None:
        with st.transaction(self.open()) as c:
            fn(c)

    def _rows_of(self, span: Span) -> Rows:
        """The rows of a span still in the outbox, in the order its body has them (the server's
        400 message may name lines by number)."""
        got = (
            self.open()
            .execute(
                "SELECT id, line, prio, bytes FROM outbox WHERE prio=2 AND id BETWEEN ? AND ? ORDER BY id",
                (span.lo, span.hi),
            )
            .fetchall()
        )
        pool: dict[bytes, list[tuple[Any, ...]]] = {}
        for r in reversed(got):
            pool.setdefault(r[1].encode(), []).append(r)
        rows: Rows = []
        for line in span.body.split(b"\n"):
            same = pool.get(line)
            if same:
                rows.append(same.pop())
        return rows

    def _ack_span(self, c: sqlite3.Connection, span: Span, ranges: SentRanges) -> dict[int, tuple[int, int]]:
        """Record an accepted span as sent (``outbox_sent``; its rows are deleted by :meth:`cleanup`).
        ``ranges`` is a copy of :attr:`acked` that becomes it once the transaction commits."""
        row = c.execute("SELECT value FROM meta WHERE key=?", (EPOCH_KEY,)).fetchone()
        if (int(row[0]) if row else 0) == span.epoch:
            n, nbytes = span.count, span.nbytes
        else:  # thinning or a "forget" request deleted unsent telemetry since the read: count what is left
            n, nbytes = _telemetry_in(c, span.cover_lo, span.cover_hi)
        c.execute("UPDATE outbox_totals SET rows=rows-?, bytes=bytes-? WHERE prio=2", (n, nbytes))
        (lo, hi), absorbed = ranges.add(span.cover_lo, span.cover_hi)
        if absorbed:
            c.execute("DELETE FROM outbox_sent WHERE lo IN (SELECT value FROM json_each(?))", (json.dumps(absorbed),))
        c.execute("INSERT OR REPLACE INTO outbox_sent(lo, hi) VALUES (?, ?)", (lo, hi))
        return {2: (int(n), int(nbytes))}

    @staticmethod
    def _delete_slice(c: sqlite3.Connection, ranges: SentRanges) -> int:
        """Delete the acknowledged rows of the first ``CLEANUP_ROWS`` ids of the oldest range (in
        the caller's transaction) and shrink the range; ``ranges`` is updated to match. Returns the
        rows deleted. Ids are nearly dense, so a slice of ids is about a slice of rows, without a
        query to find where the slice ends."""
        lo, hi = ranges.items[0]
        end = min(hi, lo + CLEANUP_ROWS - 1)
        n = c.execute("DELETE FROM outbox WHERE prio=2 AND id BETWEEN ? AND ?", (lo, end)).rowcount
        c.execute("DELETE FROM outbox_sent WHERE lo=?", (lo,))
        if end < hi:
            c.execute("INSERT INTO outbox_sent(lo, hi) VALUES (?, ?)", (end + 1, hi))
            ranges.items[0] = (end + 1, hi)
        else:
            ranges.items.pop(0)
        return max(0, n)

    def _cleaned(self, n: int) -> None:
        if not self.acked or n >= self.pending_rows:
            self.pending_rows = self.pending_bytes = 0
            return
        self.pending_bytes -= self.pending_bytes * n // self.pending_rows
        self.pending_rows -= n

    def cleanup(self) -> bool:
        """Delete one slice of acknowledged telemetry rows (the oldest range first). True when more remain."""
        if not self.acked:
            return False
        ranges = SentRanges(self.acked.items)
        deleted = 0

        def fn(c: sqlite3.Connection) -> None:
            nonlocal deleted
            deleted = self._delete_slice(c, ranges)

        self._write(fn)
        self.acked = ranges
        self._cleaned(deleted)
        return bool(self.acked)

    def ack(self, batch: Batch) -> None:
        sent = batch.count if isinstance(batch, Span) else len(batch)
        now = self.clock()
        ranges = SentRanges(self.acked.items) if isinstance(batch, Span) else None
        recorded = (0, 0)  # rows, bytes now waiting for clean-up
        deleted = 0

        def fn(c: sqlite3.Connection) -> None:
            nonlocal recorded, deleted
            if isinstance(batch, Span):
                assert ranges is not None
                per = self._ack_span(c, batch, ranges)
                recorded = per[2]
                if self.pending_bytes + recorded[1] > self.cleanup_at:
                    # A long drain must not hold more than its share of the quota twice: clean up
                    # one slice per batch, in the same transaction (one commit).
                    deleted = self._delete_slice(c, ranges)
            else:
                per = self._remove(c, batch)
            removed = sum(r for r, _ in per.values())
            deltas: dict[str, int] = {"sync_sent": sent}
            for p, (r, _) in per.items():
                deltas[f"sync_sent.{PRIO_NAMES.get(p, p)}"] = r
            if removed < sent:
                # Thinned by the quota while in flight, yet the server has them: not thinned after all.
                deltas["sync_thinned"] = removed - sent
                deltas["sync_sent.telemetry"] = deltas.get("sync_sent.telemetry", 0) + sent - removed
            c.executemany(
                "INSERT INTO counters(name, value) VALUES (?,?)"
                " ON CONFLICT(name) DO UPDATE SET value=value+excluded.value",
                [(k, v) for k, v in deltas.items() if v],
            )
            c.execute(
                "INSERT INTO meta(key, value) VALUES ('sync_last_success_ms', ?)"
                " ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (str(now),),
            )

        self._write(fn)
        if ranges is not None:
            self.acked = ranges
            self.pending_rows += recorded[0]
            self.pending_bytes += recorded[1]
            if deleted:
                self._cleaned(deleted)
        self.sent += sent
        self.last_success_ms = now

    def dead_letter(self, rows: Rows, out: WriteOutcome) -> None:
        """Move rows the server refused for their content to the gateway's dead letters."""
        now = self.clock()
        detail = f"HTTP {out.status}: {out.message}"[:500]
        log.error("sync: %d point(s) refused by the central store, moved to dead letters: %s", len(rows), detail)

        def fn(c: sqlite3.Connection) -> None:
            self._remove(c, rows)
            c.executemany(
                "INSERT INTO dead_letters(rx_ms, topic, driver, reason, detail, payload_len, payload_excerpt)"
                " VALUES (?,?,?,?,?,?,?)",
                [
                    (
                        now,
                        "$sync/" + line.split(",", 1)[0].split(" ", 1)[0],
                        "cloud_sync",
                        "sync_rejected",
                        detail,
                        len(line.encode()),
                        line.encode()[:DEAD_LETTER_MAX],
                    )
                    for line in (r[1] for r in rows)
                ],
            )
            c.execute(
                "INSERT INTO counters(name, value) VALUES ('dead_letters.sync_rejected', ?)"
                " ON CONFLICT(name) DO UPDATE SET value=value+excluded.value",
                (len(rows),),
            )

        self._write(fn)

    # --- status / backoff ------------------------------------------------------------------------
    def _ok(self) -> None:
        if self.last_error is not None:
            log.info("sync: central store accepts writes again")
        self.last_error = None
        self.last_status = 204
        if self._alarm_active:
            self._alarm_active = False
            if self.on_alarm is not None:
                self.on_alarm("sync_unauthorized", False, {})
        if self._persisted_error is not None:
            self._persisted_error = None
            self._persist_error(None)

    def _failed(self, out: WriteOutcome) -> None:
        self._fails += 1
        self.last_status = out.status
        msg = f"HTTP {out.status}: {out.message}" if out.status else (out.message or "no answer")
        self.last_error = msg[:500]
        self._retry_after = out.retry_after_s if out.status in (429, 503) else None
        if self._fails == 1 or self._fails % 20 == 0:
            log.warning("sync: write failed (%d in a row), data kept: %s", self._fails, self.last_error)
        if out.status in (401, 403) and not self._alarm_active:
            self._alarm_active = True
            if self.on_alarm is not None:
                self.on_alarm("sync_unauthorized", True, {"status": out.status, "message": out.message[:300]})
        prev = self._persisted_error
        if prev is None or prev[0] != self.last_error or time.monotonic() - prev[1] > ERROR_PERSIST_S:
            self._persisted_error = (self.last_error, time.monotonic())
            self._persist_error(self.last_error)

    def _persist_error(self, error: str | None) -> None:
        now = self.clock()

        def fn(c: sqlite3.Connection) -> None:
            if error is None:
                c.execute("DELETE FROM meta WHERE key IN ('sync_last_error', 'sync_last_status')")
                return
            c.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                [
                    ("sync_last_error", error),
                    ("sync_last_error_ms", str(now)),
                    ("sync_last_status", str(self.last_status)),
                ],
            )

        try:
            self._write(fn)
        except sqlite3.Error as exc:
            log.error("sync: cannot record the error in the store: %s", exc)

    _retry_after: float | None = None

    def _backoff(self) -> float:
        if self._retry_after is not None:
            return min(max(self._retry_after, 0.05), MAX_RETRY_AFTER_S)
        # the gateway's one backoff: gateways that lost the uplink together spread out
        return backoff_s(self._fails, self.s.backoff_min_s, self.s.backoff_max_s)
