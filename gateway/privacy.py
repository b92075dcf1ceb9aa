"""Residents' personal data: retention, `resident forget`, and the site file's permissions.

Where a resident's personal data lives (docs/security.md "Personal data"):

- ``readings`` rows with ``resident_id`` (health values, movements at home);
- ``incidents.resident_id`` / ``incidents.readings`` / ``incidents.detail`` and the free text
  (notes, comments, what was done) in ``incident_events.data``; copies of incident snapshots in
  ``ticket_requests.result`` and webhook bodies in ``deliveries.payload``;
- ``devices.last_values``, ``rule_state`` and ``timers`` of the resident's devices;
- ``outbox`` telemetry lines of the resident's devices (only with ``sync.send_personal``);
- ``dead_letters`` from the resident's devices (payload excerpts);
- ``access_log`` / ``personal_releases`` rows naming the resident;
- intrusion snapshots of the resident's devices or incidents (JPEG files).

Anonymising keeps category, type, severity, state, times, grid/compound/building, the ticket
timeline (team, person, SLA, escalation, rating), so scorecards still compute. The resident id is
replaced by an *unlinkable* random token beginning with ``~anon-`` (never a valid resident id, so
the API still treats the incident as personal and shows it to the personal roles only).

:class:`RetentionProcessor` runs inside the pipeline's transactions (a pipeline
:class:`~gateway.ingest.pipeline.Processor`): a pass at most every ``RETENTION_EVERY_S`` seconds,
in slices of a few thousand rows, so it never holds the writer for long.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import sqlite3
import stat
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.core.contract import BaseStage, BatchResult
from gateway.core.incidents import CLOSED_STATES
from gateway.errors import ConfigProblem

if TYPE_CHECKING:
    from edge_config import SiteConfig
    from gateway.vision.snapshots import SnapshotStore

log = logging.getLogger("gateway.privacy")

RETENTION_EVERY_S = 300.0  # an idle pass at most every 5 minutes ...
RETENTION_BEHIND_S = 5.0  # ... or every few seconds while a slice came back full (catching up)
SLICE = 2000  # rows deleted per table per pass
SCAN = 20_000  # readings rows looked at per pass (rowid range scan; readings has no resident index)
INCIDENT_SLICE = 200
DAY_MS = 86_400_000
ANON_PREFIX = "~anon-"

# Keys holding personal details in JSON (incident detail, event data, webhook bodies, snapshots).
PERSONAL_JSON_KEYS = frozenset(
    {
        "resident",
        "resident_id",
        "resident_name",
        "name",
        "phone",
        "room",
        "flags",
        "personal",
        "readings",
        "reading",
        "values",
        "note",
        "comment",
        "what_done",
        "photo_ref",
    }
)
# "reason" is kept when it is a machine code (not_rated, dissatisfied ...), dropped when free text.
_CODE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_SNAP_RE = re.compile(r"^([a-z0-9][a-z0-9_-]{0,63})-(\d{13})-([a-z0-9][a-z0-9_-]{0,63})-(\d+)$")


def anon_token() -> str:
    """A fresh random stand-in for a resident id (not derived from it: cannot be linked back)."""
    return ANON_PREFIX + secrets.token_hex(6)


# Any: a JSON value (decoded payload or stored JSON column)
def scrub_json(obj: Any, depth: int = 0) -> Any:
    """A copy of ``obj`` without personal keys (recursively); free-text ``reason`` dropped."""
    if depth > 20:
        return None
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            key = str(k)
            if key in PERSONAL_JSON_KEYS:
                continue
            if key == "reason" and not (isinstance(v, str) and _CODE.match(v)):
                continue
            out[key] = scrub_json(v, depth + 1)
        return out
    if isinstance(obj, list):
        return [scrub_json(v, depth + 1) for v in obj]
    return obj


# Any: whatever JSON-serialisable value is stored
def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str)


def _scrub_text(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return "{}"
    return _dumps(scrub_json(obj))


def _ids_json(ids: Iterable[Any]) -> str:
    return json.dumps(list(ids))


# --------------------------------------------------------------------------------------------
# anonymising incidents (shared by retention and forget)


def anonymise_incidents(conn: sqlite3.Connection, incident_ids: list[str], token: str | None) -> Counter[str]:
    """Strip personal details from these incidents, their events, ticket requests and deliveries.

    ``token`` replaces a non-NULL ``resident_id`` (None: a fresh token per incident). Runs in the
    caller's transaction. Returns counts of changed rows per table.
    """
    changed: Counter[str] = Counter()
    if not incident_ids:
        return changed
    ids = _ids_json(incident_ids)
    for iid, rid, detail in conn.execute(
        "SELECT id, resident_id, detail FROM incidents WHERE id IN (SELECT value FROM json_each(?))", (ids,)
    ).fetchall():
        new_rid = None if rid is None else (rid if str(rid).startswith(ANON_PREFIX) else (token or anon_token()))
        conn.execute(
            "UPDATE incidents SET resident_id=?, readings='[]', detail=? WHERE id=?",
            (new_rid, _scrub_text(detail) or "{}", iid),
        )
        changed["incidents"] += 1
    for table, key, col in (
        ("incident_events", "seq", "data"),
        ("ticket_requests", "request_id", "result"),
        ("deliveries", "id", "payload"),
    ):
        rows = conn.execute(
            f"SELECT {key}, {col} FROM {table} WHERE incident_id IN (SELECT value FROM json_each(?))", (ids,)
        ).fetchall()
        updates = [(new, k) for k, old in rows if (new := _scrub_text(old)) != old]
        if updates:
            conn.executemany(f"UPDATE {table} SET {col}=? WHERE {key}=?", updates)
            changed[table] += len(updates)
    return changed


# --------------------------------------------------------------------------------------------
# snapshots (files; outside the transaction)


def snapshot_dir(cfg: SiteConfig) -> Path:
    """Where the camera manager keeps snapshots (relative paths: the working directory, as it does)."""
    p = Path(cfg.cameras.snapshots.path)
    return p if p.is_absolute() else Path.cwd() / p


def _snapshots(directory: Path) -> list[tuple[Path, str, int]]:
    """(path, camera, ts_ms) of every snapshot file."""
    out = []
    try:
        entries = list(directory.glob("*.jpg"))
    except OSError:
        return []
    for p in entries:
        m = _SNAP_RE.match(p.stem)
        if m is not None:
            out.append((p, m.group(1), int(m.group(2))))
    return out


def remove_snapshots(
    directory: Path, pick: Callable[[str, int], bool], live: SnapshotStore | None = None, limit: int | None = None
) -> int:
    """Delete snapshot files for which ``pick(camera, ts_ms)``; ``live``: the running SnapshotStore."""
    victims = [(p, cam, ts) for p, cam, ts in _snapshots(directory) if pick(cam, ts)]
    victims.sort(key=lambda v: v[2])
    if limit is not None:
        victims = victims[:limit]
    ids = []
    for p, _cam, _ts in victims:
        try:
            p.unlink()
            ids.append(p.stem)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.error("cannot remove snapshot %s: %s", p.name, exc)
    if ids and live is not None and hasattr(live, "forget"):
        live.forget(ids)
    return len(ids)


# --------------------------------------------------------------------------------------------
# retention


class RetentionProcessor(BaseStage):
    """Deletes/anonymises personal data past its retention period (``privacy:`` settings)."""

    def __init__(self, cfg: SiteConfig, *, snapshots: Callable[[], SnapshotStore | None] | None = None) -> None:
        p = cfg.privacy
        self.readings_ms = min(p.readings_personal_days, cfg.store.readings_retention_days) * DAY_MS
        self.snapshots_ms = p.snapshots_days * DAY_MS
        self.incidents_ms = p.closed_incidents_days * DAY_MS
        self.dead_letters_ms = p.dead_letters_days * DAY_MS
        self.access_ms = p.access_log_days * DAY_MS
        self.snap_dir = snapshot_dir(cfg) if cfg.cameras.cameras else None
        self._live_snapshots = snapshots
        self._next = 0.0
        self._cursor = 0  # readings rows below this id were checked
        self.totals: Counter[str] = Counter()

    def reconfigured(self, cfg: SiteConfig, rev: int) -> RetentionProcessor:
        """Config reload (gateway/reload.py): new periods, same cursor and schedule."""
        new = RetentionProcessor(cfg, snapshots=self._live_snapshots)
        new._next, new._cursor, new.totals = self._next, self._cursor, self.totals
        return new

    def tick(self, conn: sqlite3.Connection, result: BatchResult, now_ms: int) -> None:
        mono = time.monotonic()
        if mono < self._next:
            return
        behind = self.run(conn, now_ms)
        self._next = mono + (RETENTION_BEHIND_S if behind else RETENTION_EVERY_S)

    def run(self, conn: sqlite3.Connection, now_ms: int) -> bool:
        """One pass (inside the caller's transaction). True when a slice came back full."""
        done: Counter[str] = Counter()
        full = False
        # readings of residents' devices: scan by rowid (receive order) up to the cutoff
        cutoff = now_ms - self.readings_ms
        # Stepped, not fetched: a pass usually stops at its first row (nothing past the cutoff yet),
        # and fetching the whole slice first cost ~10 ms of CPU per pass on a week-old store.
        rows = conn.execute(
            "SELECT id, rx_ms, resident_id FROM readings WHERE id > ? ORDER BY id LIMIT ?", (self._cursor, SCAN)
        )
        victims: list[int] = []
        seen = 0
        reached = False
        for rid, rx, res in rows:
            if rx >= cutoff:
                reached = True
                break
            seen += 1
            self._cursor = rid
            if res is not None:
                victims.append(rid)
        rows.close()
        reached |= seen < SCAN
        if victims:
            done["readings"] = conn.execute(
                "DELETE FROM readings WHERE id IN (SELECT value FROM json_each(?))", (_ids_json(victims),)
            ).rowcount
        full |= not reached
        # closed incidents past retention: anonymise
        marks = ",".join("?" * len(CLOSED_STATES))
        ids = [
            r[0]
            for r in conn.execute(
                f"SELECT id FROM incidents WHERE state IN ({marks}) AND updated_ms < ?"
                f" AND ((resident_id IS NOT NULL AND substr(resident_id, 1, {len(ANON_PREFIX)}) != ?)"
                "  OR readings != '[]') LIMIT ?",
                (*sorted(CLOSED_STATES), now_ms - self.incidents_ms, ANON_PREFIX, INCIDENT_SLICE),
            )
        ]
        full |= len(ids) >= INCIDENT_SLICE
        if ids:
            done.update({f"anonymised_{k}": v for k, v in anonymise_incidents(conn, ids, None).items()})
        # dead letters, access log, personal releases: by age, oldest first
        for table, col, age in (
            ("dead_letters", "rx_ms", self.dead_letters_ms),
            ("access_log", "ts_ms", self.access_ms),
            ("personal_releases", "ts_ms", self.access_ms),
        ):
            n = conn.execute(
                f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE {col} < ? ORDER BY id LIMIT ?)",
                (now_ms - age, SLICE),
            ).rowcount
            if n:
                done[table] = n
            full |= n >= SLICE
        if self.snap_dir is not None:
            snap_cut = now_ms - self.snapshots_ms
            live = self._live_snapshots() if self._live_snapshots is not None else None
            n = remove_snapshots(self.snap_dir, lambda _c, ts: ts < snap_cut, live, limit=SLICE)
            if n:
                done["snapshots"] = n
            full |= n >= SLICE
        if done:
            conn.executemany(
                "INSERT INTO counters(name, value) VALUES (?,?)"
                " ON CONFLICT(name) DO UPDATE SET value=value+excluded.value",
                [(f"retention.{k}", v) for k, v in done.items()],
            )
            self.totals.update(done)
            log.info("retention: %s", ", ".join(f"{k} {v}" for k, v in sorted(done.items())))
        return full


# --------------------------------------------------------------------------------------------
# forget one resident


@dataclass
class ForgetReport:
    resident_id: str
    token: str
    devices: list[str]
    changed: Counter[str] = field(default_factory=Counter)
    snapshot_cameras: set[str] = field(default_factory=set)
    snapshot_spans: list[tuple[str, int, int]] = field(default_factory=list)  # (camera, from, to)
    in_config: bool = False

    def lines(self) -> list[str]:
        out = [f"resident {self.resident_id}: personal data removed or anonymised (stand-in id {self.token})"]
        out.append(f"  devices considered: {', '.join(self.devices) or '(none)'}")
        labels = {
            "readings": "readings deleted",
            "incidents": "incidents anonymised (statistics kept)",
            "incident_events": "incident events scrubbed (notes, comments, values)",
            "ticket_requests": "stored ticket replies scrubbed",
            "deliveries": "webhook bodies scrubbed",
            "devices": "device last values cleared",
            "rule_state": "rule state rows deleted",
            "timers": "rule timers deleted",
            "outbox": "unsent cloud points deleted",
            "dead_letters": "dead letters deleted",
            "access_log": "access-log rows anonymised (fact kept)",
            "personal_releases": "personal-release rows anonymised (fact kept)",
            "evaluation_requests": "evaluation requests anonymised (phone erased)",
            "snapshots": "snapshot files deleted",
        }
        for key, label in labels.items():
            out.append(f"  {label}: {self.changed.get(key, 0)}")
        if self.in_config:
            out.append(
                f"  REMINDER: the site file still describes resident {self.resident_id} (name, phone, room) and "
                "links devices to them: delete the residents[] entry and the devices' resident: lines, then "
                "reload (or run with --config-edit)."
            )
        return out


def resident_devices(conn: sqlite3.Connection, cfg: SiteConfig, resident_id: str) -> list[str]:
    """The resident's devices: from the config, and from stored readings (config already edited)."""
    devs = {d.id for d in cfg.devices if getattr(d, "resident", None) == resident_id}
    devs |= {r[0] for r in conn.execute("SELECT DISTINCT device_id FROM readings WHERE resident_id=?", (resident_id,))}
    return sorted(devs)


def _topic_tokens(cfg: SiteConfig, devices: Iterable[str]) -> list[str]:
    """Topic levels that identify these devices (address, friendly name, id)."""
    toks: set[str] = set()
    for dev_id in devices:
        toks.add(dev_id)
        d = cfg.device(dev_id) if hasattr(cfg, "device") else None
        if d is not None:
            toks.add(d.address)
            if d.friendly_name:
                toks.add(d.friendly_name)
    return sorted(t for t in toks if t)


def forget_resident(
    conn: sqlite3.Connection, cfg: SiteConfig, resident_id: str, now_ms: int, *, token: str | None = None
) -> ForgetReport:
    """Remove or anonymise one resident's personal data in the store (caller's transaction).

    Also callable through ``pipeline.call(lambda c, r, now: forget_resident(c, cfg, rid, now))``.
    Snapshot files are not touched here (not transactional): call :func:`forget_snapshots` with the
    report after the commit.
    """
    tok = token or anon_token()
    devices = resident_devices(conn, cfg, resident_id)
    rep = ForgetReport(resident_id, tok, devices, in_config=cfg.resident(resident_id) is not None)
    ch = rep.changed
    devs_json = _ids_json(devices)
    # readings: the raw personal data; nothing statistical depends on them
    ch["readings"] = conn.execute(
        "DELETE FROM readings WHERE resident_id=? OR device_id IN (SELECT value FROM json_each(?))",
        (resident_id, devs_json),
    ).rowcount
    # incidents of the resident, or caused by the resident's devices
    inc = conn.execute(
        "SELECT id, devices, first_ms, last_ms FROM incidents WHERE resident_id=? OR EXISTS"
        " (SELECT 1 FROM json_each(incidents.devices) WHERE value IN (SELECT value FROM json_each(?)))",
        (resident_id, devs_json),
    ).fetchall()
    ch.update(anonymise_incidents(conn, [r[0] for r in inc], tok))
    for _iid, devs, first, last in inc:
        for cam in json.loads(devs):
            rep.snapshot_spans.append((str(cam), int(first), int(last)))
    rep.snapshot_cameras = set(devices)
    # device state: last values (heart rate, presence ...), rule state and timers of the devices
    ch["devices"] = conn.execute(
        "UPDATE devices SET last_values='{}', battery=NULL WHERE device_id IN (SELECT value FROM json_each(?))",
        (devs_json,),
    ).rowcount
    # rule keys are '|'-joined parts ('<device>|door_held_open', 'inact|<resident>' ...)
    subjects = {resident_id, *devices}
    for table in ("rule_state", "timers"):
        keys = [k for (k,) in conn.execute(f"SELECT key FROM {table}") if subjects & set(str(k).split("|"))]
        if keys:
            conn.execute(f"DELETE FROM {table} WHERE key IN (SELECT value FROM json_each(?))", (_ids_json(keys),))
        ch[table] = len(keys)
    # cloud outbox: the devices' points (present only with sync.send_personal)
    from cloud_sync.outbox import forget_devices

    ch["outbox"] = forget_devices(conn, devices)
    # dead letters: tagged with the resident, or on a topic naming one of the devices
    dead = {r[0] for r in conn.execute("SELECT id FROM dead_letters WHERE resident_id=?", (resident_id,))}
    toks = _topic_tokens(cfg, devices)
    if toks:
        for did, topic in conn.execute("SELECT id, topic FROM dead_letters"):
            t = f"/{topic}/"
            if any(f"/{tk}/" in t for tk in toks):
                dead.add(did)
    if dead:
        ch["dead_letters"] = conn.execute(
            "DELETE FROM dead_letters WHERE id IN (SELECT value FROM json_each(?))", (_ids_json(dead),)
        ).rowcount
    # who saw what: keep the fact (time, role, reason, fields), not who it was about
    ch["access_log"] = conn.execute(
        "UPDATE access_log SET resident_id=? WHERE resident_id=?", (tok, resident_id)
    ).rowcount
    ch["personal_releases"] = conn.execute(
        "UPDATE personal_releases SET resident_id=? WHERE resident_id=?", (tok, resident_id)
    ).rowcount
    # evaluation requests (gateway/residents): the phone the link went to, and who it was for
    ch["evaluation_requests"] = conn.execute(
        "UPDATE evaluation_requests SET resident_id=?, phone=NULL WHERE resident_id=?", (tok, resident_id)
    ).rowcount
    conn.execute(
        "INSERT INTO counters(name, value) VALUES ('residents_forgotten', 1)"
        " ON CONFLICT(name) DO UPDATE SET value=value+1"
    )
    conn.execute(
        "INSERT INTO gateway_events(ts_ms, kind, severity, detail) VALUES (?, 'resident_forgotten', 'warning', ?)",
        (now_ms, _dumps({"token": tok, "changed": dict(ch)})),
    )
    return rep


def forget_snapshots(
    rep: ForgetReport, directory: Path, live: SnapshotStore | None = None, slack_ms: int = 5000
) -> int:
    """Delete the snapshots of the resident's devices and of their incidents' cameras."""
    spans = rep.snapshot_spans

    def pick(cam: str, ts: int) -> bool:
        if cam in rep.snapshot_cameras:
            return True
        return any(c == cam and f - slack_ms <= ts <= t + slack_ms for c, f, t in spans)

    n = remove_snapshots(directory, pick, live)
    rep.changed["snapshots"] = n
    return n


def forget_in_store(store_path: str | Path, cfg: SiteConfig, resident_id: str) -> ForgetReport:
    """The CLI's path: its own connection, one IMMEDIATE transaction, while the gateway may run.

    ``resident forget`` is a rare administrative action, so taking the writer lock for one short
    transaction (waiting up to busy_timeout for the pipeline's current commit) is acceptable; the
    pipeline simply waits for it the same way. Readings deletion is one statement, not sliced.
    """
    from gateway.core.store import connect, migrate, transaction

    p = Path(store_path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no store")
    conn = connect(p)
    try:
        migrate(conn)
        conn.execute("PRAGMA busy_timeout=30000")
        with transaction(conn):
            rep = forget_resident(conn, cfg, resident_id, int(time.time() * 1000))
    finally:
        conn.close()
    if cfg.cameras.cameras or snapshot_dir(cfg).exists():
        forget_snapshots(rep, snapshot_dir(cfg))
    return rep


def edit_config_forget(path: Path, resident_id: str) -> list[str]:
    """Round-trip edit of the site file: drop the resident's entry and devices' ``resident:`` links.

    Devices that lose their resident keep their location but a ``room`` needs a resident (config
    rule), so ``room`` is dropped too. Returns what was changed.
    """
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    doc = yaml.load(path.read_text(encoding="utf-8"))
    changes: list[str] = []
    residents = doc.get("residents") or []
    for i in range(len(residents) - 1, -1, -1):
        if residents[i].get("id") == resident_id:
            del residents[i]
            changes.append(f"removed residents[{i}] ({resident_id})")
    for d in doc.get("devices") or []:
        if d.get("resident") == resident_id:
            del d["resident"]
            loc = d.get("location")
            if loc is not None and "room" in loc:
                del loc["room"]
            changes.append(f"unlinked device {d.get('id')}")
    if changes:
        tmp = path.with_suffix(path.suffix + ".tmp")
        mode = stat.S_IMODE(path.stat().st_mode)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yaml.dump(doc, f)
        os.replace(tmp, path)
    return changes


# --------------------------------------------------------------------------------------------
# at rest: the site file's permissions


class ConfigPermissionError(ConfigProblem):
    """The site file is readable or writable by others and privacy.config_permissions is strict."""

    code = "config_permissions"


def check_config_permissions(path: str | Path | None, mode_setting: str = "warn") -> str | None:
    """Warn (or refuse, ``strict``) when the site file is group-writable or accessible to others.

    The site file holds residents' names, phones and rooms (personal data). Secrets are never in it
    (only ``${ENV}`` references). Returns the warning text, or None when the mode is fine.
    """
    if path is None:
        return None
    try:
        st_mode = stat.S_IMODE(Path(path).stat().st_mode)
    except OSError:
        return None
    if not st_mode & 0o027:
        return None
    msg = (
        f"{path} is mode {st_mode:04o}: residents' personal data must not be readable by other users; "
        f"run: chmod 600 {path} (or 640 with a group of installers)"
    )
    if mode_setting == "strict":
        raise ConfigPermissionError(msg)
    log.warning("SECURITY: %s", msg)
    return msg
