"""Signed, expiring, optionally single-use links: sign-in links for staff devices and the links
residents open to evaluate a handled problem or report one.

A link token is ``<purpose>.<id>.<expires_s>.<mac>``:

- ``id``: 16 random bytes (128 bits, URL-safe base64), so a token cannot be guessed;
- ``expires_s``: Unix seconds; a token past it is refused without touching the store;
- ``mac``: HMAC-SHA256 over purpose, id and expiry with the gateway's link key. A forged or
  altered token is refused before any store lookup, so a brute-force attempt costs one HMAC.

The key is 32 random bytes created on first use and kept in the store's ``meta`` table: only the
gateway holds it, it survives restarts (links stay valid) and a restored backup keeps them valid.
Rotating it (:func:`rotate_key`) invalidates every outstanding link at once.

Only the SHA-256 of the id is stored (table ``signed_links``), with what the link is for (its
``subject``, a small JSON object), its expiry, and when it was used or revoked. A store dump alone
therefore cannot be turned back into working links. Single-use links are consumed in the same
transaction as the action they authorise (:func:`consume`), so a replay after a crash cannot act
twice.

Writes go through the caller's connection and transaction: the gateway writes only on its pipeline
thread (the API hands work to it), the CLI with a short ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from gateway.errors import Forbidden, InputError

KEY_META = "link_key"
PURPOSES: tuple[str, ...] = ("signin", "evaluate", "report")


class LinkRefused(Forbidden):
    """A link token that cannot be honoured. ``code`` says why, so a page can say it in words."""

    code = "link_invalid"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _key(conn: sqlite3.Connection, *, create: bool) -> bytes | None:
    row = conn.execute("SELECT value FROM meta WHERE key=?", (KEY_META,)).fetchone()
    if row is not None:
        return bytes.fromhex(str(row[0]))
    if not create:
        return None  # no link was ever issued: a reader must not write the key
    key = secrets.token_bytes(32)
    # INSERT OR IGNORE then re-read: two first users race to one key, never two.
    conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?,?)", (KEY_META, key.hex()))
    row = conn.execute("SELECT value FROM meta WHERE key=?", (KEY_META,)).fetchone()
    return bytes.fromhex(str(row[0])) if row is not None else None


def rotate_key(conn: sqlite3.Connection) -> None:
    """Replace the link key: every link issued before stops working."""
    conn.execute(
        "INSERT INTO meta(key, value) VALUES (?,?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
        (KEY_META, secrets.token_bytes(32).hex()),
    )


def _mac(key: bytes, purpose: str, link_id: str, expires_s: int) -> str:
    msg = f"{purpose}.{link_id}.{expires_s}".encode("ascii")
    return _b64(hmac.new(key, msg, hashlib.sha256).digest())


def _id_hash(link_id: str) -> str:
    return hashlib.sha256(link_id.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class Link:
    """A stored link: what it is for, and its state."""

    id_hash: str
    purpose: str
    subject: dict[str, Any]
    created_ms: int
    expires_ms: int
    single_use: bool
    used_ms: int | None
    revoked_ms: int | None


def issue(
    conn: sqlite3.Connection,
    purpose: str,
    subject: dict[str, Any],
    *,
    ttl_s: int,
    single_use: bool,
    now_ms: int | None = None,
) -> str:
    """Store a new link and return its token (shown once; only its hash is kept)."""
    if purpose not in PURPOSES:
        raise InputError(f"unknown link purpose {purpose!r}; one of {', '.join(PURPOSES)}")
    if ttl_s <= 0:
        raise InputError("a link's lifetime must be positive")
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    link_id = _b64(secrets.token_bytes(16))
    expires_s = now // 1000 + ttl_s
    conn.execute(
        "INSERT INTO signed_links(id_hash, purpose, subject, created_ms, expires_ms, single_use) VALUES (?,?,?,?,?,?)",
        (_id_hash(link_id), purpose, json.dumps(subject, sort_keys=True), now, expires_s * 1000, int(single_use)),
    )
    key = _key(conn, create=True)
    assert key is not None
    return f"{purpose}.{link_id}.{expires_s}.{_mac(key, purpose, link_id, expires_s)}"


def _parse(conn: sqlite3.Connection, token: str, purpose: str, now_ms: int) -> str:
    """Check the token's form, signature and expiry; return the id hash. No store row read yet."""
    parts = token.split(".")
    if len(parts) != 4 or not parts[2].isdigit() or len(token) > 200:
        raise LinkRefused("link_malformed", "this link is not complete; open it again from the message")
    got_purpose, link_id, expires_txt, mac = parts
    expires_s = int(expires_txt)
    key = _key(conn, create=False)
    if key is None or not hmac.compare_digest(_mac(key, got_purpose, link_id, expires_s), mac):
        raise LinkRefused("link_invalid", "this link is not valid")
    if got_purpose != purpose:
        raise LinkRefused("link_wrong_purpose", f"this link is not a {purpose} link")
    if expires_s * 1000 <= now_ms:
        raise LinkRefused("link_expired", "this link has expired")
    return _id_hash(link_id)


def _row(conn: sqlite3.Connection, id_hash: str) -> Link:
    row = conn.execute(
        "SELECT id_hash, purpose, subject, created_ms, expires_ms, single_use, used_ms, revoked_ms"
        " FROM signed_links WHERE id_hash=?",
        (id_hash,),
    ).fetchone()
    if row is None:
        # Signed by our key but not stored: issued before a restore, or removed by retention.
        raise LinkRefused("link_unknown", "this link is no longer known to the gateway")
    return Link(
        id_hash=row[0],
        purpose=row[1],
        subject=json.loads(row[2]),
        created_ms=int(row[3]),
        expires_ms=int(row[4]),
        single_use=bool(row[5]),
        used_ms=None if row[6] is None else int(row[6]),
        revoked_ms=None if row[7] is None else int(row[7]),
    )


def verify(conn: sqlite3.Connection, token: str, purpose: str, *, now_ms: int | None = None) -> Link:
    """The stored link a token names, if it may still be used; else :class:`LinkRefused`."""
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    link = _row(conn, _parse(conn, token, purpose, now))
    if link.revoked_ms is not None:
        raise LinkRefused("link_revoked", "this link was withdrawn")
    if link.single_use and link.used_ms is not None:
        raise LinkRefused("link_used", "this link has already been used")
    return link


def consume(conn: sqlite3.Connection, token: str, purpose: str, *, now_ms: int | None = None) -> Link:
    """Verify and, for a single-use link, mark it used. Call inside the transaction that does what
    the link allows: if that transaction rolls back, the link stays usable."""
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    link = verify(conn, token, purpose, now_ms=now)
    if link.single_use:
        cur = conn.execute("UPDATE signed_links SET used_ms=? WHERE id_hash=? AND used_ms IS NULL", (now, link.id_hash))
        if cur.rowcount != 1:
            raise LinkRefused("link_used", "this link has already been used")
    conn.execute("UPDATE signed_links SET last_seen_ms=? WHERE id_hash=?", (now, link.id_hash))
    return link


def revoke(conn: sqlite3.Connection, id_hash: str, *, now_ms: int | None = None) -> bool:
    """Withdraw one link; True when it existed and was not already withdrawn."""
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    cur = conn.execute("UPDATE signed_links SET revoked_ms=? WHERE id_hash=? AND revoked_ms IS NULL", (now, id_hash))
    return cur.rowcount == 1


def prune(conn: sqlite3.Connection, *, older_than_ms: int) -> int:
    """Delete links that expired before ``older_than_ms`` (retention); returns how many."""
    return conn.execute("DELETE FROM signed_links WHERE expires_ms < ?", (older_than_ms,)).rowcount
