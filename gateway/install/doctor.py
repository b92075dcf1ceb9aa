"""``edge-gateway doctor --config PATH``: find out quickly why a site does not work.

Each check returns a :class:`Check` (name, ok | warn | fail, what was found, how to fix it).
The exit status is 1 when any check fails. Checks, in order:

config · broker (TCP) · broker login (CONNECT with the configured credentials/TLS) · broker
permissions (SUBSCRIBE every filter of the config, PUBLISH to the status topic; MQTT 5 so a
refusal comes back as a reason code) · broker queue settings (the local Mosquitto's config file
compared with deploy/mosquitto.conf) · clock (NTP server given with --ntp, else the central
store's HTTP ``Date`` header) · disk space · store health (quick_check, schema version, size vs
quota) · central time-series store (reachable, token accepted) · API port free.

Nothing here contacts a host that is not in the config or on the command line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.utils
import json
import os
import shutil
import socket
import sqlite3
import struct
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.core import store as st

if TYPE_CHECKING:
    import paho.mqtt.client as paho

    from edge_config import SiteConfig

OK, WARN, FAIL = "ok", "warn", "fail"
LABELS = {OK: "[ OK ]", WARN: "[WARN]", FAIL: "[FAIL]"}
ZH = {
    "config": "配置文件",
    "broker": "MQTT 代理",
    "broker_login": "代理登录",
    "broker_permissions": "订阅/发布权限",
    "broker_queue": "代理队列设置",
    "clock": "时钟",
    "disk": "磁盘空间",
    "store": "本地数据库",
    "tsdb": "中心时序库",
    "api_port": "API 端口",
}
CLOCK_WARN_S = 2.0
CLOCK_FAIL_S = 60.0


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""

    def format(self) -> str:
        head = f"{LABELS[self.status]} {self.name} {ZH.get(self.name, '')}: {self.detail}"
        return head + (f"\n       fix / 处理: {self.fix}" if self.fix and self.status != OK else "")


@dataclass
class Options:
    store: str | None = None
    ntp: str | None = None
    broker_conf: str | None = None  # Mosquitto config file to inspect (default /etc/mosquitto/mosquitto.conf)
    timeout_s: float = 3.0
    skip: tuple[str, ...] = ()


# --- config ------------------------------------------------------------------------------------


def check_config(path: str) -> tuple[Check, SiteConfig | None]:
    from edge_config import ConfigError, load_config

    try:
        cfg = load_config(path)
    except ConfigError as exc:
        lines = "\n         ".join(i.format() for i in exc.issues[:20])
        more = f" (+{len(exc.issues) - 20} more)" if len(exc.issues) > 20 else ""
        return (
            Check(
                "config",
                FAIL,
                f"{len(exc.issues)} problem(s){more}:\n         {lines}",
                f"fix each line above in {path}, then run `edge-gateway validate {path}`",
            ),
            None,
        )
    n = len(cfg.owned_devices())
    return Check("config", OK, f"{path} is valid (revision {cfg.revision}, {n} devices owned by {cfg.gateway.id})"), cfg


# --- broker ------------------------------------------------------------------------------------


def check_broker_tcp(cfg: SiteConfig, timeout: float) -> Check:
    m = cfg.mqtt
    try:
        with socket.create_connection((m.host, m.port), timeout=timeout):
            return Check("broker", OK, f"{m.host}:{m.port} accepts connections")
    except OSError as exc:
        return Check(
            "broker",
            FAIL,
            f"cannot reach {m.host}:{m.port} ({exc.strerror or exc})",
            "start the broker (systemctl start mosquitto; docker compose up -d mosquitto) or correct "
            "mqtt.host / mqtt.port; check firewalls between this box and the broker",
        )


_CONNECT_FIX = {
    "Bad user name or password": "set mqtt.username and the password's environment variable (e.g. MQTT_PASSWORD "
    'for password: "${MQTT_PASSWORD}") to the values in the broker\'s password_file (mosquitto_passwd)',
    "Not authorized": "the broker refuses this user or client id: add the user to the broker's password_file/ACL",
    "Client identifier not valid": "set mqtt.client_id to a short ASCII id unique on this broker",
}


def _client(cfg: SiteConfig, client_id: str) -> paho.Client:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from gateway.ingest.mqtt import connection_from_config

    s = connection_from_config(cfg)
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    s.apply_to(c)
    return c


def check_broker_session(cfg: SiteConfig, timeout: float) -> list[Check]:
    """CONNECT, then SUBSCRIBE every filter and PUBLISH to the status topic (MQTT 5 reason codes)."""
    from gateway.ingest.mqtt import MqttConfigRefused, connection_from_config
    from gateway.ingest.routing import build_routing

    s = connection_from_config(cfg)
    try:
        s.check_transport()
    except MqttConfigRefused as exc:
        return [Check("broker_login", FAIL, str(exc).split(". ")[0], str(exc).split(". ", 1)[-1])]
    routing = build_routing(cfg)
    filters = list(dict.fromkeys([*routing.telemetry_filters, *routing.safety_filters]))
    done = threading.Event()
    state: dict[str, Any] = {}
    try:
        c = _client(cfg, f"edge-doctor-{os.getpid()}")
    except (OSError, ValueError) as exc:
        return [Check("broker_login", FAIL, f"TLS files unusable: {exc}", "check mqtt.tls.ca_file/cert_file/key_file")]

    # paho callbacks: its client passes reason codes and properties we only store or test loosely
    def on_connect(cl: Any, u: Any, flags: Any, reason: Any, props: Any) -> None:
        state["connect"] = reason
        if getattr(reason, "is_failure", False):
            done.set()
            return
        if filters:
            state["sub_mid"] = cl.subscribe([(f, 1) for f in filters])[1]
        else:
            state["sub"] = []
        info = cl.publish(s.status_topic, json.dumps({"state": "doctor", "gateway": cfg.gateway.id}), qos=1)
        state["pub_mid"] = info.mid

    def on_subscribe(cl: Any, u: Any, mid: int, reasons: Any, props: Any) -> None:
        state["sub"] = list(reasons)
        if "pub" in state:
            done.set()

    def on_publish(cl: Any, u: Any, mid: int, reason: Any, props: Any) -> None:
        state["pub"] = reason
        if "sub" in state:
            done.set()

    def on_disconnect(cl: Any, u: Any, flags: Any, reason: Any, props: Any) -> None:
        state.setdefault("disconnect", reason)
        done.set()

    c.on_connect, c.on_subscribe, c.on_publish, c.on_disconnect = on_connect, on_subscribe, on_publish, on_disconnect
    try:
        c.connect(s.host, s.port, 10)
    except (OSError, ValueError) as exc:
        return [
            Check("broker_login", FAIL, f"connect failed: {exc}", "see the broker check above; for TLS check the CA")
        ]
    c.loop_start()
    done.wait(timeout * 2)
    c.disconnect()
    c.loop_stop()
    out: list[Check] = []
    reason = state.get("connect")
    who = f"user {s.username!r}" if s.username else "anonymous"
    if reason is None:
        why = state.get("disconnect")
        return [
            Check(
                "broker_login",
                FAIL,
                f"no CONNACK from {s.host}:{s.port} ({why or 'timeout'})",
                "the port may be a TLS listener (set mqtt.tls) or not MQTT at all; check mqtt.port",
            )
        ]
    if getattr(reason, "is_failure", False):
        text = str(reason)
        fix = _CONNECT_FIX.get(text, "check the broker's log (journalctl -u mosquitto) for why it refused")
        return [Check("broker_login", FAIL, f"the broker refused the connection as {who}: {text}", fix)]
    out.append(Check("broker_login", OK, f"connected as {who}{' over TLS' if s.tls else ''}"))
    subs = state.get("sub")
    pub = state.get("pub")
    refused = [f for f, r in zip(filters, subs or [], strict=False) if getattr(r, "is_failure", False)]
    problems = []
    if subs is None:
        problems.append("no SUBACK")
    elif refused:
        problems.append(
            "subscription refused (0x80/0x87) for " + ", ".join(refused[:6]) + (" ..." if len(refused) > 6 else "")
        )
    if pub is None:
        problems.append(f"no PUBACK for {s.status_topic}")
    elif getattr(pub, "is_failure", False):
        problems.append(f"publishing to {s.status_topic} refused ({pub})")
    if problems:
        out.append(
            Check(
                "broker_permissions",
                FAIL,
                "; ".join(problems),
                f"grant {who} in the broker's acl_file: 'topic read' for each ingest filter "
                f"({', '.join(filters[:3])}{' ...' if len(filters) > 3 else ''}) and "
                f"'topic readwrite {s.status_topic}/#' plus 'topic write {s.status_topic}'; then "
                "systemctl reload mosquitto",
            )
        )
    else:
        out.append(
            Check("broker_permissions", OK, f"subscribed {len(filters)} filter(s) and published to {s.status_topic}")
        )
    return out


# --- broker queue settings ---------------------------------------------------------------------


def parse_mosquitto_conf(path: Path, _depth: int = 0) -> dict[str, str]:
    """Settings of a Mosquitto config file, following include_dir (last value wins)."""
    out: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        value = value.strip()
        if key == "include_dir" and _depth < 3:
            d = Path(value)
            if d.is_dir():
                for f in sorted(d.glob("*.conf")):
                    with contextlib.suppress(OSError):
                        out.update(parse_mosquitto_conf(f, _depth + 1))
            continue
        out[key] = value
    return out


def check_broker_queue(cfg: SiteConfig, conf_path: str | None) -> Check:
    from gateway.ingest.mqtt import _is_loopback
    from gateway.install.mosquitto import RECOMMENDED_CONF

    path = Path(conf_path or "/etc/mosquitto/mosquitto.conf")
    if conf_path is None and not _is_loopback(cfg.mqtt.host):
        return Check(
            "broker_queue",
            WARN,
            f"the broker {cfg.mqtt.host} is remote: its queue settings cannot be read from here",
            f"compare its mosquitto.conf with {RECOMMENDED_CONF} (or run doctor with --broker-conf FILE)",
        )
    try:
        found = parse_mosquitto_conf(path)
    except OSError as exc:
        return Check(
            "broker_queue",
            WARN,
            f"cannot read {path} ({exc.strerror or exc})",
            f"run doctor as a user that can read it, or compare it with {RECOMMENDED_CONF} by hand",
        )
    rec = parse_mosquitto_conf(RECOMMENDED_CONF)
    problems: list[str] = []
    fixes: list[str] = []

    def num(d: dict[str, str], k: str, default: int) -> int:
        try:
            return int(d.get(k, default))
        except ValueError:
            return default

    mq, rq = num(found, "max_queued_messages", 1000), num(rec, "max_queued_messages", 1000)
    if 0 < mq < rq:
        problems.append(f"max_queued_messages {mq} (an offline gateway's queue drops the newest past it)")
        fixes.append(f"max_queued_messages {rq}")
    mi, ri = num(found, "max_inflight_messages", 20), num(rec, "max_inflight_messages", 20)
    if 0 < mi < ri:
        problems.append(f"max_inflight_messages {mi} (caps how many messages one commit can cover)")
        fixes.append(f"max_inflight_messages {ri}")
    if found.get("persistence", "false").lower() not in ("true", "1", "yes", "on"):
        problems.append("persistence off (a broker restart forgets every queued message)")
        fixes.append("persistence true")
        fixes.append("persistence_location /var/lib/mosquitto/")
    elif num(found, "autosave_interval", 1800) > num(rec, "autosave_interval", 1):
        problems.append(
            f"autosave_interval {found.get('autosave_interval', '1800 (default)')}: a killed broker loses that much"
        )
        fixes.append(f"autosave_interval {rec.get('autosave_interval', '1')}")
    if problems:
        return Check(
            "broker_queue",
            WARN,
            f"{path}: " + "; ".join(problems),
            f"in {path} set: " + ", ".join(fixes) + f" (explained in {RECOMMENDED_CONF}); then restart mosquitto",
        )
    return Check("broker_queue", OK, f"{path}: queue, in-flight and persistence settings as recommended")


# --- clock -------------------------------------------------------------------------------------


def ntp_offset(host: str, timeout: float) -> float:
    """Offset (server - local) in seconds from one SNTP request to ``host``:123."""
    packet = b"\x1b" + 47 * b"\0"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        t1 = time.time()
        s.sendto(packet, (host, 123))
        data, _ = s.recvfrom(512)
        t4 = time.time()
    if len(data) < 48:
        raise OSError("short NTP reply")
    secs, frac = struct.unpack("!II", data[40:48])
    server: float = secs - 2_208_988_800 + frac / 2**32
    return server - (t1 + t4) / 2


def http_date_offset(url: str, timeout: float) -> tuple[float, int]:
    req = urllib.request.Request(url, method="GET")
    t1 = time.time()
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
        status, date = resp.status, resp.headers.get("Date")
        resp.close()
    except urllib.error.HTTPError as exc:
        status, date = exc.code, exc.headers.get("Date")
    t2 = time.time()
    if not date:
        raise OSError("no Date header")
    server = email.utils.parsedate_to_datetime(date).timestamp()
    # HTTP dates have 1 s resolution: compare with the midpoint, ignore sub-second differences.
    return server - (t1 + t2) / 2, status


def check_clock(cfg: SiteConfig, opts: Options) -> Check:
    fix = (
        "enable time sync: timedatectl set-ntp true (systemd-timesyncd, NTP= in /etc/systemd/timesyncd.conf "
        "pointing at the district's NTP server); a Pi has no RTC and starts in the past after a power cut"
    )
    source, offset = None, None
    errors = []
    if opts.ntp:
        try:
            offset, source = ntp_offset(opts.ntp, opts.timeout_s), f"NTP {opts.ntp}"
        except OSError as exc:
            errors.append(f"NTP {opts.ntp}: {exc}")
    if offset is None and cfg.sync.url and cfg.sync.enabled:
        base = cfg.sync.url
        for path in ("/health", "/ping"):
            try:
                offset, _ = http_date_offset(base + path, opts.timeout_s)
                source = f"the Date header of {base}"
                break
            except (OSError, ValueError) as exc:
                errors.append(f"{base}{path}: {exc}")
    if offset is None:
        return Check(
            "clock",
            WARN,
            "no time reference answered" + (f" ({'; '.join(errors)})" if errors else " (no --ntp server, sync off)"),
            "run doctor with --ntp <your NTP server>, or " + fix,
        )
    skew = abs(offset)
    word = "ahead of" if offset < 0 else "behind"
    text = f"this clock is {skew:.1f} s {word} {source}"
    if skew >= CLOCK_FAIL_S:
        return Check("clock", FAIL, text + ": incident times and timers are off", fix)
    if skew >= CLOCK_WARN_S:
        return Check("clock", WARN, text, fix)
    return Check("clock", OK, f"within {max(skew, 0.0):.1f} s of {source}")


# --- disk and store ----------------------------------------------------------------------------


def _store_used(path: Path) -> tuple[int, int, int]:
    """(used bytes, schema version, page size) of a store, read-only."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        return int((pages - free) * size), int(version), int(size)
    finally:
        conn.close()


def check_disk(cfg: SiteConfig, store_path: Path) -> Check:
    d = store_path.parent
    while not d.exists() and d != d.parent:
        d = d.parent
    usage = shutil.disk_usage(d)
    quota = cfg.store.quota_mb * 1024 * 1024
    have = store_path.stat().st_size if store_path.exists() else 0
    need = max(0, quota - have)
    mb = 1024 * 1024
    if usage.free < need:
        return Check(
            "disk",
            FAIL,
            f"{usage.free // mb} MiB free on {d}, but the store may still grow by {need // mb} MiB "
            f"(store.quota_mb {cfg.store.quota_mb}): the disk fills before the quota protects it",
            f"free space on {d}, move store.path to a larger disk, or lower store.quota_mb below "
            f"{(have + usage.free) // mb - 64} MiB",
        )
    if usage.free < need + 256 * mb:
        return Check(
            "disk",
            WARN,
            f"{usage.free // mb} MiB free on {d}: little room beyond the store's quota",
            "free some space (old logs: journalctl --vacuum-size=100M)",
        )
    return Check("disk", OK, f"{usage.free // mb} MiB free on {d} (store quota {cfg.store.quota_mb} MiB)")


def check_store(cfg: SiteConfig, store_path: Path) -> Check:
    if not store_path.exists():
        return Check(
            "store",
            WARN,
            f"{store_path} does not exist yet",
            "it is created at the first start; check that the service user can write its folder",
        )
    try:
        conn = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=5)
        try:
            quick = [str(r[0]) for r in conn.execute("PRAGMA quick_check")]
        finally:
            conn.close()
        used, version, _ = _store_used(store_path)
    except sqlite3.Error as exc:
        return Check(
            "store",
            FAIL,
            f"{store_path}: cannot read ({exc})",
            "check permissions (the service user owns it) or restore a backup: edge-gateway restore",
        )
    if quick != ["ok"]:
        return Check(
            "store",
            FAIL,
            f"{store_path}: corrupt ({'; '.join(quick[:3])})",
            "stop the gateway and restore the last backup: edge-gateway restore --from FILE",
        )
    if version > st.SCHEMA_VERSION:
        return Check(
            "store",
            FAIL,
            f"schema version {version} is newer than this release ({st.SCHEMA_VERSION})",
            "run the release that made this store, or restore a backup made by this release",
        )
    quota = cfg.store.quota_mb * 1024 * 1024
    reserve = cfg.store.reserve_mb * 1024 * 1024
    mb = 1024 * 1024
    pct = 100 * used / quota if quota else 0
    text = f"quick_check ok, schema v{version}, {used / mb:.1f} MiB used of {cfg.store.quota_mb} MiB ({pct:.0f}%)"
    if used >= quota - reserve:
        return Check(
            "store",
            FAIL,
            text + ": FULL (only the life-safety reserve is left; telemetry is refused and stays at the broker)",
            "raise store.quota_mb (disk permitting), lower store.readings_retention_days, and check the sync "
            "backlog (edge-gateway sync status): an unreachable central store keeps the outbox growing",
        )
    if version < st.SCHEMA_VERSION:
        return Check(
            "store",
            WARN,
            text + f": will be migrated to v{st.SCHEMA_VERSION} at the next start",
            "take a backup first: edge-gateway backup --out FILE",
        )
    if pct >= cfg.store.prune_at_pct:
        return Check(
            "store",
            WARN,
            text + f": above prune_at_pct {cfg.store.prune_at_pct}%",
            "old readings are being pruned; raise store.quota_mb if history matters",
        )
    return Check("store", OK, text)


# --- central time-series store -----------------------------------------------------------------


def _http(
    url: str, timeout: float, *, method: str = "GET", headers: dict[str, str] | None = None, data: bytes | None = None
) -> int:
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def check_tsdb(cfg: SiteConfig, timeout: float) -> Check:
    s = cfg.sync
    if not s.enabled:
        return Check("tsdb", OK, "sync is off (sync.enabled: false): nothing to check")
    base = s.url
    reach = None
    for path in ("/health", "/ping"):
        try:
            code = _http(base + path, timeout)
        except (OSError, ValueError) as exc:
            reach = exc
            continue
        if code < 500:
            reach = None
            break
        reach = OSError(f"HTTP {code}")
    if reach is not None:
        return Check(
            "tsdb",
            FAIL,
            f"{base} does not answer ({reach})",
            "check sync.url and the network path; data waits in the outbox meanwhile (nothing is lost "
            "until sync.quota_mb is reached)",
        )
    if s.target == "v2":
        token = s.token.get_secret_value() if s.token is not None else ""
        import urllib.parse

        q = urllib.parse.urlencode({"org": s.org, "bucket": s.bucket, "precision": "ms"})
        code = _http(
            f"{base}/api/v2/write?{q}",
            timeout,
            method="POST",
            headers={"Authorization": f"Token {token}", "Content-Type": "text/plain"},
            data=b"",
        )
        what = "token"
        fix = (
            "create a write token for the bucket (influx auth create --write-bucket <id>) and put it in the "
            "environment variable named by sync.token (e.g. INFLUX_TOKEN in /etc/edge-gateway/env)"
        )
    else:
        import urllib.parse

        auth = {}
        if s.username:
            import base64

            pw = s.password.get_secret_value() if s.password is not None else ""
            auth["Authorization"] = "Basic " + base64.b64encode(f"{s.username}:{pw}".encode()).decode()
        code = _http(f"{base}/query?" + urllib.parse.urlencode({"q": "SHOW DATABASES"}), timeout, headers=auth)
        what = "user/password"
        fix = "check sync.username and the password's environment variable against the InfluxDB 1.x users"
    if code in (401, 403):
        return Check("tsdb", FAIL, f"{base} rejected the {what} (HTTP {code}); data stays in the outbox", fix)
    if code == 404 and s.target == "v2":
        return Check(
            "tsdb",
            FAIL,
            f"{base}: bucket {s.bucket!r} or org {s.org!r} not found (HTTP 404)",
            "create the bucket, or correct sync.org / sync.bucket",
        )
    if code >= 500:
        return Check("tsdb", WARN, f"{base} answered HTTP {code} to a test write", "check the server's log")
    return Check("tsdb", OK, f"{base} reachable, {what} accepted (HTTP {code})")


# --- ports -------------------------------------------------------------------------------------


def check_api_port(cfg: SiteConfig, timeout: float) -> Check:
    host, port = cfg.api.host, cfg.api.port
    with socket.socket() as s:
        try:
            s.bind((host, port))
            return Check("api_port", OK, f"{host}:{port} is free for the API and console")
        except OSError as exc:
            err = exc
    code = None
    with contextlib.suppress(OSError, ValueError):
        code = _http(f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/healthz", timeout)
    if code == 200:
        return Check(
            "api_port",
            WARN,
            f"{host}:{port} is in use by a running gateway (its /healthz answers)",
            "fine if this is the gateway you are checking; otherwise set api.port",
        )
    return Check(
        "api_port",
        FAIL,
        f"cannot listen on {host}:{port} ({err.strerror or err})",
        f"find the other program (ss -ltnp 'sport = :{port}') and stop it, or set api.port",
    )


# --- all ---------------------------------------------------------------------------------------


def run_checks(config_path: str, opts: Options | None = None) -> list[Check]:
    o = opts or Options()
    c, cfg = check_config(config_path)
    out = [c]
    if cfg is None:
        return out

    def want(name: str) -> bool:
        return name not in o.skip

    store_path = Path(o.store or cfg.store.path)
    if want("broker"):
        tcp = check_broker_tcp(cfg, o.timeout_s)
        out.append(tcp)
        if tcp.status == OK:
            out.extend(check_broker_session(cfg, o.timeout_s))
    if want("broker_queue"):
        out.append(check_broker_queue(cfg, o.broker_conf))
    if want("clock"):
        out.append(check_clock(cfg, o))
    if want("disk"):
        out.append(check_disk(cfg, store_path))
    if want("store"):
        out.append(check_store(cfg, store_path))
    if want("tsdb"):
        out.append(check_tsdb(cfg, o.timeout_s))
    if want("api_port"):
        out.append(check_api_port(cfg, o.timeout_s))
    return out


def report(checks: list[Check], *, as_json: bool = False) -> str:
    if as_json:
        return json.dumps([dataclasses.asdict(c) for c in checks], ensure_ascii=False, indent=2)
    fails = sum(c.status == FAIL for c in checks)
    warns = sum(c.status == WARN for c in checks)
    tail = (
        f"\n{fails} failed, {warns} warning(s): fix the [FAIL] lines first."
        if fails
        else f"\nall checks passed{f' ({warns} warning(s))' if warns else ''}."
    )
    return "\n".join(c.format() for c in checks) + tail


def exit_code(checks: list[Check]) -> int:
    return 1 if any(c.status == FAIL for c in checks) else 0
