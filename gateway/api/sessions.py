"""Device sessions: a phone or a duty-room screen signed in once, with a cookie instead of a token.

How a device gets one: an installer issues a person a one-time **sign-in link** (``signin`` link of
gateway/core/links.py: single use, expiring, revocable; only its hash stored) from the CLI
(``edge-gateway signin-link``) or the console; the person opens it on the phone, the console posts
the link to ``POST /api/v1/session`` and the gateway consumes the link and creates the session in
one transaction on the pipeline thread. A bearer token may also be exchanged for a session (the
console's token form), so a token is pasted once per device, not once per tab.

The cookie (``egw_session``) holds 32 random bytes; the store keeps only their SHA-256 (table
``device_sessions``, store migration 9) with the person, role, scope, a short device description,
expiry and last use. It is ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's
page sends it) and ``Secure`` when the console is served over TLS. Requests that change something
must also carry the console's header (``X-Edge-Console``, which another site's page cannot add
without a CORS pre-flight that the gateway refuses) and, when the browser names one, the gateway's
own Origin: see gateway/api/deps.py.

Sessions are listed and revoked per device (session id) or per person, through the API and
``edge-gateway session list/revoke``. Writes: the running gateway on its pipeline thread; the CLI in
one short ``BEGIN IMMEDIATE`` transaction (as for tokens, gateway/api/auth.py). A verified session
is cached for ``CACHE_S``: a revocation takes effect within that.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.api.auth import ROLES, Principal
from gateway.core import links
from gateway.core import store as st

if TYPE_CHECKING:
    from edge_config import SiteConfig

COOKIE = "egw_session"
SECRET_PREFIX = "cegs_"
CONSOLE_HEADER = "x-edge-console"  # the console sends it on every write; a cross-site form cannot
SESSION_PREFIX = "s-"  # Principal.token_id of a session: "s-<session id>" (never a token id)
CACHE_S = 5.0
DAY_MS = 86_400_000


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class SessionRow:
    id: str
    person: str
    role: str
    grids: tuple[str, ...]
    compounds: tuple[str, ...]
    device: str
    via: str
    created_ms: int
    expires_ms: int
    last_used_ms: int | None
    revoked_ms: int | None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "person": self.person,
            "role": self.role,
            "grids": list(self.grids),
            "compounds": list(self.compounds),
            "device": self.device,
            "via": self.via,
            "created_ms": self.created_ms,
            "expires_ms": self.expires_ms,
            "last_used_ms": self.last_used_ms,
            "revoked_ms": self.revoked_ms,
        }

    def principal(self) -> Principal:
        return Principal(
            SESSION_PREFIX + self.id, self.person, self.role, frozenset(self.grids), frozenset(self.compounds)
        )


_COLS = "id, person, role, scopes, device, via, created_ms, expires_ms, last_used_ms, revoked_ms, hash"


def _row(r: tuple[Any, ...]) -> tuple[SessionRow, str]:
    scopes = json.loads(r[3] or "{}")
    return (
        SessionRow(
            id=r[0],
            person=r[1],
            role=r[2],
            grids=tuple(scopes.get("grids", [])),
            compounds=tuple(scopes.get("compounds", [])),
            device=r[4],
            via=r[5],
            created_ms=r[6],
            expires_ms=r[7],
            last_used_ms=r[8],
            revoked_ms=r[9],
        ),
        r[10],
    )


# --- writes (inside the caller's transaction) -----------------------------------------------------


def create(
    conn: sqlite3.Connection,
    *,
    person: str,
    role: str,
    grids: Iterable[str] = (),
    compounds: Iterable[str] = (),
    device: str,
    via: str,
    ttl_ms: int,
    now_ms: int,
) -> tuple[SessionRow, str]:
    """A new session; returns its row and the cookie value (shown to the browser only)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    sid = secrets.token_hex(5)
    scopes = {"grids": sorted(set(grids)), "compounds": sorted(set(compounds))}
    conn.execute(
        f"INSERT INTO device_sessions({_COLS}) VALUES (?,?,?,?,?,?,?,?,NULL,NULL,?)",
        (sid, person, role, json.dumps(scopes), device[:120], via, now_ms, now_ms + ttl_ms, _hash(secret)),
    )
    row = SessionRow(
        sid, person, role, tuple(scopes["grids"]), tuple(scopes["compounds"]), device[:120], via, now_ms,
        now_ms + ttl_ms, None, None,
    )  # fmt: skip
    return row, secret


def revoke(conn: sqlite3.Connection, *, now_ms: int, session_id: str | None = None, person: str | None = None) -> int:
    """Revoke one device's session (``session_id``) or all of a person's; returns how many."""
    if (session_id is None) == (person is None):
        raise ValueError("revoke one session (id) or one person's sessions, not both or neither")
    col, val = ("id", session_id) if session_id is not None else ("person", person)
    return conn.execute(
        f"UPDATE device_sessions SET revoked_ms=? WHERE {col}=? AND revoked_ms IS NULL", (now_ms, val)
    ).rowcount


def mark_used(conn: sqlite3.Connection, session_id: str, now_ms: int) -> None:
    conn.execute("UPDATE device_sessions SET last_used_ms=? WHERE id=?", (now_ms, session_id))


def issue_signin_link(
    conn: sqlite3.Connection,
    *,
    person: str,
    role: str,
    grids: Iterable[str] = (),
    compounds: Iterable[str] = (),
    ttl_s: int,
    issued_by: str,
    now_ms: int,
) -> str:
    """A one-time sign-in link token for ``person`` acting as ``role`` (links.issue, purpose signin)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; use one of: {', '.join(ROLES)}")
    subject = {
        "person": person,
        "role": role,
        "grids": sorted(set(grids)),
        "compounds": sorted(set(compounds)),
        "issued_by": issued_by,
    }
    return links.issue(conn, "signin", subject, ttl_s=ttl_s, single_use=True, now_ms=now_ms)


def redeem(
    conn: sqlite3.Connection, link_token: str, *, device: str, ttl_ms: int, now_ms: int
) -> tuple[SessionRow, str]:
    """Consume a sign-in link and create the session it grants, in the caller's transaction (a
    rollback leaves the link usable). Raises links.LinkRefused."""
    link = links.consume(conn, link_token, "signin", now_ms=now_ms)
    s = link.subject
    return create(
        conn,
        person=str(s["person"]),
        role=str(s["role"]),
        grids=s.get("grids") or (),
        compounds=s.get("compounds") or (),
        device=device,
        via="link",
        ttl_ms=ttl_ms,
        now_ms=now_ms,
    )


# --- reads ---------------------------------------------------------------------------------------


def lookup(conn: sqlite3.Connection, secret: str) -> SessionRow | None:
    h = _hash(secret)
    r = conn.execute(f"SELECT {_COLS} FROM device_sessions WHERE hash=?", (h,)).fetchone()
    if r is None:
        return None
    row, stored = _row(r)
    return row if hmac.compare_digest(stored, h) else None


def list_sessions(
    conn: sqlite3.Connection, *, person: str | None = None, active_at: int | None = None
) -> list[SessionRow]:
    """Sessions (of ``person``), newest first; with ``active_at`` only those neither revoked nor expired."""
    where: list[str] = ["1"]
    params: list[Any] = []
    if person is not None:
        where.append("person=?")
        params.append(person)
    if active_at is not None:
        where.append("revoked_ms IS NULL AND expires_ms > ?")
        params.append(active_at)
    sql = f"SELECT {_COLS} FROM device_sessions WHERE {' AND '.join(where)} ORDER BY created_ms DESC, id LIMIT 1000"
    return [_row(r)[0] for r in conn.execute(sql, params)]


def device_of(user_agent: str) -> str:
    """A short, recognisable description of the browser ("Chrome · Android") for the session list."""
    ua = user_agent or ""
    system = next(
        (name for pat, name in _SYSTEMS if re.search(pat, ua)),
        "",
    )
    browser = next((name for pat, name in _BROWSERS if re.search(pat, ua)), "")
    return " · ".join(x for x in (browser, system) if x) or ua[:60]


_SYSTEMS = (
    (r"iPhone", "iPhone"),
    (r"iPad", "iPad"),
    (r"Android", "Android"),
    (r"HarmonyOS", "HarmonyOS"),
    (r"Windows", "Windows"),
    (r"Mac OS X|Macintosh", "macOS"),
    (r"CrOS", "ChromeOS"),
    (r"Linux", "Linux"),
)
_BROWSERS = (
    (r"MicroMessenger", "WeChat"),
    (r"wxwork", "WeCom"),
    (r"HeadlessChrome", "Chromium (headless)"),
    (r"Edg/", "Edge"),
    (r"Firefox/", "Firefox"),
    (r"Chrome/|Chromium/", "Chrome"),
    (r"Safari/", "Safari"),
)


class SessionVerifier:
    """Verifies session cookies against the store (read-only), with a short positive cache."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[float, SessionRow]] = {}
        self._last_used: dict[str, int] = {}
        self._lock = threading.Lock()

    def cached(self, secret: str) -> SessionRow | None:
        with self._lock:
            hit = self._cache.get(_hash(secret))
        if hit is None or hit[0] < time.monotonic() or hit[1].expires_ms <= st.now_ms():
            return None
        return hit[1]

    def forget(self, secret: str) -> None:
        with self._lock:
            self._cache.pop(_hash(secret), None)

    def verify(self, conn: sqlite3.Connection, secret: str) -> SessionRow | None:
        """The live session of a cookie value, or None. Runs in a reader thread."""
        if not secret.startswith(SECRET_PREFIX) or len(secret) > 100:
            return None
        row = lookup(conn, secret)
        if row is None or row.revoked_ms is not None or row.expires_ms <= st.now_ms():
            return None
        with self._lock:
            if len(self._cache) > 1000:
                self._cache.clear()
            self._cache[_hash(secret)] = (time.monotonic() + CACHE_S, row)
            self._last_used.setdefault(row.id, row.last_used_ms or 0)
        return row

    def due_last_used(self, session_id: str) -> int | None:
        now = st.now_ms()
        with self._lock:
            if now - self._last_used.get(session_id, 0) < 60_000:
                return None
            self._last_used[session_id] = now
        return now


def signin_url(cfg: SiteConfig, token: str) -> str:
    """The link a person opens: the console with the token in the fragment (``#signin=``), which a
    browser never sends to a server, proxy or log."""
    base = cfg.api.console_base_url
    if not base:
        scheme = "https" if cfg.api.tls is not None else "http"
        host = cfg.api.host if cfg.api.host not in ("0.0.0.0", "::") else "127.0.0.1"
        base = f"{scheme}://{host}:{cfg.api.port}/console/"
    return f"{base.rstrip('#')}#signin={token}"


def qr_data_uri(text: str) -> str:
    """The link as a QR code for a phone's camera: an SVG data URI (the console's CSP allows
    img-src data:), dark on white."""
    import segno

    return str(segno.make(text, error="m", micro=False).svg_data_uri(scale=4, border=2, dark="#000", light="#fff"))


def qr_terminal(text: str) -> str:
    """The link as a QR code drawn with block characters, for the CLI."""
    import io

    import segno

    out = io.StringIO()
    segno.make(text, error="l", micro=False).terminal(out=out, compact=True, border=2)
    return out.getvalue()


# --- CLI side (direct, short IMMEDIATE transactions) ---------------------------------------------


def _cli_conn(store_path: str | Path) -> sqlite3.Connection:
    p = Path(store_path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no store yet; start the gateway once (or check --store)")
    conn = st.connect(p)
    st.migrate(conn)
    return conn


def cli_issue_link(
    store_path: str | Path,
    *,
    person: str,
    role: str,
    grids: Iterable[str] = (),
    compounds: Iterable[str] = (),
    ttl_s: int,
    issued_by: str = "cli",
) -> str:
    conn = _cli_conn(store_path)
    try:
        with st.transaction(conn):
            return issue_signin_link(
                conn,
                person=person,
                role=role,
                grids=grids,
                compounds=compounds,
                ttl_s=ttl_s,
                issued_by=issued_by,
                now_ms=st.now_ms(),
            )
    finally:
        conn.close()


def cli_list(store_path: str | Path, person: str | None = None, *, all_: bool = False) -> list[SessionRow]:
    conn = st.connect(store_path, readonly=True)
    try:
        return list_sessions(conn, person=person, active_at=None if all_ else st.now_ms())
    except sqlite3.OperationalError:  # a store from before migration 9
        return []
    finally:
        conn.close()


def cli_revoke(store_path: str | Path, *, session_id: str | None = None, person: str | None = None) -> int:
    conn = _cli_conn(store_path)
    try:
        with st.transaction(conn):
            return revoke(conn, now_ms=st.now_ms(), session_id=session_id, person=person)
    finally:
        conn.close()
