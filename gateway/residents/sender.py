"""The SMS outbox to residents: ``resident_messages`` rows, sent through the site's SMS gateway.

The staff channels have their own queue (gateway/channels); residents' messages are few, personal
and carry a single-use link, so they keep their own small outbox here and only reuse the SMS
gateway's client, :func:`gateway.channels.sms.send` (the documented HTTP API as configured in
``channels.sms``).

The link is **minted when the message is sent**, on the writer thread (``links.issue``), and lives
only in memory until the SMS leaves: the store never holds a working link, only its hash. A retry
mints a fresh link and withdraws the one before (a message that failed never leaves a usable link
behind). Each attempt is a ``notify_attempt`` event on the incident (channel ``resident_sms``;
never the phone number).
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.channels import sms
from gateway.channels.base import Outcome
from gateway.core import incidents as inc
from gateway.core import links
from gateway.core.workers import ReaderThread
from gateway.residents import asks, texts

if TYPE_CHECKING:
    from edge_config import SiteConfig
    from gateway.core.contract import BatchResult

log = logging.getLogger("gateway.residents")

Call = Callable[[Callable[[sqlite3.Connection, "BatchResult", int], Any]], Future[Any]]
EVALUATE_PAGE = "/r/evaluate.html"


def evaluation_url(base_url: str, token: str) -> str:
    # The token rides in the fragment: browsers never send it to the server in the URL or a Referer,
    # so it stays out of access logs and proxies; the page posts it in a request body.
    return f"{base_url}{EVALUATE_PAGE}#{token}"


def mint(conn: sqlite3.Connection, cfg: SiteConfig, request_id: int, now_ms: int) -> tuple[str, str] | None:
    """A fresh link for a pending request: (token, incident id); None when it is no longer pending."""
    row = conn.execute(
        "SELECT incident_id, due_ms, status FROM evaluation_requests WHERE id=?", (request_id,)
    ).fetchone()
    if row is None or row[2] != "pending" or int(row[1]) <= now_ms:
        return None
    ttl_s = int(min(cfg.resident_loop.evaluation.link_ttl_days * 86_400, (int(row[1]) - now_ms) / 1000))
    subject = {"request": request_id, "incident": str(row[0])}
    token = links.issue(conn, "evaluate", subject, ttl_s=max(ttl_s, 60), single_use=True, now_ms=now_ms)
    return token, str(row[0])


class ResidentSender(ReaderThread):
    thread_name = "resident-sms"

    def __init__(
        self,
        db_path: str | Path,
        cfg: SiteConfig,
        *,
        call: Call,
        clock: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        super().__init__(db_path)
        self.cfg = cfg
        self.call = call
        self.clock = clock
        self.incidents = inc.IncidentStore(cfg.gateway.id)
        self.sent = 0
        self.failed_attempts = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                n = self.run_once()
            except Exception:
                log.exception("resident SMS sender failed; retrying")
                n = 0
            if n == 0:
                self._wake.wait(1.0)
                self._wake.clear()

    def run_once(self) -> int:
        """Send at most one due message; returns 1 when one was attempted."""
        now = self.clock()
        row = (
            self._read()
            .execute(
                "SELECT m.id, m.request_id, m.attempts, r.phone, r.incident_id FROM resident_messages m"
                " JOIN evaluation_requests r ON r.id = m.request_id"
                " WHERE m.status='pending' AND m.next_ms <= ? ORDER BY m.next_ms, m.id LIMIT 1",
                (now,),
            )
            .fetchone()
        )
        if row is None:
            return 0
        mid, req, attempts, phone, iid = int(row[0]), int(row[1]), int(row[2]), row[3], str(row[4])
        gw = self.cfg.channels.sms
        base = self.cfg.resident_loop.base_url
        if gw is None or not base or not phone:
            self._finish(mid, iid, attempts + 1, Outcome("rejected", None, None, "no SMS gateway or phone"), None)
            return 1
        minted: tuple[str, str] | None = self.call(lambda c, r, n: mint(c, self.cfg, req, n)).result(30)
        if minted is None:
            self._finish(mid, iid, attempts + 1, Outcome("rejected", None, None, "request closed"), None)
            return 1
        token = minted[0]
        body = self._body(iid, token)
        # the resident text is a long SMS (the link alone is ~120 characters)
        gateway = gw.model_copy(update={"max_chars": self.cfg.resident_loop.evaluation.sms_max_chars})
        outcome = sms.send(gateway, str(phone), body, timeout=self.cfg.channels.http_timeout_s)
        self._finish(mid, iid, attempts + 1, outcome, token)
        return 1

    def _body(self, incident_id: str, token: str) -> str:
        lang = self.cfg.resident_loop.language
        conn = self._read()
        row = conn.execute("SELECT type FROM incidents WHERE id=?", (incident_id,)).fetchone()
        team = conn.execute("SELECT team, assignee_role FROM tickets WHERE incident_id=?", (incident_id,)).fetchone()
        base = self.cfg.resident_loop.base_url or ""
        return texts.text(
            lang,
            "sms_evaluate",
            what=texts.type_label(lang, str(row[0]) if row else "report"),
            team=asks.team_label(self.cfg, team[0] if team else None, lang, team[1] if team else None),
            link=evaluation_url(base, token),
        )

    def _finish(self, mid: int, incident_id: str, attempt: int, outcome: Outcome, token: str | None) -> None:
        ev = self.cfg.resident_loop.evaluation
        gave_up = not outcome.ok and (not outcome.retriable or attempt >= ev.max_attempts)
        retry_s = None
        if not outcome.ok and not gave_up:
            retry_s = min(3600.0, ev.retry_min_s * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
        if outcome.ok:
            self.sent += 1
        else:
            self.failed_attempts += 1
            log.warning("resident SMS %d attempt %d failed: %s %s", mid, attempt, outcome.kind, outcome.error)

        def write(conn: sqlite3.Connection, result: BatchResult, now: int) -> None:
            if token is not None and not outcome.ok:
                # a link whose SMS did not leave must not stay usable (a retry mints a new one)
                try:
                    links.revoke(conn, links.verify(conn, token, "evaluate", now_ms=now).id_hash, now_ms=now)
                except links.LinkRefused:
                    pass  # expired or withdrawn already
            status = "sent" if outcome.ok else ("failed" if gave_up else "pending")
            conn.execute(
                "UPDATE resident_messages SET status=?, attempts=?, next_ms=?, last_error=?, done_ms=? WHERE id=?",
                (
                    status,
                    attempt,
                    now + int((retry_s or 0) * 1000),
                    None if outcome.ok else f"{outcome.kind}: {outcome.error}"[:200],
                    now if status != "pending" else None,
                    mid,
                ),
            )
            data = {
                "delivery": f"resident:{mid}",
                "channel": "resident_sms",
                "attempt": attempt,
                "ok": outcome.ok,
                "status": outcome.status,
                "error": outcome.error or None,
                "retry_in_s": None if retry_s is None else round(retry_s, 1),
                "gave_up": gave_up,
            }
            self.incidents.append_event(conn, result, incident_id, "notify_attempt", now, data, actor=asks.ACTOR)

        self.call(write).result(30)
