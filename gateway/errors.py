"""The one root of the product's exceptions, and its categories.

Every exception the gateway defines derives from :class:`GatewayError`, so a caller (the API, the
CLI, a supervisor) can catch the product's own failures in one clause and tell them from bugs. Each
class has a stable machine-readable ``code`` (snake_case; clients and logs may rely on it) and the
``http_status`` the API answers with when one reaches it (a single FastAPI handler in
``gateway/api/__init__.py`` turns any ``GatewayError`` into ``{"detail": ..., "code": ...}``).

This module sits at the very bottom of the import graph: it imports nothing from ``gateway``,
``drivers``, ``edge_config`` or ``cloud_sync``, so all of them may import it.

The tree (class, the module it lives in, its ``code``, its ``http_status``; ``tests/test_errors.py``
checks this drawing against the code, so a new exception class must be added here)::

    * GatewayError            gateway.errors              gateway_error         500
      * InputError            gateway.errors              invalid_input         422
        * DecodeError         drivers.base                decode_error          422
        * FrameError          gateway.vision.worker       frame_error           422
        * AdoptError          gateway.install.adopt       adopt_refused         422
        * PhotoRefused        gateway.residents.photos    photo_refused         422
      * NotFound              gateway.errors              not_found             404
      * Forbidden             gateway.errors              forbidden             403
        * LinkRefused         gateway.core.links          link_invalid          403
      * Conflict              gateway.errors              conflict              409
      * Unavailable           gateway.errors              unavailable           503
        * BrokerUnreachable   gateway.install.mqtt_reach  broker_unreachable    503
        * StoreError          gateway.core.store          store_error           503
          * StoreFull         gateway.core.store          store_full            503
          * StoreWriteFailed  gateway.core.store          store_write_failed    503
      * ConfigProblem         gateway.errors              config_problem        500
        * ConfigError         edge_config.loader          config_invalid        500
        * ConfigPermissionError gateway.privacy           config_permissions    500
        * MqttConfigRefused   gateway.ingest.mqtt         mqtt_config_refused   500
        * ReloadRefused       gateway.reload              reload_refused        500
        * ScenarioUnavailable gateway.install.scenarios   scenario_unavailable  500
      * BackupError           gateway.install.backup      backup_failed         500
      * TicketError           gateway.tickets.lifecycle   ticket_refused        per-code
      * ResidentRefused       gateway.residents.evaluation resident_refused     per-code

``TicketError`` sets ``code`` per instance (``not_found``, ``forbidden``, ``illegal_transition``,
...) and derives its ``http_status`` from it (400, 403, 404 or 409). ``LinkRefused`` sets its own
too (``link_used``, ``link_expired``, ``link_revoked`` ...).
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    """Root of the product's exceptions.

    ``code`` and ``http_status`` are class attributes; a subclass overrides them, and an instance
    may set its own ``code`` (TicketError does). No ``__init__`` here: each subclass keeps its own
    constructor and message.
    """

    code: str = "gateway_error"
    http_status: int = 500

    def response_detail(self) -> Any:
        """What the API puts under ``detail`` in the response body (default: the message)."""
        return str(self)


class InputError(GatewayError):
    """Input the gateway cannot use: a payload, a frame, a request."""

    code = "invalid_input"
    http_status = 422


class NotFound(GatewayError):
    code = "not_found"
    http_status = 404


class Forbidden(GatewayError):
    code = "forbidden"
    http_status = 403


class Conflict(GatewayError):
    """The request contradicts the current state."""

    code = "conflict"
    http_status = 409


class Unavailable(GatewayError):
    """A resource the gateway needs (the store, a loop) cannot serve now."""

    code = "unavailable"
    http_status = 503


class ConfigProblem(GatewayError):
    """The site's configuration (or its file) is unusable or unsafe; the operator must fix it."""

    code = "config_problem"
