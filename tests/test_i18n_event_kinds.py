"""The console's catalog names every incident-event kind and every system actor in both languages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.channels.delivery import ACTOR as CHANNELS_ACTOR
from gateway.core.contract import EVENT_KINDS
from gateway.core.incidents import RULES_ACTOR
from gateway.tickets.lifecycle import SYSTEM_ACTOR

I18N = Path(__file__).resolve().parents[1] / "gateway" / "console" / "i18n"
SYSTEM_ACTORS = (RULES_ACTOR, SYSTEM_ACTOR, "notify", CHANNELS_ACTOR)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_event_kind_and_system_actor_has_a_label(lang: str) -> None:
    catalog = json.loads((I18N / f"{lang}.json").read_text(encoding="utf-8"))
    kinds = catalog.get("kind", {})
    assert sorted(k for k in EVENT_KINDS if not kinds.get(k, "").strip()) == []
    assert sorted(set(kinds) - set(EVENT_KINDS)) == []  # no label for a kind the gateway never writes
    actors = catalog.get("actor", {})
    assert sorted(a for a in SYSTEM_ACTORS if not actors.get(a, "").strip()) == []
