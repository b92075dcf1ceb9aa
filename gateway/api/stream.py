"""GET /api/v1/stream: Server-Sent Events of incident and device-status changes.

- ``event: incident`` carries ``id: <incident_events.seq>``: the feed cursor. A client that
  reconnects with ``Last-Event-ID`` gets every incident event after it replayed from the store
  (``incidents.events(conn, after)``), then the live ones, without gaps or repeats.
- ``event: devices`` (online/offline changes, ``{"changes": [...]}``, all of one dispatch in one
  event) is live only and has no id, so it never moves the client's Last-Event-ID; after a
  reconnect the client re-reads /api/v1/devices.
- ``event: hello`` opens every stream (no id): the current max seq and the role's view.
- ``event: reset`` (no id): the resume point is too far back (> ``REPLAY_MAX`` events): reload lists.
- Heartbeat comments (``: ping``) every ``api.sse_heartbeat_s`` seconds.

Cost (the stream shares the process, and the GIL, with ingest; see bench/api.py):

- The pipeline thread calls :meth:`Hub.on_commit` after each commit; it only copies the changes
  onto a deque and wakes the event loop when no wake-up is already on its way (one
  ``call_soon_threadsafe`` per dispatch, not per commit).
- One dispatcher task on the loop reads the changed incidents once per dispatch (its own reader
  thread and connection, so it never queues behind API requests) and builds each SSE frame once
  per view (role + scope), encoded to bytes: 50 clients of one view cost one JSON encoding.
- Urgent changes (a new life-safety, critical or major incident: SOS, fall, smoke, door forced ...)
  are dispatched at once.
  Everything else (e.g. a flood of flapping-sensor incidents or device-status changes under heavy
  ingest) is gathered for up to ``COALESCE_S`` after the previous dispatch (``COALESCE_BEHIND_S``
  while ingest is behind), so the stream costs a bounded number of dispatches a second however
  fast commits come. Within a dispatch the incident frames go out before the device-status frames
  are even built.
- Each client drains everything pending in one write (incident frames first); sse-starlette's
  ``EventSourceResponse`` writes those pre-encoded chunks as they are and does the heartbeats,
  disconnects, shutdown and the per-write timeout.
- A client that falls ``api.sse_queue_max`` frames behind is disconnected (``event: overflow``)
  and resumes with Last-Event-ID; a write stuck longer than ``SEND_TIMEOUT_S`` (a client that
  stopped reading) ends the stream. Nothing ever waits for a slow client, least of all ingest.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.responses import Response

from gateway.api import access, db
from gateway.api.auth import Principal
from gateway.api.deps import ApiContext, ctx_of, ingest_behind, require
from gateway.api.device_views import visible_devices
from gateway.api.fastjson import dumps
from gateway.core.contract import BatchResult, IncidentEvent

if TYPE_CHECKING:
    import sqlite3

    from edge_config import SiteConfig

log = logging.getLogger("gateway.api.stream")
REPLAY_MAX = 5000
# Non-urgent changes wait at most this long after the previous dispatch (10 dispatches a second),
# and while ingest is behind (deps.ingest_behind) this long (each dispatch costs a write per client).
COALESCE_S = 0.1
COALESCE_BEHIND_S = 0.5
# A write to a client that has not completed after this long (the client stopped reading) ends it.
SEND_TIMEOUT_S = 30.0
router = APIRouter(tags=["stream"])

Status = tuple[str, bool, str, int]


# Any: the event's JSON body
def frame(event: str, data: Any, event_id: str | None = None) -> bytes:
    """One SSE message carrying ``data`` as compact JSON (fastjson: string escapes keep CR and LF
    out of it, so it is one data line)."""
    head = f"id: {event_id}\nevent: {event}\ndata: " if event_id is not None else f"event: {event}\ndata: "
    return head.encode() + dumps(data) + b"\n\n"


URGENT_SEVERITIES = frozenset({"critical", "major"})


def is_urgent(e: IncidentEvent) -> bool:
    """A change to send at once: a new life-safety, critical or major incident (the snapshot on
    creation), or a severity raised to one of those. Everything else (warnings and minor ones, ticket
    steps, device status) may wait up to the coalescing window."""
    snap = e.incident or {}
    return (
        bool(snap.get("life_safety"))
        or snap.get("severity") in URGENT_SEVERITIES
        or (e.kind == "severity_changed" and e.data.get("to") in URGENT_SEVERITIES)
    )


@dataclass(eq=False)
class Client:
    p: Principal
    queue_max: int
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    incidents: list[tuple[int, bytes]] = field(default_factory=list)  # (seq, frame), sent first
    other: list[bytes] = field(default_factory=list)  # device-status frames
    overflow: bool = False
    ended: bool = False  # the hub closed this stream (shutdown or overflow)
    gone: bool = False  # the client disconnected
    resume_after: int = 0  # live incident events at or below this were replayed already
    released: list[access.Release] = field(default_factory=list)

    def push(self, incidents: list[tuple[int, bytes]] | None, other: bytes | None) -> bool:
        """Queue frames (event loop); False when the client is too far behind (overflow)."""
        if self.ended:
            return True
        if incidents:
            self.incidents += incidents
        if other is not None:
            self.other.append(other)
        if len(self.incidents) + len(self.other) > self.queue_max:
            return False
        self.wake.set()
        return True

    def take(self) -> bytes:
        """Everything pending as one chunk: incident frames first, then device status."""
        incs, self.incidents = self.incidents, []
        other, self.other = self.other, []
        parts = [f for seq, f in incs if seq > self.resume_after]  # skip what the replay sent
        parts += other
        return b"".join(parts)


class Hub:
    def __init__(self, ctx: ApiContext, queue_max: int) -> None:
        self.ctx = ctx
        self.queue_max = queue_max
        self.clients: set[Client] = set()  # receiving live changes
        self.loop: asyncio.AbstractEventLoop | None = None
        # Filled by the pipeline thread (deque.append is thread-safe), drained by the dispatcher.
        self._pending: collections.deque[tuple[list[IncidentEvent], list[Status]]] = collections.deque()
        self._scheduled = False  # a wake-up of the dispatcher is on its way
        self._urgent = False
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # The dispatcher's own reader (one thread, own connection): it never waits behind API reads.
        self._reader = db.Readers(ctx.readers.path, 1)
        self.coalesce_s = COALESCE_S
        self.closed = asyncio.Event()

    # --- lifecycle (event loop) ----------------------------------------------------------------
    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._dispatcher(), name="sse-dispatcher"),
        ]

    async def _warm_up(self) -> None:
        """Open the dispatcher's reader connection now, not on the first (possibly SOS) dispatch."""
        with contextlib.suppress(Exception):
            await self._reader.run(db.max_seq)

    async def close_streams(self) -> None:
        """End every open stream (server shutdown); clients reconnect with Last-Event-ID."""
        self.closed.set()
        for c in list(self.clients):
            self._close(c)

    async def stop(self) -> None:
        await self.close_streams()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._reader.close()

    # --- writer thread -------------------------------------------------------------------------
    def on_commit(self, result: BatchResult) -> None:
        """Called on the pipeline thread after each commit: copy, queue, wake the loop if needed."""
        loop = self.loop
        if loop is None or not self.clients:
            return
        if not result.incident_events and not result.status_changes:
            return
        urgent = any(is_urgent(e) for e in result.incident_events)
        evs = list(result.incident_events)  # frozen records: shared, not copied
        sts = [(c.device_id, c.online, c.reason, c.ts_ms) for c in result.status_changes]
        self._pending.append((evs, sts))
        # While a wake-up is on its way (or the dispatcher gathers non-urgent changes) there is no
        # need to wake the loop again: every wake-up costs ingest a GIL hand-over.
        if urgent or not self._scheduled:
            self._scheduled = True
            try:
                loop.call_soon_threadsafe(self._poke, urgent)
            except RuntimeError:  # loop closed (shutdown)
                pass

    # --- event loop ----------------------------------------------------------------------------
    def _poke(self, urgent: bool) -> None:
        if urgent:
            self._urgent = True
        if self._wake is not None:
            self._wake.set()

    async def _dispatcher(self) -> None:
        assert self._wake is not None and self.loop is not None
        wake, loop = self._wake, self.loop
        last = -1e9
        await self._warm_up()
        while True:
            await wake.wait()
            wake.clear()
            window = self.coalesce_s
            if ingest_behind(self.ctx.gw):
                window = max(window, COALESCE_BEHIND_S)
            delay = last + window - loop.time()
            if delay > 0 and not self._urgent:
                # gather non-urgent changes; an urgent one ends the wait at once
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        while not self._urgent:
                            await wake.wait()
                            wake.clear()
            self._urgent = False
            self._scheduled = False  # before draining: a commit after the drain wakes us again
            evs: list[IncidentEvent] = []
            sts: list[Status] = []
            while self._pending:
                more_e, more_s = self._pending.popleft()
                evs += more_e
                sts += more_s
            if not evs and not sts:
                continue
            last = loop.time()
            try:
                await self._fan_out(evs, sts)
            except Exception:
                log.exception("stream dispatch failed")

    async def _fan_out(self, evs: list[IncidentEvent], sts: list[Status]) -> None:
        if not self.clients:
            return
        cfg = self.ctx.cfg
        if evs:
            rows = await self._reader.run(db.get_incidents, [e.incident_id for e in evs])
            # Clients with the same role, scope and resume point see the same frames: build once.
            views: dict[tuple[Any, ...], tuple[list[tuple[int, bytes]], list[access.Release]]] = {}
            personal: list[tuple[Client, list[tuple[int, bytes]], list[access.Release]]] = []
            for c in list(self.clients):
                key = (c.p.role, c.p.grids, c.p.compounds, c.resume_after)
                built = views.get(key)
                if built is None:
                    released: list[access.Release] = []
                    frames = []
                    for e in evs:
                        if e.seq <= c.resume_after:
                            continue
                        f = incident_frame(c.p, cfg, e, rows.get(e.incident_id), released)
                        if f is not None:
                            frames.append((e.seq, f))
                    built = views[key] = (frames, released)
                frames, released = built
                if released:
                    personal.append((c, frames, released))  # sent once the release is logged
                elif frames and not c.push(frames, None):
                    self._overflow(c)
            if personal:
                await self._release(personal)
            if sts:
                await asyncio.sleep(0)  # let the incident frames leave before the device-status work
        if sts:
            dev_views: dict[tuple[Any, ...], bytes | None] = {}
            for c in list(self.clients):
                vkey = (c.p.role, c.p.grids, c.p.compounds)
                if vkey not in dev_views:
                    dev_views[vkey] = self._devices_frame(c.p, cfg, sts)
                f = dev_views[vkey]
                if f is not None and not c.push(None, f):
                    self._overflow(c)

    async def _release(self, personal: list[tuple[Client, list[tuple[int, bytes]], list[access.Release]]]) -> None:
        """Log the personal data / locations this dispatch releases, for every client at once (one
        access_log transaction, not one per client), then send those clients their frames. If the
        log cannot be written the data is withheld: those streams end, and their clients resume
        with Last-Event-ID (the replay logs, or withholds, again)."""
        try:
            await self.ctx.log_releases([(c.p, r) for c, _, rels in personal for r in rels], "stream")
        except HTTPException:
            for c, _, _ in personal:
                self._close(c)
            return
        for c, frames, _ in personal:
            if not c.push(frames, None):
                self._overflow(c)

    def _devices_frame(self, p: Principal, cfg: SiteConfig, sts: list[Status]) -> bytes | None:
        """All device-status changes of one dispatch in one ``devices`` event (a burst of devices
        coming online after a restart is one message per client, not thousands)."""
        if p.role not in access.PERMISSIONS["devices.read"]:
            return None
        visible = visible_devices(p, cfg)
        changes = []
        for dev_id, online, reason, ts in sts:
            view = visible.get(dev_id)
            if view is None:  # not visible to this view
                continue
            building = view.get("building")
            changes.append({"device_id": dev_id, "online": online, "reason": reason, "ts_ms": ts, "building": building})
        if not changes:
            return None
        return frame("devices", {"changes": changes})

    def _overflow(self, c: Client) -> None:
        c.overflow = True
        c.incidents.clear()  # too far behind: it resumes from its Last-Event-ID instead
        c.other.clear()
        self._close(c)

    def _close(self, c: Client) -> None:
        self.clients.discard(c)
        c.ended = True
        c.wake.set()


def incident_frame(
    p: Principal, cfg: SiteConfig, e: IncidentEvent, row: dict[str, Any] | None, released: list[access.Release]
) -> bytes | None:
    if row is None or not access.incident_visible(p, row, cfg):
        return None
    release = access.Release()
    data = {
        **access.present_event(p, e, row),
        "incident": access.present_incident(p, row, cfg, release),
    }
    if release.rows:
        released.append(release)
    return frame("incident", data, str(e.seq))


async def _replay(ctx: ApiContext, c: Client, after: int) -> tuple[list[bytes], int, bool]:
    """Incident events after ``after`` from the store, as frames; (frames, last seq, too_many)."""

    def read(conn: sqlite3.Connection) -> tuple[list[IncidentEvent], dict[str, dict[str, Any]], int]:
        top = db.max_seq(conn)
        if top - after > REPLAY_MAX:
            return [], {}, top
        evs = db.events_after(conn, after, REPLAY_MAX)
        return evs, db.get_incidents(conn, [e.incident_id for e in evs]), top

    evs, rows, top = await ctx.readers.run(read)
    if not evs and top - after > REPLAY_MAX:
        return [], top, True
    frames = []
    last = after
    for e in evs:
        last = e.seq
        f = incident_frame(c.p, ctx.cfg, e, rows.get(e.incident_id), c.released)
        if f is not None:
            frames.append(f)
    return frames, max(last, after), False


@router.get(
    "/api/v1/stream",
    summary="Live incident and device-status changes (Server-Sent Events; resume with Last-Event-ID)",
    responses={200: {"content": {"text/event-stream": {}}}, 401: {"description": "no or bad token"}},
)
async def stream(
    request: Request,
    p: Annotated[Principal, Depends(require("stream"))],
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None,
    after: Annotated[
        int | None, Query(ge=0, le=2**53, description="Resume after this seq (if no Last-Event-ID).")
    ] = None,
) -> Response:
    ctx = ctx_of(request)
    hub: Hub = ctx.hub
    resume: int | None = after
    if last_event_id is not None and last_event_id.strip().isdigit():
        resume = int(last_event_id.strip())
    if hub.closed.is_set():
        raise HTTPException(503, "the gateway is stopping")
    c = Client(p, hub.queue_max)
    hub.clients.add(c)  # live events buffer from now on; the replay below covers the time before

    async def flush() -> None:
        """Log personal-data releases before the frames carrying them leave."""
        while c.released:
            releases, c.released = c.released, []
            for r in releases:
                await ctx.log_release(p, r, "stream")

    async def prelude() -> list[bytes]:
        out: list[bytes] = []
        if resume is not None:
            frames, top, too_many = await _replay(ctx, c, resume)
            c.resume_after = top
            if too_many:
                out.append(frame("reset", {"reason": "resume point too old", "seq": top}))
            await flush()
            out += frames
        else:  # a fresh client reads the lists itself; everything from now on is live
            top = await ctx.readers.run(db.max_seq)
        hello = {"seq": top, "role": p.role, "personal_data": p.role in access.PERSONAL_ROLES}
        out.append(frame("hello", hello))
        return out

    async def chunks() -> AsyncIterator[bytes]:
        """One chunk per wake-up with everything pending (frames were encoded once per view by the
        hub); sse-starlette writes it as is, sends the heartbeats, ends the stream on a disconnect,
        on server shutdown, or when one write takes longer than SEND_TIMEOUT_S (a client that
        stopped reading)."""
        try:
            yield b"".join(await prelude())
            while True:
                await c.wake.wait()
                c.wake.clear()
                chunk = c.take()
                if chunk:
                    await flush()  # personal-data releases are logged before the frames leave
                    yield chunk
                if c.ended:
                    if c.overflow:
                        yield frame("overflow", {"reason": "client too slow; resume"})
                    return
        finally:
            hub.clients.discard(c)

    return EventSourceResponse(
        chunks(),
        ping=float(ctx.cfg.api.sse_heartbeat_s),
        ping_message_factory=lambda: ServerSentEvent(comment="ping"),
        send_timeout=SEND_TIMEOUT_S,
        headers={"X-Accel-Buffering": "no", "Cache-Control": "no-store"},
    )
