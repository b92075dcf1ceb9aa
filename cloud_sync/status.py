"""Sync status for /metrics, /readyz and ``edge-gateway sync status`` (reads the store only)."""

from __future__ import annotations

import sqlite3
from typing import Any

from cloud_sync.outbox import PRIO_NAMES, oldest_unsent_ms
from gateway.core import store as st


def sync_status(conn: sqlite3.Connection, now_ms: int | None = None) -> dict[str, Any]:
    """Backlog, oldest unsent age, last success and last error, from any connection (read-only is fine).

    Keys: available, backlog_points, backlog_bytes, backlog {events, health, telemetry},
    oldest_unsent_ms, oldest_unsent_age_s, last_success_ms, last_success_age_s, last_error,
    last_error_ms, last_status, sent, thinned, dead_letters, not_sent.
    """
    now = st.now_ms() if now_ms is None else now_ms
    out: dict[str, Any] = {
        "available": False,
        "backlog_points": 0,
        "backlog_bytes": 0,
        "backlog": {name: 0 for name in PRIO_NAMES.values()},
        "oldest_unsent_ms": None,
        "oldest_unsent_age_s": 0.0,
        "last_success_ms": None,
        "last_success_age_s": None,
        "last_error": None,
        "last_error_ms": None,
        "last_status": None,
        "sent": 0,
        "thinned": 0,
        "dead_letters": 0,
        "not_sent": 0,
    }
    try:
        totals = conn.execute("SELECT prio, rows, bytes FROM outbox_totals").fetchall()
        oldest = oldest_unsent_ms(conn)
        meta = dict(conn.execute("SELECT key, value FROM meta WHERE key LIKE 'sync_%'").fetchall())
        counters = dict(
            conn.execute(
                "SELECT name, value FROM counters WHERE name IN"
                " ('sync_sent', 'sync_thinned', 'dead_letters.sync_rejected', 'sync_not_sent')"
            ).fetchall()
        )
    except sqlite3.Error:
        return out  # store not migrated yet (or not a gateway store)
    out["available"] = True
    for prio, rows, nbytes in totals:
        out["backlog"][PRIO_NAMES.get(prio, str(prio))] = int(rows)
        out["backlog_points"] += int(rows)
        out["backlog_bytes"] += int(nbytes)
    if oldest is not None:
        out["oldest_unsent_ms"] = oldest
        out["oldest_unsent_age_s"] = round(max(0, now - oldest) / 1000.0, 3)
    if "sync_last_success_ms" in meta:
        ok = int(meta["sync_last_success_ms"])
        out["last_success_ms"] = ok
        out["last_success_age_s"] = round(max(0, now - ok) / 1000.0, 3)
    if "sync_last_error" in meta:
        out["last_error"] = meta["sync_last_error"]
        out["last_error_ms"] = int(meta.get("sync_last_error_ms", 0)) or None
        status = meta.get("sync_last_status")
        out["last_status"] = int(status) if status and status.lstrip("-").isdigit() else None
    out["sent"] = int(counters.get("sync_sent", 0))
    out["thinned"] = int(counters.get("sync_thinned", 0))
    out["dead_letters"] = int(counters.get("dead_letters.sync_rejected", 0))
    out["not_sent"] = int(counters.get("sync_not_sent", 0))
    return out


def metrics_text(status: dict[str, Any], prefix: str = "edge_sync") -> str:
    """Prometheus exposition lines for a :func:`sync_status` dict (for the API's /metrics)."""
    lines = [
        f"# TYPE {prefix}_backlog_points gauge",
        *(f'{prefix}_backlog_points{{kind="{k}"}} {v}' for k, v in status["backlog"].items()),
        f"# TYPE {prefix}_backlog_bytes gauge",
        f"{prefix}_backlog_bytes {status['backlog_bytes']}",
        f"# TYPE {prefix}_oldest_unsent_age_seconds gauge",
        f"{prefix}_oldest_unsent_age_seconds {status['oldest_unsent_age_s']}",
        f"# TYPE {prefix}_last_success_timestamp_seconds gauge",
        f"{prefix}_last_success_timestamp_seconds {(status['last_success_ms'] or 0) / 1000.0}",
        f"# TYPE {prefix}_error gauge",
        f"{prefix}_error {0 if status['last_error'] is None else 1}",
        f"# TYPE {prefix}_sent_points_total counter",
        f"{prefix}_sent_points_total {status['sent']}",
        f"# TYPE {prefix}_thinned_points_total counter",
        f"{prefix}_thinned_points_total {status['thinned']}",
        f"# TYPE {prefix}_dead_letters_total counter",
        f"{prefix}_dead_letters_total {status['dead_letters']}",
    ]
    return "\n".join(lines) + "\n"


def ready(status: dict[str, Any], max_oldest_age_s: float = 3600.0) -> tuple[bool, str]:
    """For /readyz: not ready when the last write failed and unsent data is older than the limit."""
    if not status["available"]:
        return True, "sync store tables missing"
    if status["last_error"] is not None and status["oldest_unsent_age_s"] > max_oldest_age_s:
        return False, f"sync failing for {status['oldest_unsent_age_s']:.0f}s: {status['last_error']}"
    return True, "ok"
