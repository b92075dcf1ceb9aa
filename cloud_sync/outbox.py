"""The durable outbox: points written inside the pipeline's own transaction.

:class:`OutboxProcessor` is a pipeline :class:`~gateway.ingest.pipeline.Processor`, so a point is in the
outbox exactly when the reading or incident event it describes is committed: one transaction,
one fsync. Line protocol is built here, once, with plain string formatting; the sender only
concatenates stored lines.

Hot path per ingest batch: one ``executemany`` INSERT, one UPDATE of ``outbox_totals``, one
upsert of ``meta.sync_last_id``. The outbox has no index that telemetry inserts pay for.

Acknowledged telemetry is recorded as id ranges in ``outbox_sent`` (:class:`SentRanges`) and its
rows are deleted later by the sender: "unsent" telemetry is every prio-2 row outside those ranges.
``outbox_totals`` counts only unsent rows, so the quota and the backlog figures never include rows
waiting for that clean-up. Whatever deletes unsent telemetry other than the sender (thinning, the
privacy "forget" request) bumps ``meta.outbox_epoch`` so that the sender recounts the batch it has
in flight instead of trusting the count it read.
"""

from __future__ import annotations

import bisect
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from cloud_sync import central
from cloud_sync import lineproto as lp
from gateway import __version__
from gateway.core import store as st
from gateway.core.contract import BaseStage, BatchResult, IncidentEvent

if TYPE_CHECKING:
    from edge_config import SiteConfig
    from gateway.ingest.routing import DeviceInfo

log = logging.getLogger("cloud_sync.outbox")

PRIO_EVENT = 0
PRIO_URGENT = PRIO_EVENT  # readings of life-safety devices (SOS, smoke, gas, fall) go with the events
PRIO_HEALTH = 1
PRIO_TELEMETRY = 2
PRIO_NAMES = {PRIO_EVENT: "events", PRIO_HEALTH: "health", PRIO_TELEMETRY: "telemetry"}
ROW_OVERHEAD = 24  # bytes accounted per row on top of the line (ids, timestamps, b-tree cell)
THIN_TO = 0.9  # thinning frees space down to this share of the quota (hysteresis)
MiB = 1024 * 1024
EPOCH_KEY = "outbox_epoch"


class SentRanges:
    """Sorted, disjoint, inclusive id ranges of telemetry the central store accepted but whose
    rows are still in the outbox (deleted later in slices). Adjacent ranges merge, so a backlog
    sent oldest first stays one range however many batches it took."""

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        self.items: list[tuple[int, int]] = []
        for lo, hi in sorted(ranges):
            self.add(lo, hi)

    def __bool__(self) -> bool:
        return bool(self.items)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self.items)

    def covers(self, row_id: int) -> bool:
        i = bisect.bisect_right(self.items, (row_id, 1 << 62)) - 1
        return i >= 0 and self.items[i][0] <= row_id <= self.items[i][1]

    def add(self, lo: int, hi: int) -> tuple[tuple[int, int], list[int]]:
        """Add ``[lo, hi]``; returns the merged range and the ``lo`` of every range it absorbed."""
        absorbed: list[int] = []
        keep: list[tuple[int, int]] = []
        for a, b in self.items:
            if b + 1 < lo or a > hi + 1:
                keep.append((a, b))
            else:
                lo, hi = min(lo, a), max(hi, b)
                absorbed.append(a)
        bisect.insort(keep, (lo, hi))
        self.items = keep
        return (lo, hi), absorbed

    def top(self) -> int:
        return self.items[-1][1] if self.items else 0

    def gaps(self, extra: tuple[int, int] | None = None) -> list[tuple[int, int | None]]:
        """The id intervals ``(after, before)`` (exclusive; ``before`` None = no upper bound) that
        can hold unsent telemetry, oldest first; ``extra`` is one more range to leave out (the
        batch in flight)."""
        items = self.items
        if extra is not None and extra[0] <= extra[1]:
            tmp = SentRanges(items)
            tmp.add(*extra)
            items = tmp.items
        out: list[tuple[int, int | None]] = []
        after = 0
        for lo, hi in items:
            if lo > after + 1:
                out.append((after, lo))
            after = max(after, hi)
        out.append((after, None))
        return out


def sent_ranges(conn: sqlite3.Connection) -> SentRanges:
    return SentRanges((int(a), int(b)) for a, b in conn.execute("SELECT lo, hi FROM outbox_sent"))


def first_unsent_telemetry(conn: sqlite3.Connection, ranges: SentRanges) -> tuple[int, int] | None:
    """(id, created_ms) of the oldest unsent telemetry row, skipping acknowledged ranges."""
    for after, before in ranges.gaps():
        row = conn.execute(
            "SELECT id, created_ms FROM outbox WHERE prio=2 AND id>? AND id<? ORDER BY id LIMIT 1",
            (after, before if before is not None else 1 << 62),
        ).fetchone()
        if row is not None:
            return int(row[0]), int(row[1])
    return None


def oldest_unsent_ms(conn: sqlite3.Connection) -> int | None:
    """Creation time of the oldest point not yet accepted by the central store (any priority)."""
    urgent = conn.execute("SELECT min(created_ms) FROM outbox WHERE prio<2").fetchone()
    tele = first_unsent_telemetry(conn, sent_ranges(conn))
    found = [int(urgent[0])] if urgent and urgent[0] is not None else []
    if tele is not None:
        found.append(tele[1])
    return min(found) if found else None


def bump_epoch(conn: sqlite3.Connection) -> None:
    """Record (in the caller's transaction) that unsent telemetry was deleted by someone other
    than the sender: the batch it has in flight may have lost rows."""
    conn.execute(
        "INSERT INTO meta(key, value) VALUES (?, '1') ON CONFLICT(key) DO UPDATE SET value=CAST(value AS INTEGER)+1",
        (EPOCH_KEY,),
    )


def next_id(conn: sqlite3.Connection) -> int:
    """First unused outbox id: above every id ever allocated (ids are never reused)."""
    row = conn.execute("SELECT max(id) FROM outbox").fetchone()
    top = int(row[0] or 0)
    meta = conn.execute("SELECT value FROM meta WHERE key='sync_last_id'").fetchone()
    if meta is not None:
        top = max(top, int(meta[0]))
    return top + 1


def append_to_outbox(
    conn: sqlite3.Connection, prio: int, lines: Iterable[tuple[int, str]], created_ms: int
) -> tuple[int, int]:
    """Insert pre-built ``(id, line)`` rows of one priority and update the totals.
    Runs in the caller's transaction. Returns (rows, bytes) added."""
    rows = [(i, prio, line, created_ms, len(line) + ROW_OVERHEAD) for i, line in lines]
    if not rows:
        return 0, 0
    conn.executemany("INSERT INTO outbox(id, prio, line, created_ms, bytes) VALUES (?,?,?,?,?)", rows)
    nbytes = sum(r[4] for r in rows)
    conn.execute("UPDATE outbox_totals SET rows=rows+?, bytes=bytes+? WHERE prio=?", (len(rows), nbytes, prio))
    # The highest id wins: one transaction may append several priorities whose ids interleave, and
    # an id must never be handed out twice (acknowledged ranges are id ranges).
    conn.execute(
        "INSERT INTO meta(key, value) VALUES ('sync_last_id', ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value"
        " WHERE CAST(excluded.value AS INTEGER) > CAST(meta.value AS INTEGER)",
        (str(rows[-1][0]),),  # ids ascend within one call
    )
    return len(rows), nbytes


def forget_devices(conn: sqlite3.Connection, devices: Iterable[str]) -> int:
    """Delete the points of ``devices`` (a resident's "forget" request) in the caller's transaction;
    returns the unsent points deleted. Ordinary readings are telemetry (prio 2); readings of
    life-safety devices travel with the incident events (prio 0) and go too. Rows in acknowledged
    ranges were sent already (they wait for the sender's clean-up): they are deleted, but only
    unsent ones come off the totals."""
    sent = sent_ranges(conn)
    per: dict[int, list[int]] = {}  # prio -> [unsent rows, bytes]
    for dev in devices:
        pattern = f"%,device={lp.tag_value(dev)},%"
        got = conn.execute(
            "DELETE FROM outbox WHERE prio IN (?, ?) AND line LIKE ? RETURNING id, prio, bytes",
            (PRIO_URGENT, PRIO_TELEMETRY, pattern),
        ).fetchall()
        for row_id, prio, nbytes in got:
            if prio == PRIO_TELEMETRY and sent.covers(int(row_id)):
                continue
            acc = per.setdefault(int(prio), [0, 0])
            acc[0] += 1
            acc[1] += int(nbytes)
    for prio, (rows, nbytes) in per.items():
        conn.execute("UPDATE outbox_totals SET rows=rows-?, bytes=bytes-? WHERE prio=?", (rows, nbytes, prio))
    if PRIO_TELEMETRY in per:
        bump_epoch(conn)  # the sender's telemetry batch in flight may have lost rows
    return sum(rows for rows, _ in per.values())


def add_counters(conn: sqlite3.Connection, deltas: Mapping[str, int]) -> None:
    items = [(k, v) for k, v in deltas.items() if v]
    if items:
        conn.executemany(
            "INSERT INTO counters(name, value) VALUES (?,?) ON CONFLICT(name) DO UPDATE SET value=value+excluded.value",
            items,
        )


def total_bytes(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(sum(bytes), 0) FROM outbox_totals").fetchone()[0])


def thin(conn: sqlite3.Connection, need_bytes: int, skip: Callable[[int], bool] | None = None) -> tuple[int, int]:
    """Free ``need_bytes`` by deleting every other telemetry point *per series*, oldest first.

    Walks the oldest unsent telemetry in slices (rows in acknowledged ranges are already sent and
    not counted: they are skipped); in each series every second point goes, so every
    device keeps half its resolution in the thinned span rather than some devices vanishing.
    Repeated thinning of the same span halves it again (older data gets sparser). Incident
    events and health points are never touched. Runs in the caller's transaction.
    Returns (points deleted, bytes freed).
    """
    freed = deleted = 0
    after = 0
    sent = sent_ranges(conn)
    toggle: dict[str, bool] = {}
    passes = 0
    while freed < need_bytes and passes < 16:
        rows = conn.execute(
            "SELECT id, line, bytes FROM outbox WHERE prio=2 AND id>? ORDER BY id LIMIT 4096", (after,)
        ).fetchall()
        if not rows:
            if after == 0:
                break  # no telemetry left at all
            after, passes = 0, passes + 1
            continue
        victims: list[int] = []
        for row_id, line, nbytes in rows:
            if (skip is not None and skip(row_id)) or sent.covers(row_id):
                continue
            series = line[: line.find(" ")]
            drop = toggle.get(series, False)
            toggle[series] = not drop
            if drop:
                victims.append(row_id)
                freed += nbytes
                if freed >= need_bytes:
                    break
        after = rows[-1][0]
        if victims:
            conn.execute("DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(victims),))
            deleted += len(victims)
    if deleted:
        conn.execute("UPDATE outbox_totals SET rows=rows-?, bytes=bytes-? WHERE prio=2", (deleted, min(freed, 1 << 62)))
        bump_epoch(conn)
    return deleted, freed


class OutboxProcessor(BaseStage):
    """Writes telemetry (``process``), incident events (``after``) and health (``tick``) to the outbox.

    Must be the last processor, so that ``after`` sees every incident event the others appended.
    """

    def __init__(
        self,
        cfg: SiteConfig,
        *,
        wake: Callable[[], None] | None = None,
        started_ms: int | None = None,
        buildings: Mapping[str, str | None] | None = None,
    ) -> None:
        """``buildings``: each device's building, from the routing the caller already built (else
        built here at the first snapshot: ~10 ms of CPU, in the gateway's first tick)."""
        s = cfg.sync
        self.cfg = cfg
        self.send_personal = bool(s.send_personal)
        self.quota_bytes = max(1, int(s.quota_mb * MiB))
        self.heartbeat_ms = int(s.heartbeat_s * 1000)
        self.wake = wake
        self.started_ms = started_ms if started_ms is not None else st.now_ms()
        self.started_mono = time.monotonic()
        site = cfg.site
        self.site_tags = {
            "gateway": cfg.gateway.id,
            "street": getattr(site.street, "id", None),
            "community": getattr(site.community, "id", None),
        }
        self._prefix: dict[str, str] = {}
        self._unique = lp.UniqueMs()
        self._next: int | None = None
        self._last_health_ms = 0
        self._last_committed: tuple[int, int] | None = None  # (ms, messages_committed) at last heartbeat
        self._over_quota_logged = False
        self.lock = threading.Lock()
        self.inflight: tuple[int, int] = (0, -1)  # id range the sender is posting (thinning skips it)
        # district points (cloud_sync/central.py): snapshot cadence and the devices' buildings
        self.snapshot_ms = int(s.snapshot_s * 1000)
        self._last_snapshot_ms = 0
        self._buildings: dict[str, str | None] | None = dict(buildings) if buildings is not None else None
        self._district_faults: set[str] = set()

    # --- helpers ---------------------------------------------------------------------------------
    def _ids(self, conn: sqlite3.Connection) -> int:
        if self._next is None:
            self._next = next_id(conn)
        return self._next

    def _location(self, building: str | None) -> dict[str, str | None]:
        grid = compound = None
        if building:
            try:
                g = self.cfg.grid_of_building(building)
                c = self.cfg.compound_of_building(building)
                grid = g.id if g is not None else None
                compound = c.id if c is not None else None
            except Exception:  # a partial config object (tests) must not break ingest
                pass
        return {"building": building, "grid": grid, "compound": compound}

    def device_prefix(self, device: DeviceInfo) -> str:
        p = self._prefix.get(device.id)
        if p is None:
            t = dict(self.site_tags)
            t.update(self._location(device.building))
            t.update({"device": device.id, "device_type": device.type, "category": device.category})
            p = lp.M_TELEMETRY + lp.tags(t)
            self._prefix[device.id] = p
        return p

    # --- telemetry -------------------------------------------------------------------------------
    def process(self, conn: sqlite3.Connection, result: BatchResult, now_ms: int) -> None:
        if not result.resolved:
            return
        i = self._ids(conn)
        lines: list[tuple[int, str]] = []
        safety: list[tuple[int, str]] = []  # readings of life-safety devices: incident priority
        skipped = 0
        unique = self._unique
        fields_of = lp.fields
        for r in result.resolved:
            if r.flags & st.FLAG_PERSONAL and not self.send_personal:
                skipped += 1
                continue
            f = fields_of(r.reading.values)
            if not f:
                skipped += 1
                continue
            dev = r.device
            kind = r.reading.kind
            ms = unique.take((dev.id, kind), r.ts_ms)
            prefix = self._prefix.get(dev.id) or self.device_prefix(dev)
            (safety if dev.life_safety else lines).append(
                (i, f"{prefix},kind={kind} {f} {ms * 1_000_000 + i % 1_000_000}")
            )
            i += 1
        self._next = i
        append_to_outbox(conn, PRIO_TELEMETRY, lines, now_ms)
        # An SOS press or a smoke alarm is evidence of an incident: it must never be thinned and
        # must not wait behind a telemetry backlog, so it travels with the incident events.
        append_to_outbox(conn, PRIO_URGENT, safety, now_ms)
        if skipped:
            add_counters(conn, {"sync_not_sent": skipped})
        self._check_quota(conn)

    def _check_quota(self, conn: sqlite3.Connection) -> None:
        total = total_bytes(conn)
        if total <= self.quota_bytes:
            self._over_quota_logged = False
            return
        need = total - int(self.quota_bytes * THIN_TO)
        with self.lock:
            lo, hi = self.inflight
        deleted, freed = thin(conn, need, skip=lambda x: lo <= x <= hi)
        if deleted:
            add_counters(conn, {"sync_thinned": deleted})
        if freed < need and not self._over_quota_logged:
            self._over_quota_logged = True
            log.warning(
                "sync outbox over its quota (%d bytes) with no telemetry left to thin: incident events are kept",
                self.quota_bytes,
            )

    # --- incident events -------------------------------------------------------------------------
    def _tags_of_incident(self, conn: sqlite3.Connection, ev: IncidentEvent) -> dict[str, str | None]:
        """Category, type, severity and location of the event's incident: from the snapshot the
        incident store attached, else from its row (same transaction), else from the event's data."""
        incident_id = ev.incident_id
        src: Mapping[str, Any]
        if ev.incident is not None:
            src = ev.incident
        else:
            row = None
            if incident_id:
                try:
                    row = conn.execute(
                        "SELECT category, type, severity, building, grid, compound FROM incidents WHERE id=?",
                        (incident_id,),
                    ).fetchone()
                except sqlite3.Error:
                    row = None
            if row is not None:
                src = dict(zip(("category", "type", "severity", "building", "grid", "compound"), row, strict=True))
            else:
                src = {k: ev.data.get(k) for k in ("category", "type", "severity", "building", "grid", "compound")}
        building = src.get("building")
        b = str(building) if building else None
        loc = self._location(b)
        grid, compound = src.get("grid"), src.get("compound")
        category, itype, severity = src.get("category"), src.get("type"), src.get("severity")
        return {
            "category": str(category) if category else None,
            "incident_type": str(itype) if itype else None,
            "severity": str(severity) if severity else None,
            "building": b,
            "grid": str(grid) if grid else loc["grid"],
            "compound": str(compound) if compound else loc["compound"],
        }

    def event_line(self, conn: sqlite3.Connection, ev: IncidentEvent, row_id: int, now_ms: int) -> str:
        t: dict[str, str | None] = dict(self.site_tags)
        t.update(self._tags_of_incident(conn, ev))
        kind = ev.kind
        t["kind"] = kind
        data = ev.data
        snap = ev.incident or {}
        if kind == "severity_changed" and isinstance(data.get("to"), str):
            t["severity"] = data["to"]
        series = lp.M_INCIDENT + lp.tags(t)
        ms = self._unique.take(series, ev.ts_ms or now_ms)
        parts = [f"incident_id={lp.string_field(ev.incident_id)}", f"seq={int(ev.seq)}i", "n=1i"]
        for key, v in (("actor", ev.actor), ("role", ev.role)):
            if v:
                parts.append(f"{key}={lp.string_field(v)}")
        state = data.get("to") if kind == "state_changed" else snap.get("state")
        if isinstance(state, str):
            parts.append(f"state={lp.string_field(state)}")
        count = data.get("count", snap.get("count"))
        if isinstance(count, int | float) and not isinstance(count, bool):
            parts.append(f"count={float(count)!r}")
        parts.append(f"data={lp.json_field(lp.scrub(data))}")
        return f"{series} {','.join(parts)} {ms * 1_000_000 + row_id % 1_000_000}"

    def after(self, conn: sqlite3.Connection, result: BatchResult, now_ms: int) -> None:
        events = result.incident_events
        if not events:
            return
        i = self._ids(conn)
        lines: list[tuple[int, str]] = []
        for ev in events:
            lines.append((i, self.event_line(conn, ev, i, now_ms)))
            i += 1
        self._next = i
        append_to_outbox(conn, PRIO_EVENT, lines, now_ms)
        self._guarded(conn, "ticket_points", lambda: self._ticket_points(conn, events, now_ms))
        if self.wake is not None and lines:
            self.wake()

    # --- health ----------------------------------------------------------------------------------
    def tick(self, conn: sqlite3.Connection, result: BatchResult, now_ms: int) -> None:
        self._guarded(conn, "district_points", lambda: self.district_tick(conn, now_ms))
        if now_ms - self._last_health_ms < self.heartbeat_ms:
            return
        self._last_health_ms = now_ms
        i = self._ids(conn)
        line = self.health_line(conn, i, now_ms)
        self._next = i + 1
        append_to_outbox(conn, PRIO_HEALTH, [(i, line)], now_ms)

    def health_line(self, conn: sqlite3.Connection, row_id: int, now_ms: int) -> str:
        counters = {str(k): int(v) for k, v in conn.execute("SELECT name, value FROM counters")}
        committed = counters.get("messages_committed", 0)
        dead = sum(v for k, v in counters.items() if k.startswith("dead_letters."))
        rate = 0.0
        if self._last_committed is not None:
            ms0, c0 = self._last_committed
            if now_ms > ms0:
                rate = (committed - c0) * 1000.0 / (now_ms - ms0)
        self._last_committed = (now_ms, committed)
        totals = {int(p): (int(r), int(b)) for p, r, b in conn.execute("SELECT prio, rows, bytes FROM outbox_totals")}
        oldest = oldest_unsent_ms(conn)
        oldest_age = max(0, now_ms - oldest) / 1000.0 if oldest is not None else 0.0
        last_ok = conn.execute("SELECT value FROM meta WHERE key='sync_last_success_ms'").fetchone()
        f = {
            "uptime_s": round(time.monotonic() - self.started_mono, 3),
            "messages_committed": float(committed),
            "throughput_per_s": round(rate, 3),
            "backlog_points": float(sum(r for r, _ in totals.values())),
            "backlog_events": float(totals.get(PRIO_EVENT, (0, 0))[0]),
            "backlog_bytes": float(sum(b for _, b in totals.values())),
            "oldest_unsent_age_s": oldest_age,
            "dead_letters": float(dead),
            "sync_dead_letters": float(counters.get("dead_letters.sync_rejected", 0)),
            "sync_thinned": float(counters.get("sync_thinned", 0)),
            "sync_sent": float(counters.get("sync_sent", 0)),
            "last_sync_age_s": max(0, now_ms - int(last_ok[0])) / 1000.0 if last_ok else -1.0,
            # a field, not a tag: an upgrade must not start a new series
            "version": __version__,
        }
        t = dict(self.site_tags)
        series = lp.M_HEALTH + lp.tags(t)
        return f"{series} {lp.fields(f)} {now_ms * 1_000_000 + row_id % 1_000_000}"

    # --- district points (cloud_sync/central.py, docs/central.md) --------------------------------
    def add_points(self, conn: sqlite3.Connection, prio: int, points: Iterable[central.Point], now_ms: int) -> int:
        """Append ``(series, fields, ts_ms)`` points of ``prio`` (0 or 1: never thinned) in the
        caller's transaction, each with its row id and a unique millisecond in its series."""
        i = self._ids(conn)
        lines: list[tuple[int, str]] = []
        for series, flds, ts in points:
            ms = self._unique.take(series, ts)
            lines.append((i, f"{series} {flds} {ms * 1_000_000 + i % 1_000_000}"))
            i += 1
        self._next = i
        append_to_outbox(conn, prio, lines, now_ms)
        return len(lines)

    def _guarded(self, conn: sqlite3.Connection, name: str, fn: Callable[[], None]) -> None:
        """Run ``fn`` in a savepoint: a fault in the district points must not abort the
        transaction that carries readings, incidents and timers (logged once per kind)."""
        try:
            with st.savepoint(conn, name):
                fn()
        except sqlite3.Error:
            raise  # the store itself failed: the transaction is lost anyway
        except Exception:
            if name not in self._district_faults:
                self._district_faults.add(name)
                log.exception("sync: %s not built (the transaction goes on without them)", name)

    def _ticket_points(self, conn: sqlite3.Connection, events: list[IncidentEvent], now_ms: int) -> None:
        def tags(c: sqlite3.Connection, ev: IncidentEvent) -> dict[str, str | None]:
            return {**self.site_tags, **self._tags_of_incident(c, ev)}

        self.add_points(conn, PRIO_EVENT, central.ticket_points(conn, self.cfg, tags, events), now_ms)

    def district_tick(self, conn: sqlite3.Connection, now_ms: int, *, force: bool = False) -> None:
        """Early warnings as they are appended (each tick); the snapshots every ``sync.snapshot_s``."""
        self.add_points(conn, PRIO_EVENT, central.warning_points(conn, self.site_tags), now_ms)
        if not force and now_ms - self._last_snapshot_ms < self.snapshot_ms:
            return
        self._last_snapshot_ms = now_ms
        if self._buildings is None:
            from gateway.ingest.routing import build_routing

            self._buildings = {d.id: d.building for d in build_routing(self.cfg).by_id.values()}
        site = self.site_tags
        points = [
            *central.open_points(conn, self.cfg, site, now_ms),
            *central.unaccepted_points(conn, self.cfg, site, now_ms),
            *central.parking_points(conn, self.cfg, site, now_ms),
            *central.device_points(conn, self.cfg, site, self._buildings, now_ms),
        ]
        oldest = oldest_unsent_ms(conn)
        uptime = time.monotonic() - self.started_mono
        quota = int(self.cfg.store.quota_mb) * MiB
        points.append(central.gateway_point(conn, site, now_ms, uptime_s=uptime, quota_bytes=quota, oldest=oldest))
        self.add_points(conn, PRIO_HEALTH, points, now_ms)
