"""The ingest pipeline: decode, resolve, commit in groups, then acknowledge.

Runs in one dedicated thread that owns the store's writer connection. SQLite calls block, so
they must not run on the asyncio event loop; a single writer thread also means no lock
contention inside SQLite and one fsync per batch (group commit) instead of one per message.

Per batch:  DUP check -> life-safety topics left to their own session -> size check -> driver ->
device resolution -> one transaction (readings, device registry, dead letters, the counters of
all of it, the chain's stages) -> COMMIT -> PUBACKs -> notify listeners (API stream) of what changed.

Life-safety messages arrive on their own MQTT session and queue; the thread always takes them
first and commits them in their own transaction, which may use the store's reserved space.
"""

from __future__ import annotations

import itertools
import json
import logging
import queue
import sqlite3
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from drivers.base import AVAILABILITY, BRIDGE, DecodeError, Reading
from gateway.core import store as st
from gateway.core.compactjson import make_dumps
from gateway.core.contract import BatchResult, DeviceInfo, Resolved, Stage, StatusChange
from gateway.core.histograms import MESSAGE_COMMIT, observe_committed
from gateway.ingest.mqtt import LIFE_SAFETY, SESSION_NAMES, TELEMETRY, Inbound
from gateway.ingest.routing import Routing

log = logging.getLogger("gateway.ingest.pipeline")

_T = TypeVar("_T")

# How far back (in readings rows) a redelivered (DUP) message is looked for. Redeliveries after a
# reconnect are the broker's in-flight window, far smaller than this.
DUP_WINDOW_ROWS = 200_000
# A device clock further than this from ours is not trusted (see README "Clock policy").
MAX_CLOCK_SKEW_MS = 5 * 60 * 1000
DEAD_LETTER_EXCERPT = 256
BATCH_MAX = 1000
# Messages received on one session and not yet taken by the pipeline thread. At this many the
# session's paho network thread waits in ``submit`` until the pipeline has taken the queue down to
# half: it reads nothing from its socket meanwhile, so the broker keeps the rest (TCP back-pressure;
# nothing is dropped or acknowledged early). The broker's ``max_inflight_messages`` does not bound
# this queue: Mosquitto 2.0 sent a consumer that acknowledges as it commits 14,000-28,000 messages
# past its 1,000 (after an outage the whole backlog came into memory: ~70 MB during
# bench/pi_budget.py's hour). 1,000 messages are ~1 MB and 0.2-1 s of the pipeline's work.
QUEUE_MAX = 1000
# Telemetry commits at most this many messages at once: an SOS arriving meanwhile waits for one
# such commit at most (a few ms), while an fsync still covers a large group.
TELEMETRY_BATCH = 64
RETRY_HELD_S = 2.0
PRUNE_EVERY_S = 30.0
# Coalesced device rows (last seen, values, battery) written per commit. Each tick hands a second's
# worth over (~1,000 rows at a busy site: 15-50 ms of writing in one go, which an SOS arriving
# meanwhile had to wait for); the telemetry commits that follow write them this many at a time.
DEVICE_ROWS_PER_COMMIT = 128
PRUNE_SLICE = 20_000
# The readings' first and last id, each a B-tree lookup. `SELECT min(id), max(id)` in one query
# is a full scan in SQLite (the min/max shortcut takes a single aggregate): ~0.2 s of CPU on a
# week's 2.4M rows at every pass, the first of them during start-up.
PRUNE_BOUNDS_SQL = "SELECT (SELECT min(id) FROM readings), (SELECT max(id) FROM readings)"


@dataclass
class _BatchBuffer:
    """Everything one batch will write, gathered before the transaction opens."""

    result: BatchResult
    already: set[int] = field(default_factory=set)  # msg keys of DUPs already committed earlier
    in_batch: set[int] = field(default_factory=set)
    counters: Counter[str] = field(default_factory=Counter)
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    dead: list[tuple[Any, ...]] = field(default_factory=list)
    unconf: dict[tuple[str, str], tuple[Any, ...]] = field(default_factory=dict)
    touched: dict[str, tuple[int, float | None]] = field(default_factory=dict)  # device -> (last seen, battery)
    retained_updates: dict[str, int] = field(default_factory=dict)
    alias_updates: list[tuple[str, str, str, int]] = field(default_factory=list)
    bridges: dict[str, tuple[int, int]] = field(default_factory=dict)


def msg_key(item: Inbound) -> int:
    crc = zlib.crc32(item.payload, zlib.crc32(item.topic.encode()))
    return (item.session << 48) | (item.mid << 32) | crc


class FaultInjector:
    """Test hook: make the next N commits fail as an I/O error would."""

    def __init__(self) -> None:
        self.fail_next = 0

    def check(self) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise sqlite3.OperationalError("disk I/O error (injected)")


class Pipeline:
    def __init__(
        self,
        store: st.Store,
        routing: Routing,
        *,
        config_rev: int,
        acker: Callable[[int, list[Inbound]], None],
        stages: Sequence[Stage] = (),
        on_commit: Callable[[BatchResult], None] | None = None,
        dead_letter_limit: int = 10_000,
        clock: Callable[[], int] = st.now_ms,
        commit_delay_s: float = 0.0,
        retention_ms: int = 30 * 86_400_000,
        prune_at_pct: int = 80,
        queue_max: int = QUEUE_MAX,
    ) -> None:
        self.store = store
        self.conn = store.conn
        self.routing = routing
        self.config_rev = config_rev
        self.acker = acker
        self.stages: list[Stage] = list(stages)
        self.on_commit = on_commit
        self.dead_letter_limit = dead_letter_limit
        self.clock = clock
        self.faults = FaultInjector()
        self.commit_delay_s = commit_delay_s
        self.retention_ms = retention_ms
        self.prune_at_pct = prune_at_pct
        self._next_prune = 0.0
        self.pruned_total = 0
        self._tele_buf: list[Inbound] = []
        # True while telemetry waits in ``_tele_buf`` for its commit deadline, which the pipeline
        # thread sleeps until anyway: more telemetry then need not wake it (see ``submit``).
        self._tele_waiting = False
        self._silence_for: Routing | None = None  # the routing _silence_ms was made from
        self._silence_ms: list[tuple[str, float]] = []  # (device id, ms of silence before offline)
        self._q_safety: queue.SimpleQueue[Inbound] = queue.SimpleQueue()
        self._q_tele: queue.SimpleQueue[Inbound] = queue.SimpleQueue()
        self.queue_max = max(2, queue_max)
        # Set while a queue has room; a session's network thread that filled its queue waits on it.
        self._room_safety = threading.Event()
        self._room_tele = threading.Event()
        self.queue_waits = 0  # times a session's network thread waited for room (back-pressure)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._held: list[Inbound] = []  # received, not committed (store refused); never acked
        self._held_since = 0.0
        self.store_full = False
        self.last_commit_error: str | None = None
        self.committed_total = 0
        self._values: dict[str, dict[str, Any]] = {}
        self._online: dict[str, int | None] = {}
        self._last_seen: dict[str, int] = {}
        self._retained: dict[str, int] = {}
        self._next_tick = 0.0
        self._dead_letters_since_trim = 0
        self._events: queue.SimpleQueue[tuple[str, str, dict[str, Any]]] = queue.SimpleQueue()
        self._dirty: dict[str, tuple[int, float | None]] = {}  # device rows to hand over at the next tick
        self._rows_due: dict[str, tuple[int, float | None]] = {}  # handed over; written a slice per commit
        self._calls: queue.SimpleQueue[tuple[Callable[..., Any], Future[Any], list[float] | None]] = queue.SimpleQueue()
        self._load_state()

    # --- start-up ------------------------------------------------------------------------------
    def _load_state(self) -> None:
        c = self.conn
        for dev_id, vals, online, last_seen in c.execute(
            "SELECT device_id, last_values, online, last_seen_ms FROM devices"
        ):
            self._values[dev_id] = json.loads(vals)
            self._online[dev_id] = online
            if last_seen is not None:
                self._last_seen[dev_id] = last_seen
        for drv, alias, addr in c.execute("SELECT driver, alias, address FROM aliases"):
            self.routing.aliases.setdefault((drv, alias), addr)
        self._retained = {t: d for t, d in c.execute("SELECT topic, digest FROM retained_seen")}
        # Every owned device gets a registry row, so "never heard from" is visible and timed.
        now = self.clock()
        with st.transaction(c):
            c.executemany(
                "INSERT INTO devices(device_id, since_ms, config_rev) VALUES (?,?,?) ON CONFLICT(device_id) DO NOTHING",
                [(d.id, now, self.config_rev) for d in self.routing.by_id.values()],
            )

    # --- producer side (paho network threads) --------------------------------------------------
    def submit(self, item: Inbound) -> None:
        q = self._q_safety if item.session == LIFE_SAFETY else self._q_tele
        q.put(item)
        # Each wake-up costs both threads a context switch and a GIL hand-over: at a steady 40 msg/s
        # that was most of the paho thread's CPU. Telemetry arriving while a group commit waits for
        # its deadline only wakes the pipeline when a full batch is there.
        waits_anyway = q is self._q_tele and self._tele_waiting and q.qsize() < TELEMETRY_BATCH
        if not waits_anyway and not self._wake.is_set():  # Event.set takes a lock; most find it set
            self._wake.set()
        if q.qsize() >= self.queue_max:
            self._wait_room(q)

    def _wait_room(self, q: queue.SimpleQueue[Inbound]) -> None:
        """Back-pressure (QUEUE_MAX): wait until the pipeline thread has taken ``q`` down to half.
        Only while that thread runs, and never on it (in-process tests feed ``run_once`` themselves)."""
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return
        room = self._room_safety if q is self._q_safety else self._room_tele
        low = self.queue_max // 2
        self.queue_waits += 1
        while q.qsize() > low and thread.is_alive() and not self._stop.is_set():
            room.clear()
            if q.qsize() <= low:  # taken between the check and the clear
                break
            self._wake.set()
            room.wait(0.1)

    def call(
        self, fn: Callable[[sqlite3.Connection, BatchResult, int], _T], meter: list[float] | None = None
    ) -> Future[_T]:
        """Run ``fn(conn, result, now_ms)`` in its own transaction on the pipeline thread.

        All writes go through this one thread (the API's incident actions included), so SQLite
        never sees two writers and every change reaches the same stages and listeners.
        The future holds fn's return value, or its exception (the transaction is then rolled back).
        ``meter``, when given, gets this thread's time on the call appended (BEGIN to COMMIT, fsync
        included): what the call took from ingest, charged to API requests by their Governor.
        """
        fut: Future[_T] = Future()
        self._calls.put((fn, fut, meter))
        self._wake.set()
        return fut

    def post_event(self, kind: str, severity: str, detail: dict[str, Any]) -> None:
        """Record a gateway-health event from any thread; written by the pipeline thread."""
        self._events.put((kind, severity, detail))
        self._wake.set()

    @property
    def backlog(self) -> int:
        """Messages received and not yet committed (approximate; read-only, from any thread).
        The API throttles itself while this is high (gateway/api Governor)."""
        return self._q_safety.qsize() + self._q_tele.qsize() + len(self._tele_buf) + len(self._held)

    # --- thread ----------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pipeline", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _take(self, q: queue.SimpleQueue[Inbound], limit: int) -> list[Inbound]:
        out: list[Inbound] = []
        try:
            while len(out) < limit:
                out.append(q.get_nowait())
        except queue.Empty:
            pass
        room = self._room_safety if q is self._q_safety else self._room_tele
        if not room.is_set() and q.qsize() <= self.queue_max // 2:
            room.set()  # a session's network thread waits for room (submit)
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._wait_s())
            self._wake.clear()
            self.run_once()
        self.run_once(flush=True)  # commit what arrived before stop
        self._tick(all_rows=True)  # and write every coalesced device row

    def _wait_s(self) -> float:
        """Sleep until new work, the telemetry buffer's commit deadline or the next tick."""
        wait = max(0.0, self._next_tick - time.monotonic())
        if self._tele_buf:
            due = self._tele_buf[0].rx_mono_ns / 1e9 + self.commit_delay_s
            wait = min(wait, max(0.0, due - time.monotonic()))
        return min(wait, 0.2)

    def run_once(self, *, flush: bool = False) -> None:
        """Process what is queued now (public for in-process tests; ``flush`` ignores the delay).

        Order: life-safety messages first, always in their own immediate commit; then API calls;
        then telemetry, gathered for up to ``commit_delay_s`` (or TELEMETRY_BATCH messages) so that
        one fsync covers many messages even at a quiet site's 20 msg/s (SD-card wear), in batches
        small enough that an SOS arriving meanwhile waits only for a short one.
        """
        buf = self._tele_buf
        while True:
            safety = self._take(self._q_safety, BATCH_MAX)
            if safety:
                self._commit_batch(safety, LIFE_SAFETY)
                continue
            if self._run_calls():
                continue
            buf.extend(self._take(self._q_tele, TELEMETRY_BATCH - len(buf)))
            if self._held:
                if time.monotonic() - self._held_since < RETRY_HELD_S:
                    self._held.extend(buf)  # the store refused writes: keep order, retry later
                    buf.clear()
                    break
                buf[:0] = self._held
                self._held = []
            if buf and (
                flush
                or len(buf) >= TELEMETRY_BATCH
                or time.monotonic_ns() - buf[0].rx_mono_ns >= self.commit_delay_s * 1e9
            ):
                batch = buf[:TELEMETRY_BATCH]
                del buf[:TELEMETRY_BATCH]
                self._commit_batch(batch, TELEMETRY)
                continue
            # Set before the queue is looked at again, so that a message ``submit`` did not wake us
            # for is either seen here or finds the flag down and wakes us itself.
            self._tele_waiting = bool(buf)
            if not buf and not self._q_tele.empty():
                continue
            break
        if time.monotonic() >= self._next_tick:
            self._next_tick = time.monotonic() + 1.0
            self._tick()

    def _run_calls(self) -> bool:
        """Run queued calls (API actions); False when there were none."""
        ran = False
        while True:
            try:
                fn, fut, meter = self._calls.get_nowait()
            except queue.Empty:
                return ran
            ran = True
            if not fut.set_running_or_notify_cancel():
                continue
            result = BatchResult()
            c = self.conn
            now = self.clock()
            t0 = time.perf_counter()
            try:
                with st.transaction(c):
                    value = fn(c, result, now)
                    for stage in self.stages:
                        stage.after(c, result, now)
            except BaseException as exc:
                self._discard_open_transaction()
                fut.set_exception(exc)
                continue
            finally:
                if meter is not None:  # the caller is charged this thread's time (the API Governor)
                    meter.append(time.perf_counter() - t0)
            fut.set_result(value)
            observe_committed(self.conn, result)
            if self.on_commit is not None:
                self.on_commit(result)

    # --- one batch -------------------------------------------------------------------------------
    def _commit_batch(self, items: list[Inbound], session: int) -> None:
        result = BatchResult()
        try:
            self.store.set_page_limit(life_safety=session == LIFE_SAFETY)
            done = self._write(items, result)
            if done < len(items):
                # A life-safety message arrived while this batch was being decoded: what is
                # decoded commits now, the rest goes back to the head of the buffer, in order,
                # and the life-safety message is next (run_once takes it first).
                self._tele_buf[:0] = items[done:]
                items = items[:done]
        except (sqlite3.Error, st.StoreError) as exc:
            err = exc if isinstance(exc, st.StoreError) else st.classify_sqlite_error(exc)
            self._on_write_failed(items, session, err)
            return
        except Exception as exc:  # a processor bug: keep the messages unacknowledged, keep running
            log.exception("batch failed outside the store")
            self._on_write_failed(items, session, st.StoreWriteFailed(f"{type(exc).__name__}: {exc}"))
            return
        finally:
            if session == LIFE_SAFETY:
                self.store.set_page_limit(life_safety=False)
        if (self.store_full and session == TELEMETRY) or (self.last_commit_error and not self.store_full):
            # Only a telemetry commit proves the soft quota has room again; a life-safety commit
            # may have used the reserve.
            self.store_full = False
            self.last_commit_error = None
            log.warning("store accepts writes again")
        self.committed_total += len(items)
        result.committed = len(items)
        # Acknowledge only now: the batch is on disk.
        self.acker(session, items)
        done = time.monotonic_ns()
        MESSAGE_COMMIT.observe_many(((done - i.rx_mono_ns) / 1e9 for i in items), SESSION_NAMES[session])
        observe_committed(self.conn, result)
        if self.on_commit is not None:
            self.on_commit(result)

    def _on_write_failed(self, items: list[Inbound], session: int, err: st.StoreError) -> None:
        self._discard_open_transaction()
        # Keep the messages unacknowledged: the broker still holds them; we retry, and a crash now
        # means the broker redelivers them. The broker stops sending past its in-flight window,
        # so this list cannot grow without bound.
        if not self._held:
            self._held_since = time.monotonic()
        self._held = items + self._held
        first = isinstance(err, st.StoreFull) and not self.store_full
        self.store_full = isinstance(err, st.StoreFull)
        self.last_commit_error = str(err)
        if first or not isinstance(err, st.StoreFull):
            log.error(
                "store refused a %s batch (%d messages, kept unacknowledged): %s",
                "life-safety" if session == LIFE_SAFETY else "telemetry",
                len(items),
                err,
            )
        if isinstance(err, st.StoreFull):
            self._record_store_full(len(items))

    def _record_store_full(self, held: int) -> None:
        """A visible alarm, written with the reserve so it fits even when telemetry does not."""
        try:
            self.store.set_page_limit(life_safety=True)
            c = self.conn
            with st.transaction(c):
                c.execute(
                    "INSERT INTO gateway_events(ts_ms, kind, severity, detail, config_rev) VALUES (?,?,?,?,?)",
                    (
                        self.clock(),
                        "store_full",
                        "critical",
                        json.dumps({"held_messages": held, "used_bytes": self.store.used_bytes()}),
                        self.config_rev,
                    ),
                )
                self.store.add_counters({"store_full_refusals": 1})
        except sqlite3.Error as exc:
            self._discard_open_transaction()
            log.error("cannot record the store-full alarm: %s", exc)
        finally:
            self.store.set_page_limit(life_safety=False)

    def _discard_open_transaction(self) -> None:
        """After a failure, roll back a transaction still open on the writer connection.

        st.transaction rolls back what it began; this also clears what it cannot: a transaction
        left open by a ROLLBACK that failed, or one already open when a BEGIN then failed. Every
        failure path of this thread has always ended with a ROLLBACK for that reason: one stuck
        transaction would make every later BEGIN here fail, and the gateway would stop storing.
        """
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    def _find_committed(self, keys: list[int]) -> set[int]:
        if not keys:
            return set()
        row = self.conn.execute("SELECT max(id) FROM readings").fetchone()
        floor = (row[0] or 0) - DUP_WINDOW_ROWS
        marks = ",".join("?" * len(keys))
        return {
            k
            for (k,) in self.conn.execute(
                f"SELECT DISTINCT msg_key FROM readings WHERE id > ? AND msg_key IN ({marks})", (floor, *keys)
            )
        }

    def _write(self, items: list[Inbound], result: BatchResult) -> int:
        """Decode ``items`` and commit them; how many were (all but a telemetry batch's tail).

        A telemetry batch stops decoding at the first message after which a life-safety message
        is waiting, so an SOS waits for at most one message's decoding and the commit of what was
        decoded, not for the whole batch: under a Pi's CPU a 64-message batch is ~6 ms of CPU and
        25-100 ms of wall time (bench/pi_budget.py). The caller keeps the undecoded tail.
        """
        buf = _BatchBuffer(result)
        keys = [msg_key(i) for i in items]
        buf.already = self._find_committed([k for k, i in zip(keys, items, strict=True) if i.dup])
        safety_waiting = self._q_safety.empty if items and items[0].session == TELEMETRY else None
        done = 0
        for item, key in zip(items, keys, strict=True):
            try:
                self._one(item, key, buf)
            except Exception as exc:  # never let one message stop the batch or the thread
                log.exception("unexpected error on %s", item.topic)
                buf.dead.append(self._dead(item, None, "pipeline_error", f"{type(exc).__name__}: {exc}"[:300]))
            done += 1
            if safety_waiting is not None and not safety_waiting():
                break
        buf.counters["messages_committed"] += done
        # A life-safety commit carries nothing else: the device rows wait for the next telemetry one.
        self._commit(buf, 0 if items and items[0].session == LIFE_SAFETY else DEVICE_ROWS_PER_COMMIT)
        return done

    def _one(self, item: Inbound, key: int, buf: _BatchBuffer) -> None:
        routing = self.routing
        if key in buf.in_batch or (item.dup and key in buf.already):
            buf.counters["duplicates_skipped"] += 1
            return
        buf.in_batch.add(key)
        if item.session == TELEMETRY and routing.safety_filters and routing.is_safety_topic(item.topic):
            # Both sessions receive this topic and the life-safety session judges it: stores it or
            # dead-letters it. Skipping before any check keeps one message one row, one count.
            buf.counters["left_to_safety_session"] += 1
            return
        payload = item.payload
        limit = routing.payload_limit(item.topic)
        if len(payload) > limit:
            buf.dead.append(
                self._dead(item, None, "oversized", f"payload is {len(payload)} bytes; the limit is {limit}")
            )
            return
        spec = routing.driver_for(item.topic)
        if spec is None:
            buf.dead.append(self._dead(item, None, "no_driver", "no ingest source matches this topic"))
            return
        if item.retain:
            digest = zlib.crc32(payload)
            if self._retained.get(item.topic) == digest:
                buf.counters["retained_replays"] += 1
                return
            buf.retained_updates[item.topic] = digest
            self._retained[item.topic] = digest
        try:
            readings = spec.decode(item.topic, payload)
        except DecodeError as exc:
            buf.dead.append(self._dead(item, spec.name, exc.reason, exc.detail))
            return
        except Exception as exc:  # a driver bug must not stall ingest: dead-letter and go on
            buf.dead.append(self._dead(item, spec.name, "driver_bug", f"{type(exc).__name__}: {exc}"[:300]))
            return
        buf.counters[f"messages.{spec.name}"] += 1
        flags = st.FLAG_RETAINED if item.retain else 0
        if item.session == LIFE_SAFETY:
            flags |= st.FLAG_LIFE_SAFETY
        for r in readings:
            if r.kind == BRIDGE:
                self._bridge(spec.name, r, item, key, flags, buf)
                continue
            dev = routing.resolve(spec.name, r.device)
            if dev is None:
                if routing.is_foreign(spec.name, r.device):
                    buf.counters["foreign_device_messages"] += 1
                else:
                    buf.counters["unconfigured_messages"] += 1
                    self._unconfigured(spec.name, r.device, item, r.values, buf)
                continue
            ts, fl = self._timestamp(r, item.rx_ms)
            fl |= flags
            if dev.resident_id:
                fl |= st.FLAG_PERSONAL
            buf.rows.append(
                (item.rx_ms, ts, dev.id, r.kind, _dumps(r.values), fl, key, self.config_rev, dev.resident_id)
            )
            buf.result.resolved.append(Resolved(dev, r, ts, item.rx_ms, fl, item.session))
            self._apply_state(dev, r, ts, item.rx_ms, item.retain, buf)

    def _commit(self, buf: _BatchBuffer, device_rows: int) -> None:
        c = self.conn
        rev = self.config_rev
        rows, dead, unconf, touched = buf.rows, buf.dead, buf.unconf, buf.touched
        retained_updates, alias_updates, counters, result = (
            buf.retained_updates,
            buf.alias_updates,
            buf.counters,
            buf.result,
        )
        self.faults.check()
        with st.transaction(c):
            if rows:
                c.executemany(
                    "INSERT INTO readings(rx_ms, ts_ms, device_id, kind, vals, flags, msg_key, config_rev, resident_id)"
                    " VALUES (?,?,?,?,?,?,?,?,?)",
                    rows,
                )
            if touched:
                # Devices whose online state changed are written now; the rest (last seen, values,
                # battery) are coalesced into one write a second by _tick: a device reporting 5 times a
                # second then costs one UPDATE, and a crash loses at most a second of "last seen".
                changed = {ch.device_id for ch in result.status_changes}
                for d, tb in touched.items():
                    if d not in changed:
                        self._dirty[d] = tb
                self._write_devices(c, [(d, tb) for d, tb in touched.items() if d in changed], result)
            written = self._write_rows_due(c, device_rows)
            if unconf:
                c.executemany(
                    "INSERT INTO unconfigured(driver, address, first_seen_ms, last_seen_ms, count, last_topic, sample)"
                    " VALUES (?,?,?,?,?,?,?) ON CONFLICT(driver, address) DO UPDATE SET"
                    " last_seen_ms=excluded.last_seen_ms, count=count+excluded.count, last_topic=excluded.last_topic,"
                    # merged, so what the pairing said (model, interview) stays next to the last values;
                    # a sample cut at 1,000 characters is no JSON object and is replaced instead
                    " sample=CASE WHEN json_valid(sample) AND json_valid(excluded.sample)"
                    " THEN json_patch(sample, excluded.sample) ELSE excluded.sample END",
                    [
                        (drv, addr, rx, rx, n, topic, _dumps(vals)[:1000])
                        for (drv, addr), (topic, rx, vals, n) in unconf.items()
                    ],
                )
            if dead:
                c.executemany(
                    "INSERT INTO dead_letters(rx_ms, topic, driver, reason, detail, payload_len, payload_excerpt,"
                    " config_rev) VALUES (?,?,?,?,?,?,?,?)",
                    dead,
                )
                for letter in dead:
                    counters[f"dead_letters.{letter[3]}"] += 1
                self._dead_letters_since_trim += len(dead)
                if self._dead_letters_since_trim > 500:
                    self._dead_letters_since_trim = 0
                    c.execute(
                        "DELETE FROM dead_letters WHERE id <= (SELECT max(id) FROM dead_letters) - ?",
                        (self.dead_letter_limit,),
                    )
            if buf.bridges:
                c.executemany(
                    "INSERT INTO devices(device_id, last_seen_ms, online, online_reason, online_changed_ms, since_ms,"
                    " config_rev) VALUES (?,?,?,'bridge',?,?,?) ON CONFLICT(device_id) DO UPDATE SET"
                    " last_seen_ms=excluded.last_seen_ms, online=excluded.online, online_reason='bridge',"
                    " online_changed_ms=excluded.online_changed_ms",
                    [(b, rx, on, rx, rx, rev) for b, (rx, on) in buf.bridges.items()],
                )
            if retained_updates:
                c.executemany(
                    "INSERT INTO retained_seen(topic, digest) VALUES (?,?)"
                    " ON CONFLICT(topic) DO UPDATE SET digest=excluded.digest",
                    list(retained_updates.items()),
                )
            if alias_updates:
                c.executemany(
                    "INSERT INTO aliases(driver, alias, address, updated_ms) VALUES (?,?,?,?)"
                    " ON CONFLICT(driver, alias) DO UPDATE SET"
                    " address=excluded.address, updated_ms=excluded.updated_ms",
                    alias_updates,
                )
            # In the same transaction as what they count: whatever a crash keeps, the counters
            # agree with it (docs/api.md "Counters"). The price is the counters page in every
            # commit: ~4 KiB of WAL, +8 % bytes per message at 5 per commit, +3 % at 20
            # (bench/wear_probe.py); ~9 us of CPU.
            self.store.add_counters(counters)
            now = self.clock()
            for stage in self.stages:
                stage.process(c, result, now)
            for stage in self.stages:
                stage.after(c, result, now)
        self._rows_written(written)

    def _write_rows_due(self, c: sqlite3.Connection, limit: int | None) -> list[tuple[str, tuple[int, float | None]]]:
        """Write up to ``limit`` (None: all) of the device rows the last tick handed over, oldest
        hand-over first; they leave ``_rows_due`` only once their transaction commits."""
        items = list(itertools.islice(self._rows_due.items(), limit))
        self._write_devices(c, items, None)
        return items

    def _rows_written(self, items: list[tuple[str, tuple[int, float | None]]]) -> None:
        # Only _tick hands rows over, and never between a slice's write and its commit: each row
        # written is still the one due.
        for d, _ in items:
            del self._rows_due[d]

    def _write_devices(
        self, c: sqlite3.Connection, items: list[tuple[str, tuple[int, float | None]]], result: BatchResult | None
    ) -> None:
        if not items:
            return
        c.executemany(
            "UPDATE devices SET last_seen_ms=?, last_values=?, online=?, battery=coalesce(?, battery),"
            " online_reason=coalesce(?, online_reason), online_changed_ms=coalesce(?, online_changed_ms),"
            " config_rev=? WHERE device_id=?",
            [
                (
                    rx,
                    _dumps(self._values.get(d, {})),
                    self._online.get(d),
                    bat,
                    *(self._change_cols(d, result) if result else (None, None)),
                    self.config_rev,
                    d,
                )
                for d, (rx, bat) in items
            ],
        )

    # --- helpers ---------------------------------------------------------------------------------
    def _dead(self, item: Inbound, driver: str | None, reason: str, detail: str) -> tuple[Any, ...]:
        p = item.payload
        return (
            item.rx_ms,
            item.topic[:512],
            driver,
            reason,
            detail[:500],
            len(p),
            p[:DEAD_LETTER_EXCERPT],
            self.config_rev,
        )

    def _timestamp(self, r: Reading, rx_ms: int) -> tuple[int, int]:
        ts = r.ts_ms
        if ts is None or abs(ts - rx_ms) > MAX_CLOCK_SKEW_MS:
            return rx_ms, st.FLAG_CLOCK_RX
        return ts, 0

    def _apply_state(self, dev: DeviceInfo, r: Reading, ts: int, rx: int, retained: bool, buf: _BatchBuffer) -> None:
        touched, result = buf.touched, buf.result
        vals = self._values.get(dev.id)  # not setdefault: that builds a throwaway dict per message
        if vals is None:
            vals = self._values[dev.id] = {}
        if r.kind != "event":
            vals.update(r.values)
        battery = r.values.get("battery")
        prev = touched.get(dev.id)
        prev_rx, prev_bat = (self._last_seen.get(dev.id, 0), None) if prev is None else prev
        if r.kind == AVAILABILITY:
            online = bool(r.values.get("online"))
            self._set_online(dev.id, online, "availability", ts, result)
        elif not retained:
            # Any live message proves the device is alive; a retained one is old state only.
            self._last_seen[dev.id] = rx
            prev_rx = rx
            self._set_online(dev.id, True, "message", ts, result)
        touched[dev.id] = (prev_rx, battery if isinstance(battery, int | float) else prev_bat)

    def _set_online(self, dev_id: str, online: bool, reason: str, ts: int, result: BatchResult) -> None:
        now = 1 if online else 0
        if self._online.get(dev_id) != now:
            self._online[dev_id] = now
            result.status_changes.append(StatusChange(dev_id, online, reason, ts))

    @staticmethod
    def _change_cols(dev_id: str, result: BatchResult) -> tuple[str | None, int | None]:
        for ch in reversed(result.status_changes):
            if ch.device_id == dev_id:
                return ch.reason, ch.ts_ms
        return None, None

    def _unconfigured(
        self, driver: str, device: str, item: Inbound, values: Mapping[str, Any], buf: _BatchBuffer
    ) -> None:
        # Keyed by the device's address once the bridge told us its name's address, so a Zigbee
        # device that paired (bridge/event, by IEEE) and then reports (by friendly name) is one
        # row of the 'seen, not configured' list, the row adoption needs.
        if device.startswith("name:"):
            device = self.routing.aliases.get((driver, device[5:]), device)
        seen = buf.unconf.get((driver, device))
        merged = {**seen[2], **values} if seen else dict(values)
        buf.unconf[(driver, device)] = (item.topic, item.rx_ms, merged, seen[3] + 1 if seen else 1)

    def _learn_alias(self, driver: str, alias: str, addr: str, rx_ms: int, buf: _BatchBuffer) -> None:
        if self.routing.aliases.get((driver, alias)) != addr:
            self.routing.aliases[(driver, alias)] = addr
            buf.alias_updates.append((driver, alias, addr, rx_ms))

    def _network(self, driver: str, r: Reading, item: Inbound, key: int, flags: int, buf: _BatchBuffer) -> None:
        """A device joined, announced itself, was interviewed or left the bridge's network.

        Not configured: it is listed as seen (with what the interview learned) the moment it pairs.
        Configured: its history gets the event and its health follows: on the network again is
        alive (online), left is offline (reason ``left_network``; the offline rule then raises
        ``device_offline``), a failed interview is a gateway event for the installer.
        """
        what = str(r.values["network"])
        friendly = r.meta.get("friendly_name")
        if isinstance(friendly, str):
            self._learn_alias(driver, friendly, r.device, item.rx_ms, buf)
        dev = self.routing.resolve(driver, r.device)
        if dev is None:
            if self.routing.is_foreign(driver, r.device):
                buf.counters["foreign_device_messages"] += 1
            else:
                buf.counters["unconfigured_messages"] += 1
                self._unconfigured(driver, r.device, item, {**r.meta, "network": what}, buf)
            return
        buf.rows.append(
            (
                item.rx_ms,
                item.rx_ms,
                dev.id,
                r.kind,
                _dumps(r.values),
                flags | st.FLAG_CLOCK_RX,
                key,
                self.config_rev,
                dev.resident_id,
            )
        )
        last, battery = buf.touched.get(dev.id, (self._last_seen.get(dev.id, 0), None))
        if what == "left":
            self._set_online(dev.id, False, "left_network", item.rx_ms, buf.result)
        elif what == "interview_failed":
            self.post_event("zigbee_interview_failed", "warning", {"device_id": dev.id, "driver": driver})
        else:  # joined, announced, interview started or done: the device is on the network now
            last = self._last_seen[dev.id] = item.rx_ms
            self._set_online(dev.id, True, what, item.rx_ms, buf.result)
        buf.touched[dev.id] = (last, battery)

    def _bridge(self, driver: str, r: Reading, item: Inbound, key: int, flags: int, buf: _BatchBuffer) -> None:
        rows, result = buf.rows, buf.result
        if "network" in r.values:
            self._network(driver, r, item, key, flags, buf)
            return
        devices = r.values.get("devices")
        if isinstance(devices, dict):
            for alias, addr in devices.items():
                self._learn_alias(driver, alias, addr, item.rx_ms, buf)
            return
        if "online" in r.values:
            bridge_id = r.device
            rows.append(
                (
                    item.rx_ms,
                    item.rx_ms,
                    bridge_id,
                    r.kind,
                    _dumps(r.values),
                    flags | st.FLAG_CLOCK_RX,
                    key,
                    self.config_rev,
                    None,
                )
            )
            online = bool(r.values["online"])
            buf.bridges[bridge_id] = (item.rx_ms, int(online))
            if self._online.get(bridge_id) != int(online):
                self._online[bridge_id] = int(online)
                result.status_changes.append(StatusChange(bridge_id, online, "bridge", item.rx_ms))

    # --- periodic work (same thread, so all writes stay serial) ---------------------------------
    def _tick(self, *, all_rows: bool = False) -> None:
        now = self.clock()
        result = BatchResult()
        silent: list[tuple[str, int]] = []
        events: list[tuple[str, str, dict[str, Any]]] = []
        written: list[tuple[str, tuple[int, float | None]]] = []
        if self._silence_for is not self.routing:  # a reload replaces the routing
            self._silence_for = self.routing
            self._silence_ms = [(d.id, d.expected_interval_s * 1000) for d in self.routing.by_id.values()]
        seen, online = self._last_seen, self._online
        for dev_id, limit_ms in self._silence_ms:  # every second over every device: kept lean
            last = seen.get(dev_id)
            if last is not None and now - last > limit_ms and online.get(dev_id) != 0:
                silent.append((dev_id, last))
        try:
            self.faults.check()
            c = self.conn
            with st.transaction(c):
                # Hand the second's coalesced rows over; the telemetry commits write them in slices
                # (an SOS never waits behind all of them). A row still due is replaced by its newer state.
                handed, self._dirty = self._dirty, {}
                for d, tb in handed.items():
                    self._rows_due.pop(d, None)  # re-inserted at the end: the slices go oldest first
                    self._rows_due[d] = tb
                written = self._write_rows_due(c, None if all_rows else DEVICE_ROWS_PER_COMMIT)
                if time.monotonic() >= self._next_prune:
                    self._next_prune = time.monotonic() + PRUNE_EVERY_S
                    self._prune(c, now)
                for dev_id, _last in silent:
                    self._online[dev_id] = 0
                    result.status_changes.append(StatusChange(dev_id, False, "silent", now))
                    c.execute(
                        "UPDATE devices SET online=0, online_reason='silent', online_changed_ms=? WHERE device_id=?",
                        (now, dev_id),
                    )
                events = self._take_events()
                for kind, severity, detail in events:
                    c.execute(
                        "INSERT INTO gateway_events(ts_ms, kind, severity, detail, config_rev) VALUES (?,?,?,?,?)",
                        (now, kind, severity, _dumps(detail), self.config_rev),
                    )
                    result.notices.append(
                        {"type": "gateway_event", "kind": kind, "severity": severity, "detail": detail}
                    )
                for stage in self.stages:
                    stage.tick(c, result, now)
                for stage in self.stages:
                    stage.after(c, result, now)
        except Exception as exc:  # store or processor failure: rolled back, retry next tick
            self._discard_open_transaction()
            log.error("periodic update failed: %s", exc)
            for ch in result.status_changes:  # retry next tick
                self._online[ch.device_id] = 1
            for ev in events:
                self._events.put(ev)
            return  # the handed-over device rows simply stay due
        self._rows_written(written)
        if (result.status_changes or result.notices or result.incident_events) and self.on_commit is not None:
            self.on_commit(result)

    def _prune(self, c: sqlite3.Connection, now: int) -> None:
        """Keep the readings log bounded by age and size, a slice at a time (short transactions).

        Readings are the local history; what the central store still needs is in the sync outbox,
        so pruning here never loses unsynced data.
        """
        cutoff = now - self.retention_ms
        row = c.execute(PRUNE_BOUNDS_SQL).fetchone()
        if row[0] is None:
            return
        lo, hi = row
        upto = None
        # Rows are in receive order: when the oldest is within retention, so is the slice, and the
        # slice's scan (~30 ms of CPU for 20,000 rows, a stall an SOS would wait behind) is skipped.
        # A wall clock stepped back only delays the pruning of the rows it stamped.
        oldest_rx = c.execute("SELECT rx_ms FROM readings WHERE id = ?", (lo,)).fetchone()[0]
        if oldest_rx < cutoff:
            upto = c.execute(
                "SELECT max(id) FROM (SELECT id, rx_ms FROM readings WHERE id < ? ORDER BY id LIMIT ?) WHERE rx_ms < ?",
                (hi, PRUNE_SLICE, cutoff),
            ).fetchone()[0]
        limit = self.store.quota.soft_pages * st.PAGE_SIZE * self.prune_at_pct / 100
        if self.store.used_bytes() > limit:
            upto = max(upto or 0, min(lo + PRUNE_SLICE, hi - 1))
        if upto:
            n = c.execute("DELETE FROM readings WHERE id <= ?", (upto,)).rowcount
            self.pruned_total += n
            self.store.add_counters({"readings_pruned": n})

    def _take_events(self) -> list[tuple[str, str, dict[str, Any]]]:
        out = []
        try:
            while True:
                out.append(self._events.get_nowait())
        except queue.Empty:
            return out

    def never_seen_silent(self) -> list[str]:
        """Devices configured but never heard from (the API lists them for installers)."""
        return [d for d in self.routing.by_id if d not in self._last_seen]


# Any: json.dumps hook; gets any value json cannot encode
def _json_default(o: Any) -> Any:
    return str(o)


# One encoder for the hot path, built once (gateway/core/compactjson.py).
_dumps = make_dumps(_json_default)
