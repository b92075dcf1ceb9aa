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

The pipeline thread calls :meth:`Hub.on_commit` after each commit; it only copies the changes and
hands them to the event loop with ``call_soon_threadsafe``. One dispatcher task on the loop reads
the changed incidents once per batch (reader thread) and fans out to per-client bounded queues.
A client whose queue is full is disconnected (``event: overflow``) and resumes with
Last-Event-ID: nothing ever waits for a slow client, least of all ingest.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from sse_starlette.sse import EventSourceResponse

from gateway.api import access, db
from gateway.api.auth import Principal
from gateway.api.deps import ApiContext, ctx_of, require
from gateway.pipeline import BatchResult

log = logging.getLogger("gateway.api.stream")
REPLAY_MAX = 5000
router = APIRouter(tags=["stream"])


@dataclass(eq=False)
class Client:
    p: Principal
    queue: asyncio.Queue[dict[str, Any] | None]
    overflow: bool = False
    resume_after: int = 0  # live incident events at or below this were replayed already
    released: list[access.Release] = field(default_factory=list)


class Hub:
    def __init__(self, ctx: ApiContext, queue_max: int) -> None:
        self.ctx = ctx
        self.queue_max = queue_max
        self.clients: set[Client] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._batches: asyncio.Queue[tuple[list[dict[str, Any]], list[tuple[str, bool, str, int]]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        self.dispatched = 0

    # --- lifecycle (event loop) ----------------------------------------------------------------
    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._batches = asyncio.Queue()
        self._task = asyncio.create_task(self._dispatcher(), name="sse-dispatcher")

    async def close_streams(self) -> None:
        """End every open stream (server shutdown); clients reconnect with Last-Event-ID."""
        self.closed.set()
        for c in list(self.clients):
            self._close(c)

    async def stop(self) -> None:
        await self.close_streams()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # --- writer thread -------------------------------------------------------------------------
    def on_commit(self, result: BatchResult) -> None:
        """Called on the pipeline thread after each commit: copy, hand over, return."""
        loop = self.loop
        if loop is None or not self.clients:
            return
        evs = [{k: v for k, v in e.items() if k != "incident"} for e in result.incident_events]
        sts = [(c.device_id, c.online, c.reason, c.ts_ms) for c in result.status_changes]
        if evs or sts:
            try:
                loop.call_soon_threadsafe(self._enqueue, evs, sts)
            except RuntimeError:  # loop closed (shutdown)
                pass

    # --- event loop ----------------------------------------------------------------------------
    def _enqueue(self, evs: list[dict[str, Any]], sts: list[tuple[str, bool, str, int]]) -> None:
        if self._batches is not None:
            self._batches.put_nowait((evs, sts))

    async def _dispatcher(self) -> None:
        assert self._batches is not None
        while True:
            evs, sts = await self._batches.get()
            # coalesce whatever else is waiting: one store read for all of it
            while not self._batches.empty():
                more_e, more_s = self._batches.get_nowait()
                evs += more_e
                sts += more_s
            try:
                await self._fan_out(evs, sts)
            except Exception:
                log.exception("stream dispatch failed")

    async def _fan_out(self, evs: list[dict[str, Any]], sts: list[tuple[str, bool, str, int]]) -> None:
        if not self.clients:
            return
        rows: dict[str, dict[str, Any]] = {}
        if evs:
            rows = await self.ctx.readers.run(db.get_incidents, [e["incident_id"] for e in evs])
        cfg = self.ctx.cfg
        # Clients with the same role and scope see the same thing: build each message once per view.
        views: dict[tuple[Any, ...], tuple[list[dict[str, Any]], list[access.Release]]] = {}
        for c in list(self.clients):
            if c.overflow:
                continue
            key = (c.p.role, c.p.grids, c.p.compounds, c.resume_after if evs else 0)
            built = views.get(key)
            if built is None:
                probe = Client(c.p, c.queue, resume_after=c.resume_after)
                msgs = []
                for e in evs:
                    if e["seq"] <= c.resume_after:
                        continue
                    msg = incident_message(probe, cfg, e, rows.get(e["incident_id"]))
                    if msg is not None:
                        msgs.append(msg)
                dev = devices_message(c.p, cfg, sts)
                if dev is not None:
                    msgs.append(dev)
                built = views[key] = (msgs, probe.released)
            msgs, released = built
            c.released.extend(released)
            for m in msgs:
                try:
                    c.queue.put_nowait(m)
                except asyncio.QueueFull:
                    c.overflow = True
                    self._close(c)
                    break
        self.dispatched += len(evs) + len(sts)

    def _close(self, c: Client) -> None:
        self.clients.discard(c)
        # make room for the end marker: the client stops at once either way
        while True:
            try:
                c.queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    c.queue.get_nowait()


def incident_message(c: Client, cfg: Any, e: dict[str, Any], row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None or not access.incident_visible(c.p, row, cfg):
        return None
    release = access.Release()
    data = {
        **access.present_event(c.p, e, row),
        "incident": access.present_incident(c.p, row, cfg, release),
    }
    if release.rows:
        c.released.append(release)
    return {"event": "incident", "id": str(e["seq"]), "data": json.dumps(data, ensure_ascii=False)}


def devices_message(p: Principal, cfg: Any, sts: list[tuple[str, bool, str, int]]) -> dict[str, Any] | None:
    """All device-status changes of one dispatch in one ``devices`` event (a burst of devices coming
    online after a restart is one message per client, not thousands)."""
    if not sts or p.role not in access.PERMISSIONS["devices.read"]:
        return None
    changes = []
    for dev_id, online, reason, ts in sts:
        if not access.device_visible(p, cfg, dev_id):
            continue
        d = cfg.device(dev_id)
        building = d.location.building if d is not None else None
        changes.append({"device_id": dev_id, "online": online, "reason": reason, "ts_ms": ts, "building": building})
    if not changes:
        return None
    return {"event": "devices", "data": json.dumps({"changes": changes}, ensure_ascii=False)}


async def _replay(ctx: ApiContext, c: Client, after: int) -> tuple[list[dict[str, Any]], int, bool]:
    """Incident events after ``after`` from the store, as messages; (messages, last seq, too_many)."""

    def read(conn: Any) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], int]:
        top = db.max_seq(conn)
        if top - after > REPLAY_MAX:
            return [], {}, top
        evs = db.events_after(conn, after, REPLAY_MAX)
        return evs, db.get_incidents(conn, [e["incident_id"] for e in evs]), top

    evs, rows, top = await ctx.readers.run(read)
    if not evs and top - after > REPLAY_MAX:
        return [], top, True
    msgs = []
    last = after
    for e in evs:
        last = e["seq"]
        m = incident_message(c, ctx.cfg, e, rows.get(e["incident_id"]))
        if m is not None:
            msgs.append(m)
    return msgs, max(last, after), False


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
) -> EventSourceResponse:
    ctx = ctx_of(request)
    hub: Hub = ctx.hub
    resume: int | None = after
    if last_event_id is not None and last_event_id.strip().isdigit():
        resume = int(last_event_id.strip())
    if hub.closed.is_set():
        raise HTTPException(503, "the gateway is stopping")
    c = Client(p, asyncio.Queue(hub.queue_max))
    hub.clients.add(c)  # live events buffer from now on; the replay below covers the time before

    async def flush() -> None:
        """Log personal-data releases before the messages carrying them leave."""
        while c.released:
            releases, c.released = c.released, []
            for r in releases:
                await ctx.log_release(p, r, "stream")

    async def gen() -> AsyncIterator[dict[str, Any]]:
        try:
            if resume is not None:
                msgs, top, too_many = await _replay(ctx, c, resume)
                c.resume_after = top
                if too_many:
                    yield {"event": "reset", "data": json.dumps({"reason": "resume point too old", "seq": top})}
                await flush()
                for m in msgs:
                    yield m
            else:  # a fresh client reads the lists itself; everything from now on is live
                top = await ctx.readers.run(db.max_seq)
            yield {
                "event": "hello",
                "data": json.dumps({"seq": top, "role": p.role, "personal_data": p.role in access.PERSONAL_ROLES}),
            }
            while True:
                got = await c.queue.get()
                if got is None:
                    if c.overflow:
                        yield {"event": "overflow", "data": json.dumps({"reason": "client too slow; resume"})}
                    return
                if got.get("event") == "incident" and int(got["id"]) <= c.resume_after:
                    continue  # already replayed
                await flush()
                yield got
        finally:
            hub.clients.discard(c)

    return EventSourceResponse(
        gen(),
        ping=ctx.cfg.api.sse_heartbeat_s,
        headers={"X-Accel-Buffering": "no"},
        send_timeout=30,
        shutdown_event=None,
    )
