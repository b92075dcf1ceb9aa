"""Reload the site config into a running gateway without losing a message.

``Gateway.reload_from(path) -> list[str]`` (SIGHUP in ``edge-gateway run``, and the installer
API): load and validate the file; an invalid file is refused, every issue is logged and returned,
and the old config stays in force. A valid one is applied by :func:`apply_config`:

1. the new config revision gets its id (``config_revisions``; one short transaction);
2. off the writer thread: the new routing tables are built, and every stage of the chain is asked
   for its reconfigured self (``Stage.reconfigured``), which carries over the state it owns;
3. life-safety filters that are new are subscribed on the safety session first (a message in
   that short window may be stored by both sessions: stored twice, never lost);
4. ON the writer thread (``Pipeline.call``), between two batches: routing, config revision and
   stages are swapped together, and registry rows for new devices are created. No batch sees
   half a config; messages queued meanwhile are processed after the swap, with the new config;
   nothing is dropped and nothing is acknowledged before it is committed;
5. telemetry subscriptions are updated on the existing sessions (subscribe new filters,
   unsubscribe removed ones): no reconnect, so the persistent sessions keep their queues.

Not applied by a reload (logged as "restart to apply"): the MQTT connection settings (broker,
credentials, TLS), the store path and quota, the API listener, the sync target.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.core.contract import BatchResult
from gateway.core.heap import freeze_long_lived
from gateway.errors import ConfigProblem
from gateway.ingest.mqtt import LIFE_SAFETY, TELEMETRY, MqttSession
from gateway.ingest.routing import Routing, build_routing

if TYPE_CHECKING:
    import sqlite3

    from edge_config import SiteConfig
    from gateway.app import Gateway

log = logging.getLogger("gateway.reload")

_RESTART_SECTIONS = ("mqtt", "store", "api", "sync", "cameras")


class ReloadRefused(ConfigProblem):
    code = "reload_refused"

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def load_checked(path: str | Path) -> SiteConfig:
    """load_config, turning every problem into one line ``PATH:LINE: key: message``."""
    from edge_config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        raise ReloadRefused([i.format() for i in exc.issues]) from None


def reload_from(gw: Gateway, path: str | Path | None = None) -> list[str]:
    """Reload from ``path`` (default: the file the running config came from). [] = applied."""
    src = path or getattr(gw, "config_path", None) or gw.cfg.source_path
    if src is None:
        return ["the running config has no source file; give the path"]
    try:
        cfg = load_checked(src)
    except ReloadRefused as exc:
        for e in exc.errors:
            log.error("reload refused: %s", e)
        log.error(
            "reload refused: %d problem(s) in %s; the running config (%s) stays", len(exc.errors), src, gw.cfg.revision
        )
        return exc.errors
    try:
        apply_config(gw, cfg)
    except Exception as exc:  # building failed: nothing was swapped
        log.exception("reload failed; the running config stays")
        return [f"{src}: could not apply: {type(exc).__name__}: {exc}"]
    return []


def _restart_notes(old: SiteConfig, new: SiteConfig) -> list[str]:
    notes = []
    for name in _RESTART_SECTIONS:
        a, b = getattr(old, name, None), getattr(new, name, None)
        if a is not None and b is not None and a.model_dump() != b.model_dump():
            notes.append(name)
    return notes


def apply_config(gw: Gateway, cfg: SiteConfig, timeout: float = 30.0) -> int:
    """Swap a validated config into the running gateway. Returns the new config revision id."""
    pipeline = gw.pipeline
    old_cfg = gw.cfg
    rev = int(pipeline.call(lambda c, r, n: gw.store.config_rev_id(cfg.revision, cfg.version)).result(timeout))
    routing: Routing = build_routing(cfg)
    # Zigbee2MQTT names learned from the bridge stay known (the config's own names win).
    for k, v in pipeline.routing.aliases.items():
        routing.aliases.setdefault(k, v)
    # Every stage builds its successor for the new config and carries over what it owns.
    stages = [stage.reconfigured(cfg, rev) for stage in pipeline.stages]

    sessions: dict[int, MqttSession] = gw.sessions
    safety = sessions.get(LIFE_SAFETY)
    new_safety = list(routing.safety_filters)
    if safety is not None:
        _subscribe(safety, [f for f in new_safety if f not in safety.filters])
    elif new_safety and sessions:
        safety = MqttSession(LIFE_SAFETY, gw.settings, new_safety, pipeline.submit)
        sessions[LIFE_SAFETY] = safety
        safety.start()

    def swap(conn: sqlite3.Connection, result: BatchResult, now: int) -> None:
        pipeline.routing = routing
        pipeline.config_rev = rev
        pipeline.stages = stages
        pipeline.dead_letter_limit = cfg.ingest.dead_letter_limit
        pipeline.commit_delay_s = cfg.store.group_commit_ms / 1000
        pipeline.retention_ms = cfg.store.readings_retention_days * 86_400_000
        pipeline.prune_at_pct = cfg.store.prune_at_pct
        conn.executemany(
            "INSERT INTO devices(device_id, since_ms, config_rev) VALUES (?,?,?) ON CONFLICT(device_id) DO NOTHING",
            [(d.id, now, rev) for d in routing.by_id.values()],
        )
        gw.cfg = cfg
        gw.routing = routing
        gw.config_rev = rev

    pipeline.call(swap).result(timeout)
    channels = getattr(gw, "channels", None)
    if channels is not None:  # a fixed robot key or new limits apply without a restart
        channels.take_config(cfg)

    if safety is not None:
        _unsubscribe(safety, [f for f in safety.filters if f not in new_safety])
    tele = sessions.get(TELEMETRY)
    if tele is not None:
        new_tele = list(routing.telemetry_filters)
        _subscribe(tele, [f for f in new_tele if f not in tele.filters])
        _unsubscribe(tele, [f for f in tele.filters if f not in new_tele])
    gw.integrations.apply(cfg)  # Home Assistant: new buildings published, removed ones cleared
    notes = _restart_notes(old_cfg, cfg)
    if notes:
        log.warning("reload: changes to %s take effect at the next restart", ", ".join(notes))
    log.info(
        "config reloaded: revision %s (id %d), %d devices, %d life-safety topics",
        cfg.revision,
        rev,
        len(routing.by_id),
        len(new_safety),
    )
    freeze_long_lived()  # the old config's cycles are collected, the new config is frozen (gateway/core/heap.py)
    return rev


def _subscribe(s: MqttSession, filters: list[str]) -> None:
    if not filters:
        return
    s.filters = [*s.filters, *filters]  # a reconnect resubscribes the whole list
    if s.connected:
        s.client.subscribe([(f, 1) for f in filters])


def _unsubscribe(s: MqttSession, filters: list[str]) -> None:
    if not filters:
        return
    s.filters = [f for f in s.filters if f not in filters]
    if s.connected:
        s.client.unsubscribe(filters)
