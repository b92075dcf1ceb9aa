"""The integrations a gateway runs: started with it, reconfigured by a reload, stopped with it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.core.contract import BatchResult
from gateway.integrations.home_assistant import HomeAssistantPublisher

if TYPE_CHECKING:
    from edge_config import SiteConfig
    from edge_config.integration_settings import HomeAssistantSettings
    from gateway.ingest.mqtt import BrokerConnection

# Settings whose change moves every topic: the old entities are cleared, a new publisher starts.
_TOPIC_KEYS = ("discovery_prefix", "node_id", "state_topic_prefix", "status_topic")


class Integrations:
    def __init__(self, settings: BrokerConnection, store_path: Path, health: Callable[[], Mapping[str, Any]]) -> None:
        self.settings, self.store_path, self.health = settings, store_path, health
        self.home_assistant: HomeAssistantPublisher | None = None

    def apply(self, cfg: SiteConfig) -> None:
        """Start, keep, reconfigure or stop each integration for this config (start-up and reload).

        Home Assistant: the section left out leaves whatever was published alone; ``enabled:
        false`` removes it (a publisher that was running clears its own entities, and a remover
        clears what earlier runs left on the broker).
        """
        ha = cfg.integrations.home_assistant
        cur = self.home_assistant
        if cur is not None and ha is not None and ha.enabled and not cur.remove and _same_topics(cur.ha, ha):
            cur.reconfigure(cfg, ha)
            return
        if cur is not None:
            cur.stop(remove=ha is not None and (not ha.enabled or not _same_topics(cur.ha, ha)))
            self.home_assistant = None
        if ha is not None:
            self.home_assistant = HomeAssistantPublisher(cfg, ha, self.settings, self.store_path, self.health).start()

    def committed(self, result: BatchResult) -> None:
        """Commit listener (pipeline thread): only wakes the publishers whose states may have changed."""
        if result.incident_events and self.home_assistant is not None:
            self.home_assistant.wake()

    def stop(self) -> None:
        if self.home_assistant is not None:
            self.home_assistant.stop()
            self.home_assistant = None


def _same_topics(a: HomeAssistantSettings, b: HomeAssistantSettings) -> bool:
    return all(getattr(a, k) == getattr(b, k) for k in _TOPIC_KEYS)
