"""``Gateway.residents``: the threads around the residents' stage and the API's entry points.

Writes run on the pipeline's writer thread (:meth:`Pipeline.call`), each returning a
:class:`concurrent.futures.Future`; the API awaits them without blocking its event loop. Photo
decoding and file writes happen in the caller's worker thread, before the report's transaction.
"""

from __future__ import annotations

import sqlite3
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from gateway.core.contract import BatchResult
from gateway.residents import asks, evaluation, photos, reports, sender
from gateway.residents.stage import ResidentStage
from gateway.residents.warnings import WarningWatcher
from gateway.tickets import lifecycle as lc

if TYPE_CHECKING:
    from gateway.app import Gateway
    from gateway.vision.snapshots import SnapshotStore

PHOTO_CAMERA = "report"  # snapshot ids of report photos: report-<ts>-<building>-<n>


class ResidentService:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        cfg = gw.cfg
        self.sender = sender.ResidentSender(gw.store_path, cfg, call=gw.pipeline.call)
        self.warnings = WarningWatcher(gw.store_path, cfg, call=gw.pipeline.call)
        self._photos: SnapshotStore | None = None
        gw.add_listener(self._committed)

    @property
    def stage(self) -> ResidentStage:
        for s in self.gw.pipeline.stages:
            if isinstance(s, ResidentStage):
                return s
        raise LookupError("the chain has no residents stage")

    @property
    def ctx(self) -> lc.TicketContext:
        return self.stage.ctx

    @property
    def enabled(self) -> bool:
        return bool(self.gw.cfg.resident_loop.enabled and self.gw.cfg.tickets.enabled)

    def start(self) -> None:
        if self.enabled:
            self.sender.start()
            self.warnings.start()

    def stop(self) -> None:
        self.sender.stop()
        self.warnings.stop()

    def _committed(self, result: BatchResult) -> None:
        if any(e.kind == "evaluation_requested" for e in result.incident_events):
            self.sender.wake()

    # --- photos --------------------------------------------------------------------------------
    @property
    def photos(self) -> SnapshotStore:
        """Report photos live with the camera snapshots, under the same quota: the live store when
        cameras run, else one of our own on the same folder."""
        live = getattr(self.gw.cameras, "snapshots", None)
        if live is not None:
            return live  # type: ignore[no-any-return]
        if self._photos is None:
            from gateway.privacy import snapshot_dir
            from gateway.vision.snapshots import SnapshotStore

            s = self.gw.cfg.cameras.snapshots
            self._photos = SnapshotStore(snapshot_dir(self.gw.cfg), s.quota_mb * 1024 * 1024)
        return self._photos

    def store_photo(self, building: str, data: bytes) -> str:
        """Re-encode and store (fsync) one photo; runs in a worker thread. Returns its snapshot id."""
        rl = self.gw.cfg.resident_loop.report
        jpeg = photos.reencode(data, max_bytes=rl.photo_max_bytes, max_px=rl.photo_max_px)
        return self.photos.put(PHOTO_CAMERA, building, int(time.time() * 1000), jpeg)

    # --- the API's entry points ----------------------------------------------------------------
    def submit_evaluation(
        self, token: str, *, solved: bool, rating: int, comment: str | None
    ) -> Future[dict[str, Any]]:
        ctx = self.ctx

        def fn(c: sqlite3.Connection, r: BatchResult, now: int) -> dict[str, Any]:
            return evaluation.submit(c, r, ctx, token, solved=solved, rating=rating, comment=comment, now_ms=now)

        return self.gw.pipeline.call(fn)

    def submit_report(self, token: str, fields: dict[str, Any], photo: str | None) -> Future[dict[str, Any]]:
        ctx = self.ctx

        def fn(c: sqlite3.Connection, r: BatchResult, now: int) -> dict[str, Any]:
            return reports.submit(
                c, r, ctx, token, type=fields["type"], unit=fields.get("unit"), area=fields.get("area"),
                description=fields["description"], phone=fields.get("phone"), photo=photo, now_ms=now,
            )  # fmt: skip

        return self.gw.pipeline.call(fn)

    def issue_report_qr(self, building: str) -> Future[str]:
        cfg = self.gw.cfg
        return self.gw.pipeline.call(lambda c, r, now: reports.issue_qr(c, cfg, building, now))

    def print_evaluation_link(self, incident_id: str, actor: str) -> Future[str]:
        """A fresh link for the incident's pending request, for a QR code printed on a visit; refused
        to anyone who worked the incident. Recorded on the timeline (who printed it)."""
        ctx = self.ctx

        def fn(c: sqlite3.Connection, r: BatchResult, now: int) -> str:
            state = lc.state_of(c, incident_id)
            lc.refuse_involved(c, incident_id, actor, state)
            row = c.execute(
                "SELECT id, recipient FROM evaluation_requests WHERE incident_id=? AND status='pending'"
                " ORDER BY id LIMIT 1",
                (incident_id,),
            ).fetchone()
            minted = sender.mint(c, ctx.cfg, int(row[0]), now) if row is not None else None
            if row is None or minted is None:
                raise evaluation.ResidentRefused("evaluation_closed", "no evaluation is waiting for this incident")
            data = {"request": int(row[0]), "recipient": row[1], "by": "printed", "printed_by": actor}
            ctx.incidents.append_event(c, r, incident_id, "evaluation_requested", now, data, actor=asks.ACTOR)
            return minted[0]

        return self.gw.pipeline.call(fn)
