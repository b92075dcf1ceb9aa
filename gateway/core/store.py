"""The local SQLite store: the one place accepted data becomes durable.

Design choices (see README "Local store"):
- WAL mode with ``synchronous=FULL``: a committed transaction survives power loss. Durability
  costs one fsync per *commit*, so the pipeline groups many messages into one transaction.
- One writer connection, owned by the pipeline thread. Readers (API, CLI) open their own
  connections; WAL lets them read while the writer writes.
- ``readings`` carries no secondary index: every index is paid on each insert (a (device, ts)
  index cut batched inserts ~6x). Rows are found by rowid range, which grows with receive time.
- The disk quota is SQLite's ``max_page_count``. Ordinary telemetry commits under a *soft* limit
  (quota minus a reserve); life-safety commits may use the reserve, so an SOS can still be stored
  when the store is full of telemetry.
- Schema versioned by ``PRAGMA user_version`` with forward migrations from the first release.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import Unavailable

log = logging.getLogger("gateway.core.store")

PAGE_SIZE = 4096

# Reading flags (bit field in readings.flags).
FLAG_RETAINED = 1  # came from a retained message: old state, not a new event
FLAG_LIFE_SAFETY = 2  # arrived on the life-safety session
FLAG_PERSONAL = 4  # belongs to a resident (personal data; see resident_id)
FLAG_CLOCK_RX = 8  # device clock untrusted/missing: ts_ms is the gateway receive time

# Each migration is applied once, in order, inside one transaction. Never edit a released one:
# append a new entry instead (tests migrate a database made by the first release).
MIGRATIONS: list[str] = [
    # 1: foundation
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE config_revisions (
        id INTEGER PRIMARY KEY,
        revision TEXT NOT NULL UNIQUE,      -- sha256 prefix of the config file
        version INTEGER NOT NULL,           -- config schema version
        loaded_ms INTEGER NOT NULL
    );
    CREATE TABLE readings (
        id INTEGER PRIMARY KEY,             -- grows with receive order; pruning and sync use ranges
        rx_ms INTEGER NOT NULL,             -- gateway receive time (wall clock)
        ts_ms INTEGER NOT NULL,             -- reading time (device clock when trusted, else rx_ms)
        device_id TEXT NOT NULL,            -- config device id
        kind TEXT NOT NULL,                 -- state | event | availability | bridge
        vals TEXT NOT NULL,                 -- JSON object of canonical values
        flags INTEGER NOT NULL DEFAULT 0,   -- FLAG_* bits
        msg_key INTEGER NOT NULL,           -- session<<48 | packet id<<32 | crc32(topic,payload): DUP detection
        config_rev INTEGER NOT NULL REFERENCES config_revisions(id),
        resident_id TEXT                    -- personal data owner (elder-care devices), for retention/forget
    );
    CREATE TABLE devices (
        device_id TEXT PRIMARY KEY,
        last_seen_ms INTEGER,               -- last message of any kind
        last_values TEXT NOT NULL DEFAULT '{}',
        online INTEGER,                     -- 1 online, 0 offline, NULL unknown
        online_reason TEXT,                 -- availability | lwt | silent | bridge | first_seen
        online_changed_ms INTEGER,
        battery REAL,
        since_ms INTEGER NOT NULL,          -- when this gateway started expecting the device
        config_rev INTEGER
    ) WITHOUT ROWID;
    CREATE TABLE unconfigured (
        driver TEXT NOT NULL,
        address TEXT NOT NULL,
        first_seen_ms INTEGER NOT NULL,
        last_seen_ms INTEGER NOT NULL,
        count INTEGER NOT NULL,
        last_topic TEXT NOT NULL,
        sample TEXT NOT NULL,               -- last decoded values (JSON), for adoption
        PRIMARY KEY (driver, address)
    ) WITHOUT ROWID;
    CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY,
        rx_ms INTEGER NOT NULL,
        topic TEXT NOT NULL,
        driver TEXT,
        reason TEXT NOT NULL,
        detail TEXT NOT NULL,
        payload_len INTEGER NOT NULL,
        payload_excerpt BLOB NOT NULL,      -- first bytes only (bounded)
        config_rev INTEGER,
        resident_id TEXT
    );
    CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE aliases (                  -- e.g. Zigbee2MQTT friendly name -> IEEE address
        driver TEXT NOT NULL, alias TEXT NOT NULL, address TEXT NOT NULL, updated_ms INTEGER NOT NULL,
        PRIMARY KEY (driver, alias)
    ) WITHOUT ROWID;
    CREATE TABLE retained_seen (            -- last retained payload digest per topic
        topic TEXT PRIMARY KEY, digest INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE gateway_events (           -- gateway-health happenings (store full, broker drops...)
        id INTEGER PRIMARY KEY,
        ts_ms INTEGER NOT NULL,
        kind TEXT NOT NULL,
        severity TEXT NOT NULL,
        detail TEXT NOT NULL,               -- JSON
        config_rev INTEGER
    );
    """,
    # 2: incidents. The incident_events seq is the feed cursor; see gateway/core/incidents.py.
    """
    CREATE TABLE incidents (
        id TEXT PRIMARY KEY,                -- '<gateway id>-<store uid>-<created_seq>', unique across gateways
        created_seq INTEGER NOT NULL UNIQUE, -- per-store creation sequence
        category TEXT NOT NULL,             -- parking | security | eldercare | device_health
        type TEXT NOT NULL,                 -- sos, fall, door_held_open, device_offline, ...
        severity TEXT NOT NULL,             -- critical | major | minor | warning
        state TEXT NOT NULL DEFAULT 'new',  -- incidents.OPEN_STATES / CLOSED_STATES
        key TEXT NOT NULL,                  -- rule key: '<device>|<type>' or a group key (kept when closed)
        open_key TEXT,                      -- = key while open; NULL once resolved/closed/cancelled
        life_safety INTEGER NOT NULL DEFAULT 0, -- never closed without a person
        grid TEXT, compound TEXT, building TEXT, unit TEXT, space TEXT,
        devices TEXT NOT NULL DEFAULT '[]', -- JSON list of source device ids
        first_ms INTEGER NOT NULL,          -- first trigger (rule time)
        last_ms INTEGER NOT NULL,           -- last trigger
        count INTEGER NOT NULL DEFAULT 1,   -- trigger count
        readings TEXT NOT NULL DEFAULT '[]', -- JSON: last few causing readings (bounded)
        detail TEXT NOT NULL DEFAULT '{}',  -- JSON: rule-specific (cause of a group, limit ...)
        previous_id TEXT,                   -- the incident of the same key this one recurs after
        auto_cleared_ms INTEGER,            -- when the condition recovered (recorded, see docs/rules.md)
        cleared_reason TEXT,
        resident_id TEXT,                   -- personal-data owner (never copied into text)
        config_rev INTEGER,
        created_ms INTEGER NOT NULL,        -- gateway time of creation
        updated_ms INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX incidents_open_key ON incidents(open_key) WHERE open_key IS NOT NULL;
    CREATE INDEX incidents_state ON incidents(state, last_ms);
    CREATE INDEX incidents_key ON incidents(key, created_seq);
    CREATE TABLE incident_events (          -- append-only: the timeline and the feed
        seq INTEGER PRIMARY KEY AUTOINCREMENT, -- feed cursor: monotonic, never reused
        incident_id TEXT NOT NULL,
        ts_ms INTEGER NOT NULL,
        kind TEXT NOT NULL,                 -- created | repeated | severity_changed | auto_cleared | ...
        actor TEXT NOT NULL,                -- 'rules' or a staff id
        role TEXT,
        data TEXT NOT NULL DEFAULT '{}',    -- JSON
        config_rev INTEGER
    );
    CREATE INDEX incident_events_incident ON incident_events(incident_id, seq);
    CREATE TABLE rule_state (               -- small per-rule state (counters, windows, last seen)
        key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE timers (                   -- durable rule timers: survive restarts
        key TEXT PRIMARY KEY,
        rule TEXT NOT NULL,
        due_ms INTEGER NOT NULL,            -- wall-clock due time (shifted on a clock step)
        armed_ms INTEGER NOT NULL,
        data TEXT NOT NULL DEFAULT '{}'
    ) WITHOUT ROWID;
    CREATE INDEX timers_due ON timers(due_ms);
    INSERT INTO meta(key, value) VALUES ('store_uid', lower(hex(randomblob(4))))
        ON CONFLICT(key) DO NOTHING;
    """,
    # 3: cloud sync outbox (see cloud_sync/outbox.py and docs/sync.md). A row leaves only
    # when the central store accepted its batch (2xx), or as a dead letter, or by quota thinning.
    """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,             -- allocated by the outbox processor, never reused (meta sync_last_id)
        prio INTEGER NOT NULL,              -- 0 incident event, 1 gateway health, 2 telemetry
        line TEXT NOT NULL,                 -- line protocol, built once at enqueue
        created_ms INTEGER NOT NULL,
        bytes INTEGER NOT NULL              -- accounted size (quota)
    );
    -- Partial: telemetry inserts (the hot path) never touch it; the sender finds events fast.
    CREATE INDEX outbox_urgent ON outbox(prio) WHERE prio < 2;
    CREATE TABLE outbox_totals (            -- running totals, updated in the same transactions
        prio INTEGER PRIMARY KEY, rows INTEGER NOT NULL, bytes INTEGER NOT NULL
    );
    INSERT INTO outbox_totals(prio, rows, bytes) VALUES (0, 0, 0), (1, 0, 0), (2, 0, 0);
    """,
    # 4: API tokens and the personal-data access log (see gateway/api/auth.py, docs/api.md).
    """
    CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,                -- short random id (shown by `token list`, used by `token revoke`)
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        scopes TEXT NOT NULL DEFAULT '{}',  -- JSON {"grids": [...], "compounds": [...]}; empty = whole site
        hash TEXT NOT NULL UNIQUE,          -- sha256 hex of the token; the token itself is never stored
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER,
        revoked_ms INTEGER,
        last_used_ms INTEGER
    ) WITHOUT ROWID;
    CREATE TABLE access_log (               -- releases of residents' personal data / home locations
        id INTEGER PRIMARY KEY,
        ts_ms INTEGER NOT NULL,
        token_id TEXT,
        role TEXT NOT NULL,
        reason TEXT NOT NULL,               -- personal_view | escalation_location
        incident_id TEXT,
        resident_id TEXT,
        fields TEXT NOT NULL DEFAULT '[]',  -- JSON list of released fields
        via TEXT NOT NULL                   -- list | detail | stream | feed
    );
    CREATE INDEX access_log_ts ON access_log(ts_ms);
    """,
    # 5: the ticket loop (see gateway/tickets/ and docs/tickets.md).
    """
    CREATE TABLE tickets (                  -- current dispatch/handling state per incident (history: incident_events)
        incident_id TEXT PRIMARY KEY,
        assignee TEXT,                      -- staff id
        team TEXT,                          -- teams[].id, or 'grid:<grid id>' for a grid worker
        assignee_role TEXT,
        dispatched_ms INTEGER, accepted_ms INTEGER, on_site_ms INTEGER, resolved_ms INTEGER,
        rating INTEGER, rated_ms INTEGER,
        level INTEGER NOT NULL DEFAULT 0,   -- escalation rungs climbed
        overdue TEXT NOT NULL DEFAULT '[]', -- JSON: SLA stages missed and not yet done
        watchers TEXT NOT NULL DEFAULT '[]', -- JSON: people notified by escalation rungs
        summons TEXT NOT NULL DEFAULT '[]', -- JSON: departments summoned (吹哨报到)
        renotified INTEGER NOT NULL DEFAULT 0,
        reopened INTEGER NOT NULL DEFAULT 0,
        updated_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE ticket_timers (            -- durable deadlines (SLA, rungs, re-notify, rating timeout)
        key TEXT PRIMARY KEY,               -- '<incident id>|<kind>'
        incident_id TEXT NOT NULL,
        kind TEXT NOT NULL,                 -- accept | on_site | resolve | rung | renotify | rating
        due_ms INTEGER NOT NULL,            -- wall clock; shifted on a detected clock step
        data TEXT NOT NULL DEFAULT '{}'
    ) WITHOUT ROWID;
    CREATE INDEX ticket_timers_due ON ticket_timers(due_ms);
    CREATE TABLE ticket_requests (          -- idempotency: a replayed request id returns the stored result
        request_id TEXT PRIMARY KEY,
        incident_id TEXT,
        action TEXT NOT NULL,
        actor TEXT NOT NULL,
        ts_ms INTEGER NOT NULL,
        result TEXT NOT NULL                -- JSON
    ) WITHOUT ROWID;
    CREATE TABLE deliveries (               -- notification outbox (MQTT, webhooks), written with the event
        id INTEGER PRIMARY KEY,
        created_ms INTEGER NOT NULL,
        incident_id TEXT NOT NULL,
        event_seq INTEGER NOT NULL,
        event TEXT NOT NULL,
        channel TEXT NOT NULL,              -- mqtt | webhook
        target TEXT NOT NULL,               -- topic or webhook name
        payload TEXT NOT NULL,              -- JSON, already filtered for the recipient
        status TEXT NOT NULL DEFAULT 'pending', -- pending | sent | dead
        attempts INTEGER NOT NULL DEFAULT 0,
        next_ms INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        done_ms INTEGER
    );
    CREATE INDEX deliveries_pending ON deliveries(next_ms) WHERE status = 'pending';
    CREATE TABLE personal_releases (        -- every release of residents' personal details to a channel
        id INTEGER PRIMARY KEY,
        ts_ms INTEGER NOT NULL,
        incident_id TEXT NOT NULL,
        resident_id TEXT NOT NULL,
        recipient TEXT NOT NULL,            -- webhook name or staff id
        role TEXT,
        channel TEXT NOT NULL,              -- webhook | api
        fields TEXT NOT NULL                -- JSON list of released fields
    );
    CREATE TABLE scorecard_inputs (         -- items scored centrally (contract fulfilment, on-site inspection)
        entity_kind TEXT NOT NULL,          -- property_company | team | department
        entity TEXT NOT NULL,
        period TEXT NOT NULL,               -- YYYY-MM | YYYY-Qn
        item TEXT NOT NULL,                 -- contract_fulfilment | on_site_inspection
        value REAL NOT NULL,                -- 0..100
        entered_by TEXT NOT NULL,
        entered_ms INTEGER NOT NULL,
        PRIMARY KEY (entity_kind, entity, period, item)
    ) WITHOUT ROWID;
    """,
    # 6: staff channels (gateway/channels): WeCom/DingTalk robots, SMS/voice, e-mail
    """
    CREATE TABLE channel_deliveries (       -- staff-channel outbox, written with the event (docs/channels.md)
        id INTEGER PRIMARY KEY,
        created_ms INTEGER NOT NULL,
        incident_id TEXT NOT NULL,
        event_seq INTEGER,
        event TEXT NOT NULL,
        channel TEXT NOT NULL,              -- wecom | dingtalk | sms | voice | email
        target TEXT NOT NULL,               -- robot name, phone or e-mail address
        person TEXT,                        -- staff id addressed (NULL: a robot's broadcast)
        chain TEXT NOT NULL DEFAULT '[]',   -- JSON [[channel, target], ...] still to try on failure
        mentions TEXT NOT NULL DEFAULT '[]',-- JSON phones to @-mention
        group_key TEXT NOT NULL,
        priority INTEGER NOT NULL,          -- 0 critical/life-safety, 1 major, 2 other
        status TEXT NOT NULL DEFAULT 'pending', -- pending | sent | failed
        attempts INTEGER NOT NULL DEFAULT 0,
        next_ms INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        done_ms INTEGER,
        message_id INTEGER,                 -- rows sent in one message share the id of its first row
        fallback_of INTEGER                 -- the failed row this one replaces (next channel)
    );
    CREATE INDEX channel_deliveries_pending ON channel_deliveries(priority, id) WHERE status = 'pending';
    CREATE INDEX channel_deliveries_incident ON channel_deliveries(incident_id);
    """,
    # 7: sync acknowledgement by range (cloud_sync/sender.py). A telemetry batch the central
    # store accepted is recorded here in one tiny write; its outbox rows are deleted later, in slices,
    # when the sender is idle (or at once when they take a quarter of sync.quota_mb).
    """
    CREATE TABLE outbox_sent (
        lo INTEGER PRIMARY KEY,             -- every prio-2 outbox row with lo <= id <= hi was accepted
        hi INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
    # 8: signed links (gateway/core/links.py): staff sign-in links, residents' evaluation and report
    # links. Only the SHA-256 of a link's random id is kept.
    """
    CREATE TABLE signed_links (
        id_hash TEXT PRIMARY KEY,
        purpose TEXT NOT NULL,              -- signin | evaluate | report
        subject TEXT NOT NULL,              -- JSON: what the link is for (person, incident, building)
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        single_use INTEGER NOT NULL,
        used_ms INTEGER,
        revoked_ms INTEGER,
        last_seen_ms INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX signed_links_expiry ON signed_links(expires_ms);
    """,
    # 9: the residents' side of the loop (gateway/residents, docs/tickets.md "Residents"): problems
    # reported through a building's QR code, evaluation requests, the SMS outbox to residents, and
    # the early warnings derived from the loop. Phone numbers here are personal data (retention,
    # `resident forget`).
    """
    CREATE TABLE resident_reports (         -- a resident's report, committed before the page says 'received'
        id INTEGER PRIMARY KEY,
        received_ms INTEGER NOT NULL,
        qr TEXT NOT NULL,                   -- signed_links.id_hash of the building's QR code (abuse limit)
        building TEXT NOT NULL,
        unit TEXT,                          -- NULL: a common area of the building
        area TEXT,                          -- which common area (free text, short)
        type TEXT NOT NULL,                 -- resident_loop.report.types key
        description TEXT NOT NULL,
        photo TEXT,                         -- snapshot id of the re-encoded photo (snapshot quota)
        phone TEXT,                         -- for feedback; erased after report.phone_days or by forget
        incident_id TEXT
    );
    CREATE INDEX resident_reports_qr ON resident_reports(qr, received_ms);
    CREATE INDEX resident_reports_phone ON resident_reports(phone, received_ms) WHERE phone IS NOT NULL;
    CREATE TABLE evaluation_requests (      -- who is asked to evaluate which handled incident
        id INTEGER PRIMARY KEY,
        incident_id TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        due_ms INTEGER NOT NULL,            -- no answer by then: no_response (not a rating)
        recipient TEXT NOT NULL,            -- resident | family | reporter | unit_contact
        resident_id TEXT,                   -- elder care: the configured resident
        report_id INTEGER,                  -- a reported problem: resident_reports.id
        unit TEXT,                          -- a common area: 'building/unit' of the contact
        phone TEXT,                         -- where the link is sent (personal; NULL: QR on a visit only)
        status TEXT NOT NULL DEFAULT 'pending', -- pending | answered | no_response | closed
        answered_ms INTEGER,
        source TEXT                         -- resident_link | proxy_call, when answered
    );
    CREATE INDEX evaluation_requests_incident ON evaluation_requests(incident_id);
    CREATE TABLE resident_messages (        -- SMS outbox to residents; the link is minted when it is sent
        id INTEGER PRIMARY KEY,
        request_id INTEGER NOT NULL,
        created_ms INTEGER NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending', -- pending | sent | failed
        attempts INTEGER NOT NULL DEFAULT 0,
        next_ms INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        done_ms INTEGER
    );
    CREATE INDEX resident_messages_pending ON resident_messages(next_ms) WHERE status = 'pending';
    CREATE TABLE early_warnings (           -- 提前预警: raised and cleared warnings, in order (the feed)
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL,                  -- '<kind>|<compound>|<subject>'
        kind TEXT NOT NULL,                 -- projected_score | repeated_incidents | unaccepted_rising | low_response
        compound TEXT,
        state TEXT NOT NULL,                -- raised | cleared
        ts_ms INTEGER NOT NULL,
        figures TEXT NOT NULL               -- JSON: the figures behind it
    );
    CREATE INDEX early_warnings_key ON early_warnings(key, seq);
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(Unavailable):
    """Root of store failures."""

    code = "store_error"


class StoreFull(StoreError):
    """The store refused a write: quota (max_page_count) or the disk itself is full."""

    code = "store_full"


class StoreWriteFailed(StoreError):
    """A commit failed for another reason (I/O error, locked, injected fault)."""

    code = "store_write_failed"


# --- transactions: the one way to write BEGIN ... COMMIT / SAVEPOINT ... RELEASE -------------------

TRANSACTION_MODES = ("DEFERRED", "IMMEDIATE", "EXCLUSIVE")
_SQL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
    """``BEGIN <mode>``, the block, ``COMMIT``; on any exception (a failed COMMIT included)
    ``ROLLBACK`` and re-raise.

    The connection must be in autocommit mode (``isolation_level=None``, as :func:`connect` opens
    the writer), or the sqlite3 module would open transactions of its own. A BEGIN that fails
    raises as it is: nothing of ours is open to roll back, and a transaction already open belongs
    to someone else. A ROLLBACK that fails never replaces the error that caused it (see _undo).
    """
    if mode.upper() not in TRANSACTION_MODES:
        raise ValueError(f"unknown transaction mode {mode!r}; one of {', '.join(TRANSACTION_MODES)}")
    conn.execute(f"BEGIN {mode.upper()}")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException as exc:
        _undo(conn, ("ROLLBACK",), exc)
        raise


@contextlib.contextmanager
def savepoint(conn: sqlite3.Connection, name: str) -> Iterator[sqlite3.Connection]:
    """``SAVEPOINT name``, the block, ``RELEASE name``; on any exception ``ROLLBACK TO name`` and
    ``RELEASE name`` (only the block's changes are undone; an enclosing transaction stays open),
    then re-raise. Outside a transaction the savepoint is one, and RELEASE commits it.

    If that undo fails, a store error (sqlite3.Error) from the block still surfaces: the enclosing
    transaction is lost anyway and its caller must see why. Any other exception is replaced by the
    undo's error (chained to it): a caller that handles its block's failure and carries on would
    otherwise keep writing in a transaction that no longer holds what it thinks.
    """
    if not _SQL_NAME.match(name):
        raise ValueError(f"savepoint name {name!r} is not a plain SQL identifier")
    conn.execute(f"SAVEPOINT {name}")
    try:
        yield conn
        conn.execute(f"RELEASE {name}")
    except sqlite3.Error as exc:
        _undo(conn, (f"ROLLBACK TO {name}", f"RELEASE {name}"), exc)
        raise
    except BaseException:
        conn.execute(f"ROLLBACK TO {name}")
        conn.execute(f"RELEASE {name}")
        raise


def _undo(conn: sqlite3.Connection, statements: tuple[str, ...], exc: BaseException) -> None:
    """Run the undo statements after ``exc``, never raising: the caller re-raises ``exc``, the
    cause the operator needs. SQLite may already have rolled the whole transaction back (some
    errors, e.g. SQLITE_FULL or an I/O error, do): then there is nothing to undo. An undo
    statement that fails is logged and attached to ``exc`` as a note."""
    if not conn.in_transaction:
        return
    for stmt in statements:
        try:
            conn.execute(stmt)
        except Exception as undo_exc:
            log.warning("%s failed after %s: %s", stmt, type(exc).__name__, undo_exc)
            exc.add_note(f"{stmt} also failed: {type(undo_exc).__name__}: {undo_exc}")
            return


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Quota:
    quota_bytes: int
    reserve_bytes: int

    @property
    def soft_pages(self) -> int:
        return max(16, (self.quota_bytes - self.reserve_bytes) // PAGE_SIZE)

    @property
    def hard_pages(self) -> int:
        return max(32, self.quota_bytes // PAGE_SIZE)


def _secure_create(path: Path) -> None:
    """Create the database files readable only by the service user (residents' data lives here)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if not p.exists():
            fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)


def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open a connection with the store's pragmas. Readers never create the file."""
    p = Path(path)
    if readonly:
        conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True, check_same_thread=False, timeout=10)
        conn.execute("PRAGMA query_only=ON")
    else:
        _secure_create(p)
        conn = sqlite3.connect(p, check_same_thread=False, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        # Checkpoints happen in the writer; a bigger autocheckpoint means fewer, larger writes.
        conn.execute("PRAGMA wal_autocheckpoint=4000")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA foreign_keys=OFF")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to SCHEMA_VERSION. Returns the version found before migrating."""
    found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if found > SCHEMA_VERSION:
        raise StoreError(
            f"store schema version {found} is newer than this gateway ({SCHEMA_VERSION}); "
            "run the newer release or restore a backup"
        )
    for version in range(found + 1, SCHEMA_VERSION + 1):
        with transaction(conn):
            for stmt in _split_sql(MIGRATIONS[version - 1]):
                conn.execute(stmt)
            conn.execute(f"PRAGMA user_version={version}")
    return found


def _split_sql(script: str) -> Iterable[str]:
    """Split a migration into statements (sqlite3.complete_statement knows comments and literals)."""
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            stmt = buf.strip()
            buf = ""
            if stmt:
                yield stmt
    if buf.strip():
        yield buf.strip()


class Store:
    """The writer side of the store. Used from exactly one thread (the pipeline's)."""

    def __init__(self, path: str | Path, quota: Quota) -> None:
        self.path = Path(path)
        self.quota = quota
        self.conn = connect(self.path)
        migrate(self.conn)
        self._limit_pages = 0
        self.set_page_limit(life_safety=False)
        self._lock = threading.Lock()  # guards counters cache only

    # --- quota -------------------------------------------------------------------------------
    def set_page_limit(self, *, life_safety: bool) -> None:
        pages = self.quota.hard_pages if life_safety else self.quota.soft_pages
        if pages != self._limit_pages:
            # max_page_count never goes below the current size; SQLite clamps it silently.
            self.conn.execute(f"PRAGMA max_page_count={pages}")
            self._limit_pages = pages

    def used_bytes(self) -> int:
        pages = self.conn.execute("PRAGMA page_count").fetchone()[0]
        free = self.conn.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * PAGE_SIZE)

    # --- config revisions ----------------------------------------------------------------------
    def config_rev_id(self, revision: str, version: int) -> int:
        row = self.conn.execute("SELECT id FROM config_revisions WHERE revision=?", (revision,)).fetchone()
        if row:
            return int(row[0])
        cur = self.conn.execute(
            "INSERT INTO config_revisions(revision, version, loaded_ms) VALUES (?,?,?)",
            (revision, version, now_ms()),
        )
        return int(cur.lastrowid or 0)

    # --- meta / counters -----------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?,?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, value),
        )

    def add_counters(self, deltas: dict[str, int]) -> None:
        if deltas:
            self.conn.executemany(
                "INSERT INTO counters(name, value) VALUES (?,?) "
                "ON CONFLICT(name) DO UPDATE SET value=value+excluded.value",
                list(deltas.items()),
            )

    def close(self) -> None:
        try:
            self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            pass
        self.conn.close()


def classify_sqlite_error(exc: sqlite3.Error) -> StoreError:
    """Convert sqlite3 exceptions at the boundary into the store's own error types."""
    msg = str(exc)
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL or "full" in msg:
        return StoreFull(msg)
    return StoreWriteFailed(msg)


def read_counters(conn: sqlite3.Connection) -> dict[str, int]:
    return {str(k): int(v) for k, v in conn.execute("SELECT name, value FROM counters")}
