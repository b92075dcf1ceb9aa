"""Bearer tokens, roles and scopes.

A token is 32 random bytes (``cegw_`` + URL-safe base64). Only its SHA-256 is stored (table
``api_tokens``, store migration 4); a presented token is hashed and looked up by hash, then the
hashes are compared with :func:`hmac.compare_digest`.

Writes: the running gateway writes only through its pipeline thread (``last_used_ms``, at most
once a minute per token; the first-start installer token). The CLI (``edge-gateway token create /
revoke``) writes directly with a short ``BEGIN IMMEDIATE`` transaction and a busy timeout, even
while the gateway runs: a rare admin action, and SQLite serialises it with the pipeline's writer
(which waits at most one short transaction). The API caches a verified token for a few seconds, so
a revocation takes effect within ``CACHE_S``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.core import store as st

if TYPE_CHECKING:
    from gateway.app import Gateway
    from gateway.core.contract import BatchResult

log = logging.getLogger("gateway.api.auth")

ROLES: tuple[str, ...] = (
    "installer",
    "property_staff",
    "eldercare_worker",
    "grid_worker",
    "community_office",
    "street_office",
    "department",
    "central_platform",
)
TOKEN_PREFIX = "cegw_"
ENV_INSTALLER_TOKEN = "EDGE_GATEWAY_INSTALLER_TOKEN"
LAST_USED_EVERY_MS = 60_000
CACHE_S = 5.0


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a verified token."""

    token_id: str
    name: str
    role: str
    grids: frozenset[str] = field(default_factory=frozenset)
    compounds: frozenset[str] = field(default_factory=frozenset)

    @property
    def scoped(self) -> bool:
        return bool(self.grids or self.compounds)

    @property
    def actor(self) -> str:
        """Actor recorded on incident events: the token's name (a staff id by convention)."""
        return self.name


@dataclass(frozen=True)
class TokenRow:
    id: str
    name: str
    role: str
    grids: tuple[str, ...]
    compounds: tuple[str, ...]
    created_ms: int
    expires_ms: int | None
    revoked_ms: int | None
    last_used_ms: int | None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "grids": list(self.grids),
            "compounds": list(self.compounds),
            "created_ms": self.created_ms,
            "expires_ms": self.expires_ms,
            "revoked_ms": self.revoked_ms,
            "last_used_ms": self.last_used_ms,
        }


_TOKEN_COLS = "id, name, role, scopes, hash, created_ms, expires_ms, revoked_ms, last_used_ms"


def _row(r: tuple[Any, ...]) -> tuple[TokenRow, str]:
    scopes = json.loads(r[3] or "{}")
    return (
        TokenRow(
            id=r[0],
            name=r[1],
            role=r[2],
            grids=tuple(scopes.get("grids", [])),
            compounds=tuple(scopes.get("compounds", [])),
            created_ms=r[5],
            expires_ms=r[6],
            revoked_ms=r[7],
            last_used_ms=r[8],
        ),
        r[4],
    )


# --- writes (inside a caller's transaction) -----------------------------------------------------


def insert_token(
    conn: sqlite3.Connection,
    token: str,
    *,
    role: str,
    name: str,
    grids: Iterable[str] = (),
    compounds: Iterable[str] = (),
    expires_ms: int | None = None,
    now_ms: int | None = None,
) -> TokenRow:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; use one of: {', '.join(ROLES)}")
    now = st.now_ms() if now_ms is None else now_ms
    token_id = secrets.token_hex(4)
    scopes = {"grids": sorted(set(grids)), "compounds": sorted(set(compounds))}
    conn.execute(
        f"INSERT INTO api_tokens({_TOKEN_COLS}) VALUES (?,?,?,?,?,?,?,NULL,NULL)",
        (token_id, name, role, json.dumps(scopes), hash_token(token), now, expires_ms),
    )
    return TokenRow(
        token_id, name, role, tuple(scopes["grids"]), tuple(scopes["compounds"]), now, expires_ms, None, None
    )


def has_active_installer(conn: sqlite3.Connection, now_ms: int | None = None) -> bool:
    now = st.now_ms() if now_ms is None else now_ms
    row = conn.execute(
        "SELECT 1 FROM api_tokens WHERE role='installer' AND revoked_ms IS NULL"
        " AND (expires_ms IS NULL OR expires_ms > ?) LIMIT 1",
        (now,),
    ).fetchone()
    return row is not None


def list_tokens(conn: sqlite3.Connection) -> list[TokenRow]:
    return [_row(r)[0] for r in conn.execute(f"SELECT {_TOKEN_COLS} FROM api_tokens ORDER BY created_ms, id")]


def lookup(conn: sqlite3.Connection, token: str) -> TokenRow | None:
    """The token's row if the token is known (revocation/expiry are checked by the caller)."""
    h = hash_token(token)
    r = conn.execute(f"SELECT {_TOKEN_COLS} FROM api_tokens WHERE hash=?", (h,)).fetchone()
    if r is None:
        return None
    row, stored = _row(r)
    return row if hmac.compare_digest(stored, h) else None


# --- CLI side (direct, short IMMEDIATE transactions; see module docstring) -----------------------


def _cli_conn(store_path: str | Path) -> sqlite3.Connection:
    p = Path(store_path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no store yet; start the gateway once (or check --store)")
    conn = st.connect(p)
    st.migrate(conn)  # a store made by an older release gets the tokens table
    return conn


def cli_create(
    store_path: str | Path,
    *,
    role: str,
    name: str,
    grids: Iterable[str] = (),
    compounds: Iterable[str] = (),
    expires_days: float | None = None,
) -> tuple[TokenRow, str]:
    token = new_token()
    expires = st.now_ms() + int(expires_days * 86_400_000) if expires_days else None
    conn = _cli_conn(store_path)
    try:
        with st.transaction(conn):
            row = insert_token(conn, token, role=role, name=name, grids=grids, compounds=compounds, expires_ms=expires)
    finally:
        conn.close()
    return row, token


def cli_list(store_path: str | Path) -> list[TokenRow]:
    conn = st.connect(store_path, readonly=True)
    try:
        return list_tokens(conn)
    except sqlite3.OperationalError:  # store from before migration 4
        return []
    finally:
        conn.close()


def cli_revoke(store_path: str | Path, token_id: str) -> bool:
    conn = _cli_conn(store_path)
    try:
        with st.transaction(conn):
            n = conn.execute(
                "UPDATE api_tokens SET revoked_ms=? WHERE id=? AND revoked_ms IS NULL", (st.now_ms(), token_id)
            ).rowcount
        return n == 1
    finally:
        conn.close()


# --- first start ---------------------------------------------------------------------------------


def token_file_path(gw: Gateway) -> Path:
    configured = gw.cfg.api.token_file
    return Path(configured) if configured is not None else gw.store_path.parent / "installer.token"


def ensure_installer_token(gw: Gateway, timeout: float = 30.0) -> Path | None:
    """No default credentials: on the first start, create an installer token.

    ``EDGE_GATEWAY_INSTALLER_TOKEN`` (if set) is hashed in; otherwise a new token is written to the
    token file with mode 0600 and only the file's path is logged. Runs the write on the pipeline
    thread. Returns the file written, or None.
    """
    env = os.environ.get(ENV_INSTALLER_TOKEN, "").strip()
    path = token_file_path(gw)

    def write(conn: sqlite3.Connection, result: BatchResult, now: int) -> str | None:
        if env:
            if lookup(conn, env) is None:
                insert_token(conn, env, role="installer", name="installer (environment)", now_ms=now)
                return "env"
            return None
        if has_active_installer(conn, now):
            return None
        token = new_token()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        try:
            os.write(fd, (token + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        insert_token(conn, token, role="installer", name="installer (first start)", now_ms=now)
        return "file"

    what = gw.pipeline.call(write).result(timeout)
    if what == "file":
        log.warning("first start: an installer token was written to %s (readable by this user only)", path)
        return path
    if what == "env":
        log.info("installer token taken from %s", ENV_INSTALLER_TOKEN)
    return None


# --- request side --------------------------------------------------------------------------------


class AuthFailureLimiter:
    """Per client address: at most ``limit`` failed authentications per ``window_s``."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit, self.window_s = limit, window_s
        self._fails: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _prune(self, q: deque[float], now: float) -> None:
        while q and q[0] <= now - self.window_s:
            q.popleft()

    def retry_after(self, client: str) -> int:
        """Seconds until the client may try again (0 = now)."""
        now = time.monotonic()
        with self._lock:
            q = self._fails.get(client)
            if not q:
                return 0
            self._prune(q, now)
            if len(q) < self.limit:
                return 0
            return max(1, int(q[0] + self.window_s - now + 0.999))

    def failed(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._fails) > 10_000:  # bounded memory under a spray of addresses
                self._fails = {k: v for k, v in self._fails.items() if v and v[-1] > now - self.window_s}
            q = self._fails.setdefault(client, deque())
            self._prune(q, now)
            q.append(now)


class TokenVerifier:
    """Verifies bearer tokens against the store (read-only), with a short positive cache."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[float, Principal, int | None]] = {}
        self._last_used: dict[str, int] = {}
        self._lock = threading.Lock()

    def cached(self, token: str) -> Principal | None:
        h = hash_token(token)
        with self._lock:
            hit = self._cache.get(h)
        if hit is None or hit[0] < time.monotonic():
            return None
        expires = hit[2]
        if expires is not None and expires <= st.now_ms():
            return None
        return hit[1]

    def verify(self, conn: sqlite3.Connection, token: str) -> tuple[Principal | None, str]:
        """(principal, "") or (None, reason). Runs in a reader thread."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None, "malformed token"
        row = lookup(conn, token)
        if row is None:
            return None, "unknown token"
        now = st.now_ms()
        if row.revoked_ms is not None:
            return None, "token revoked"
        if row.expires_ms is not None and row.expires_ms <= now:
            return None, "token expired"
        p = Principal(row.id, row.name, row.role, frozenset(row.grids), frozenset(row.compounds))
        with self._lock:
            if len(self._cache) > 1000:
                self._cache.clear()
            self._cache[hash_token(token)] = (time.monotonic() + CACHE_S, p, row.expires_ms)
            self._last_used.setdefault(row.id, row.last_used_ms or 0)
        return p, ""

    def due_last_used(self, token_id: str) -> int | None:
        """The time to record as last use, if the last record is older than a minute."""
        now = st.now_ms()
        with self._lock:
            if now - self._last_used.get(token_id, 0) < LAST_USED_EVERY_MS:
                return None
            self._last_used[token_id] = now
        return now


def mark_used(gw: Gateway, token_id: str, now_ms: int) -> None:
    """Record a token's last use on the pipeline thread (fire and forget)."""

    def write(conn: sqlite3.Connection, result: BatchResult, now: int) -> None:
        conn.execute("UPDATE api_tokens SET last_used_ms=? WHERE id=?", (now_ms, token_id))

    gw.pipeline.call(write)


class RoleRateLimiter:
    """Per-token token bucket whose rate depends on the token's role (api.rate_limits.per_minute).

    Keeps a compromised or buggy low-privilege client from starving the gateway (the API shares a
    process with ingest); in memory, so a restart refills every bucket.
    """

    def __init__(self, per_minute: dict[str, int], default: int = 300) -> None:
        self.per_minute = dict(per_minute)
        self.default = default
        self._buckets: dict[str, tuple[float, float]] = {}  # token id -> (tokens, last refill)
        self._lock = threading.Lock()

    def retry_after(self, token_id: str, role: str, now: float | None = None) -> int:
        """0 when the request may proceed (and is counted), else seconds to wait."""
        rate = max(1, self.per_minute.get(role, self.default))
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(token_id, (float(rate), now))
            tokens = min(float(rate), tokens + (now - last) * rate / 60.0)
            if tokens >= 1.0:
                self._buckets[token_id] = (tokens - 1.0, now)
                return 0
            self._buckets[token_id] = (tokens, now)
            return max(1, int((1.0 - tokens) * 60.0 / rate + 0.999))
