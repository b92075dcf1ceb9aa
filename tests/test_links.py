"""Signed links (gateway/core/links.py): unguessable, signed, expiring, single-use where they act,
revocable, and refused with a code that says why."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.core import links
from gateway.core import store as st

NOW = 1_800_000_000_000


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    s = st.Store(tmp_path / "g.db", st.Quota(64 * 1024 * 1024, 4 * 1024 * 1024))
    try:
        yield s.conn
    finally:
        s.close()


def _code(conn: sqlite3.Connection, token: str, purpose: str = "evaluate", now: int = NOW) -> str:
    with pytest.raises(links.LinkRefused) as err:
        links.consume(conn, token, purpose, now_ms=now)
    return err.value.code


def test_single_use_link_acts_once(conn: sqlite3.Connection) -> None:
    tok = links.issue(conn, "evaluate", {"incident": "i1"}, ttl_s=3600, single_use=True, now_ms=NOW)
    assert links.consume(conn, tok, "evaluate", now_ms=NOW + 1).subject == {"incident": "i1"}
    assert _code(conn, tok, now=NOW + 2) == "link_used"


def test_reusable_link_verifies_until_expiry(conn: sqlite3.Connection) -> None:
    tok = links.issue(conn, "report", {"building": "b1"}, ttl_s=60, single_use=False, now_ms=NOW)
    for i in range(3):
        assert links.consume(conn, tok, "report", now_ms=NOW + i).subject == {"building": "b1"}
    assert _code(conn, tok, "report", now=NOW + 60_000) == "link_expired"


def test_rollback_leaves_link_usable(conn: sqlite3.Connection) -> None:
    tok = links.issue(conn, "evaluate", {"incident": "i1"}, ttl_s=3600, single_use=True, now_ms=NOW)
    with pytest.raises(RuntimeError), st.transaction(conn):
        links.consume(conn, tok, "evaluate", now_ms=NOW)
        raise RuntimeError("the rating's write failed")
    assert links.consume(conn, tok, "evaluate", now_ms=NOW).purpose == "evaluate"


def test_tampered_forged_and_wrong_purpose_refused(conn: sqlite3.Connection) -> None:
    tok = links.issue(conn, "evaluate", {"incident": "i1"}, ttl_s=3600, single_use=True, now_ms=NOW)
    purpose, link_id, exp, mac = tok.split(".")
    later = str(int(exp) + 86_400)
    assert _code(conn, ".".join([purpose, link_id, later, mac])) == "link_invalid"  # expiry stretched
    assert _code(conn, ".".join(["signin", link_id, exp, mac]), "signin") == "link_invalid"
    assert _code(conn, tok, "signin") == "link_wrong_purpose"
    assert _code(conn, "evaluate.abc") == "link_malformed"
    assert _code(conn, tok[:-3] + "AAA") == "link_invalid"
    # the failed attempts did not use it up
    assert links.consume(conn, tok, "evaluate", now_ms=NOW).subject == {"incident": "i1"}


def test_tokens_unguessable_and_only_hash_stored(conn: sqlite3.Connection) -> None:
    toks = {links.issue(conn, "signin", {"person": "p"}, ttl_s=60, single_use=True, now_ms=NOW) for _ in range(50)}
    assert len(toks) == 50
    link_id = next(iter(toks)).split(".")[1]
    assert len(link_id) >= 22  # 16 random bytes = 128 bits
    dump = "\n".join(conn.iterdump())
    assert all(t.split(".")[1] not in dump for t in toks)


def test_revoke_and_key_rotation(conn: sqlite3.Connection) -> None:
    a = links.issue(conn, "signin", {"person": "p"}, ttl_s=60, single_use=False, now_ms=NOW)
    b = links.issue(conn, "signin", {"person": "q"}, ttl_s=60, single_use=False, now_ms=NOW)
    assert links.revoke(conn, links.verify(conn, a, "signin", now_ms=NOW).id_hash, now_ms=NOW)
    assert _code(conn, a, "signin") == "link_revoked"
    links.rotate_key(conn)
    assert _code(conn, b, "signin") == "link_invalid"


def test_reader_without_key_refuses_without_writing(tmp_path: Path) -> None:
    s = st.Store(tmp_path / "g.db", st.Quota(64 * 1024 * 1024, 4 * 1024 * 1024))
    s.close()
    ro = st.connect(tmp_path / "g.db", readonly=True)
    try:
        with pytest.raises(links.LinkRefused) as err:
            links.verify(ro, "evaluate.QUJDREVGR0hJSktMTU5PUA.1900000000.xyz", "evaluate", now_ms=NOW)
        assert err.value.code == "link_invalid"
    finally:
        ro.close()


def test_prune_removes_only_expired(conn: sqlite3.Connection) -> None:
    links.issue(conn, "report", {}, ttl_s=10, single_use=False, now_ms=NOW)
    keep = links.issue(conn, "report", {}, ttl_s=1000, single_use=False, now_ms=NOW)
    assert links.prune(conn, older_than_ms=NOW + 20_000) == 1
    assert links.verify(conn, keep, "report", now_ms=NOW + 20_000).purpose == "report"
