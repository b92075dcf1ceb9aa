"""The community ticket loop: dispatch, handling, feedback, evaluation, escalation.

See docs/tickets.md. Modules: ``lifecycle`` (state machine, actions, TicketError), ``dispatch``
(routing and rosters), ``escalation`` (SLA deadlines, ladder, clock guard), ``notify`` (MQTT and
webhook delivery), ``scorecard`` (service evaluation), ``processor`` (the pipeline stage) and
``service`` (``Gateway.tickets``).
"""

from gateway.tickets.lifecycle import TicketError, allowed_actions

__all__ = ["TicketError", "allowed_actions"]
