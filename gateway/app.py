"""Wiring: build the store, routing, pipeline and MQTT sessions from a site config and run them.

Threads: one paho network thread per MQTT session, one pipeline thread (owns the SQLite writer).
The asyncio loop runs the HTTP API and receives committed changes via call_soon_threadsafe.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.channels.delivery import ChannelDispatcher
from gateway.channels.stage import ChannelStage
from gateway.core import store as st
from gateway.core.contract import BatchResult, Stage
from gateway.ingest.broker_drops import BrokerDropWatch
from gateway.ingest.mqtt import LIFE_SAFETY, TELEMETRY, BrokerConnection, Inbound, MqttSession, connection_from_config
from gateway.ingest.pipeline import Pipeline
from gateway.ingest.routing import Routing, build_routing
from gateway.integrations.service import Integrations
from gateway.privacy import RetentionProcessor
from gateway.residents.service import ResidentService
from gateway.residents.stage import ResidentStage
from gateway.rules import RuleEngine
from gateway.tickets.processor import TicketProcessor
from gateway.tickets.service import TicketService

if TYPE_CHECKING:
    from cloud_sync.outbox import OutboxProcessor
    from cloud_sync.service import SyncService
    from edge_config import SiteConfig
    from gateway.district import ScoreSnapshots
    from gateway.vision.manager import CameraManager

log = logging.getLogger("gateway.app")

SWITCH_INTERVAL_S = 0.001
SYNC_START_WAIT_S = 30.0
# The heap freeze after start-up waits this long once the API accepts connections: it is a full
# collection (~60 ms of CPU with every thread stopped, ~0.25 s on a Pi-class core) that answered
# nothing, and run at once it held up the first requests, a supervisor's readiness probe among them.
FREEZE_AFTER_S = 2.0


class Gateway:
    """One running gateway: everything between the broker and the store."""

    # The console's device adoption, (site file, store, fields) -> stanza written; set by whoever
    # starts the gateway with its API (the installer tools sit above this layer: gateway/api/routes_adopt.py).
    site_adopter: Callable[[Path, Path, dict[str, Any]], str] | None = None

    def __init__(
        self,
        cfg: SiteConfig,
        *,
        store_path: str | Path | None = None,
        stages: list[Stage] | None = None,
        settings: BrokerConnection | None = None,
        quota: st.Quota | None = None,
    ) -> None:
        self.cfg = cfg
        self.store_path = Path(store_path or cfg.store.path)
        self.store = st.Store(
            self.store_path,
            quota or st.Quota(cfg.store.quota_mb * 1024 * 1024, cfg.store.reserve_mb * 1024 * 1024),
        )
        with st.transaction(self.store.conn):
            self.config_rev = self.store.config_rev_id(cfg.revision, cfg.version)
        self.routing: Routing = build_routing(cfg)
        self.settings = settings or connection_from_config(cfg)
        self._listeners: list[Callable[[BatchResult], None]] = []
        self.cameras: CameraManager | None = None
        tickets = TicketProcessor(cfg, config_rev=self.config_rev)
        outbox: OutboxProcessor | None = None
        if cfg.sync.enabled:  # imported only when used: a gateway without a central store never loads it
            from cloud_sync.outbox import OutboxProcessor

            outbox = OutboxProcessor(cfg, buildings={d.id: d.building for d in self.routing.by_id.values()})
        # THE CHAIN: every transaction runs these stages in this order, and the order is the contract.
        #   rules      turn readings, status changes and timers into incident events;
        #   tickets    dispatch what the rules created, run SLAs, and append their own events
        #              ('dispatched', 'escalated' ...), with the MQTT/webhook deliveries;
        #   channels   write staff messages for every event so far, the tickets' ones included;
        #   residents  ask the resident to evaluate what was just resolved (after the channels: staff
        #              are not messaged about it; before the outbox, which carries it centrally);
        #   retention  delete personal data past its period (timer only);
        #   extra      stages a test or a benchmark adds;
        #   outbox     last, so the sync to the central store carries every event of the transaction.
        chain: list[Stage] = [
            RuleEngine(cfg, config_rev=self.config_rev),
            tickets,
            ChannelStage(cfg),
            ResidentStage(cfg, config_rev=self.config_rev),
            RetentionProcessor(cfg, snapshots=lambda: self.cameras.snapshots if self.cameras is not None else None),
            *(stages or []),
            *([outbox] if outbox is not None else []),
        ]
        self.pipeline = Pipeline(
            self.store,
            self.routing,
            config_rev=self.config_rev,
            dead_letter_limit=cfg.ingest.dead_letter_limit,
            acker=self._ack,
            stages=chain,
            on_commit=self._committed,
            commit_delay_s=cfg.store.group_commit_ms / 1000,
            retention_ms=cfg.store.readings_retention_days * 86_400_000,
            prune_at_pct=cfg.store.prune_at_pct,
        )
        # The threads around the chain: senders that empty the outboxes the stages write.
        self.tickets = TicketService(self, tickets)
        self.channels = ChannelDispatcher(
            self.store_path, cfg, call=self.pipeline.call, incidents=tickets.ctx.incidents
        )
        self.add_listener(self._wake_channels)
        self.residents = ResidentService(self)
        self.sync: SyncService | None = None
        self.district: ScoreSnapshots | None = None
        if outbox is not None:
            from cloud_sync.service import SyncService

            self.sync = SyncService(self, outbox)
            from gateway.district import ScoreSnapshots

            # quarter-to-date scores for the district's dashboards (docs/central.md)
            self.district = ScoreSnapshots(self.store_path, cfg, outbox, call=self.pipeline.call)
        # Camera analytics: worker processes and frame sources; readings come back via the broker.
        if cfg.cameras.cameras:
            from gateway.vision import require_opencv

            require_opencv(len(cfg.cameras.cameras))
            from gateway.vision.manager import CameraManager, pipeline_dead_letter

            self.cameras = CameraManager(cfg, mqtt=self.settings, dead_letter=pipeline_dead_letter(self.pipeline))
        self.sessions: dict[int, MqttSession] = {}
        # Integrations on the site's broker (Home Assistant discovery): own threads and clients.
        self.integrations = Integrations(self.settings, self.store_path, self.health)
        self.add_listener(self.integrations.committed)
        self._sync_lock = threading.Lock()  # a deferred sync start never races stop()
        self._stopping = False
        # The broker's own drop counter ($SYS): what it threw away becomes an incident.
        self.drops = BrokerDropWatch(self.pipeline, cfg.gateway.id, f"{self.settings.host}:{self.settings.port}")

    # --- MQTT ------------------------------------------------------------------------------------
    def _ack(self, session: int, items: list[Inbound]) -> None:
        s = self.sessions.get(session)
        if s is not None:
            s.ack_many(items)

    # --- listeners (asyncio side) ----------------------------------------------------------------
    def add_listener(self, fn: Callable[[BatchResult], None]) -> None:
        self._listeners.append(fn)

    def _committed(self, result: BatchResult) -> None:
        for fn in self._listeners:
            try:
                fn(result)
            except Exception:  # a listener must never break ingest
                log.exception("listener failed")

    def _wake_channels(self, result: BatchResult) -> None:
        if result.incident_events:
            self.channels.wake()  # rows just committed: send without waiting for the poll

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self, *, sync_after: threading.Event | None = None) -> None:
        """Start the threads. ``sync_after``: start the central-store sender only once it is set
        (``gateway run`` sets it once start-up is over, see :func:`serve`; at most SYNC_START_WAIT_S
        later): its first write imports its HTTP client, CPU that on a Pi-class core would delay
        the sessions and the API (bench/pi_budget.py). The outbox it empties is on disk,
        so starting it later loses nothing."""
        self.settings.check_transport()
        # Three busy threads share the GIL (two MQTT network threads and the writer). The default
        # 5 ms switch interval lets an SOS wait several such slices behind telemetry work; 1 ms
        # keeps the hand-over short at a small cost in throughput (see bench/alarm_latency.py).
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.pipeline.start()
        self.tickets.start()
        self.residents.start()
        if self.cfg.tickets.enabled and self.cfg.channels.enabled:
            self.channels.start()
        if self.sync is not None:
            if sync_after is None:
                self.sync.start()
            else:
                threading.Thread(target=self._start_sync, args=(sync_after,), name="sync-start", daemon=True).start()
        if self.district is not None:
            self.district.start()
        safety_filters = self.routing.safety_filters
        if safety_filters:
            self.sessions[LIFE_SAFETY] = MqttSession(LIFE_SAFETY, self.settings, safety_filters, self.pipeline.submit)
        self.sessions[TELEMETRY] = MqttSession(
            TELEMETRY,
            self.settings,
            self.routing.telemetry_filters,
            self.pipeline.submit,
            sys_sink=self.drops.on_sys,
            owns_status=True,
        )
        for s in self.sessions.values():
            s.start()
        if self.cameras is not None:
            self.cameras.start()
        self.integrations.apply(self.cfg)
        log.info(
            "gateway %s started: %d devices, %d life-safety topics, store %s",
            self.cfg.gateway.id,
            len(self.routing.by_id),
            len(safety_filters),
            self.store_path,
        )

    def _start_sync(self, after: threading.Event) -> None:
        after.wait(SYNC_START_WAIT_S)
        with self._sync_lock:
            if self.sync is not None and not self._stopping:
                self.sync.start()

    def stop(self) -> None:
        with self._sync_lock:
            self._stopping = True
        self.integrations.stop()
        if self.cameras is not None:
            self.cameras.stop()
        for s in self.sessions.values():
            s.stop()
        self.tickets.stop()
        self.residents.stop()
        self.channels.stop()
        self.pipeline.stop()
        if self.sync is not None:
            self.sync.stop()
        if self.district is not None:
            self.district.stop()
        self.store.close()

    @property
    def broker_connected(self) -> bool:
        return bool(self.sessions) and all(s.connected for s in self.sessions.values())

    def health(self) -> dict[str, Any]:
        return {
            "broker_connected": self.broker_connected,
            "sessions": {
                s.name: {
                    "connected": s.connected,
                    "subscribed": s.subscribed,
                    "connects": s.connects,
                    "last_error": s.last_error,
                }
                for s in self.sessions.values()
            },
            "store_writable": not self.pipeline.store_full and self.pipeline.last_commit_error is None,
            "store_error": self.pipeline.last_commit_error,
            "committed_total": self.pipeline.committed_total,
        }

    # --- config reload (gateway/reload.py) -------------------------------------------------------
    def reload(self, new_cfg: SiteConfig) -> None:
        """Swap a validated config in (routing, processors, subscriptions) without losing messages."""
        from gateway.reload import apply_config

        apply_config(self, new_cfg)

    def reload_from(self, path: str | Path | None = None) -> list[str]:
        """Reload the site file (SIGHUP, installer API): [] = applied, else every validation error."""
        from gateway.reload import reload_from

        return reload_from(self, path)


def _server_class(uvicorn: Any) -> Any:
    """uvicorn's Server with a one-second tick instead of ten a second: the tick only refreshes the
    Date header (once a second anyway) and looks at ``should_exit``; the gateway's own stop sets
    ``exit_soon`` as well, so it is not delayed. Ten wake-ups a second were a tenth of an idle
    gateway's CPU (README "Pi budget")."""

    class Server(uvicorn.Server):
        def __init__(self, config: Any) -> None:
            super().__init__(config)
            self.exit_soon = asyncio.Event()
            self._loop = asyncio.get_running_loop()

        def handle_exit(self, sig: int, frame: Any) -> None:  # a signal while uvicorn holds them
            super().handle_exit(sig, frame)
            self._loop.call_soon_threadsafe(self.exit_soon.set)

        async def main_loop(self) -> None:
            while not await self.on_tick(0):  # counter 0: the Date header on every tick
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.exit_soon.wait(), 1.0)

    return Server


@contextlib.contextmanager
def _deferred_model_builds() -> Iterator[None]:
    """Pydantic models declared inside build their validators on first use (``defer_build``).

    For FastAPI's own models: ~40 classes describing the OpenAPI document (fastapi.openapi.models)
    and a few more, ~40 ms of CPU at import (0.16 s on a Pi-class core) that nothing needs until
    /api/v1/openapi.json is first requested. Set on pydantic's BaseModel for the import only;
    a class inherits it from its bases when it is declared."""
    import pydantic

    saved = pydantic.BaseModel.model_config
    pydantic.BaseModel.model_config = pydantic.ConfigDict(**saved, defer_build=True)
    try:
        yield
    finally:
        pydantic.BaseModel.model_config = saved


async def serve(gw: Gateway, host: str, port: int, stop: asyncio.Event, started: threading.Event | None = None) -> None:
    """Run the HTTP API until ``stop`` is set; ``started`` is set once start-up is over: the API
    has accepted connections for FREEZE_AFTER_S and the heap is frozen."""
    import uvicorn

    with _deferred_model_builds():
        import fastapi  # noqa: F401  (its models, see above; the gateway's own are built as before)
    from gateway.api import create_app
    from gateway.api.device_views import static_views
    from gateway.core.heap import freeze_long_lived

    app = create_app(gw)
    tls = gw.cfg.api.tls  # HTTPS when configured; open streams get 5 s to finish on stop
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        # uvicorn's loggers go through ours (text or JSON, and --log-file) instead of its own handlers
        log_config=None,
        timeout_graceful_shutdown=5,
        # No WebSocket routes: without this uvicorn imports the websockets package when it is
        # installed (dev and demo installs), ~6 MB of RSS for nothing (README "Pi budget").
        ws="none",
        ssl_certfile=str(tls.cert_file) if tls is not None else None,
        ssl_keyfile=str(tls.key_file) if tls is not None else None,
    )
    server = _server_class(uvicorn)(config)
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    # The collector back on at once (`gateway run` kept it off through start-up, gateway/cli/service.py):
    # a drain that starts with the gateway must not pile up its garbage. What start-up allocated is
    # set aside first (gc.freeze: no pass over it) until the full pass FREEZE_AFTER_S later.
    gc.freeze()
    gc.enable()
    try:
        await asyncio.wait_for(stop.wait(), FREEZE_AFTER_S)
    except TimeoutError:
        # Start-up is done: the config, routes and schemas live until a reload; keep them out of
        # the cycle collector's full passes, which stop every thread (gateway/core/heap.py).
        static_views(gw.cfg)  # the per-device config views (else built by the first request), frozen too
        freeze_long_lived()
    if started is not None:
        started.set()
    await stop.wait()
    await app.state.close_streams()  # end the live (SSE) streams so the server stops at once
    server.should_exit = True
    server.exit_soon.set()
    await task
