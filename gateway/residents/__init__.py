"""The residents' side of the loop (issue 21; docs/tickets.md "Residents").

Residents have no account. They reach the gateway only through signed links
(:mod:`gateway.core.links`): an **evaluation link** after a handled problem (sent by SMS, or a QR
code a staff member prints on a visit) and a **report QR code** per building. Their ratings carry
their source (``resident_link``; staff entering a phone answer: ``proxy_call``; nobody answering:
``no_response``, which is not a rating), and the scorecard weighs them honestly.

Modules: ``asks`` (who is asked to evaluate, the requests), ``stage`` (the chain link that creates
requests when an incident is resolved), ``evaluation`` and ``reports`` (what the pages may see and
do), ``photos`` (re-encoding uploads), ``sender`` (the SMS outbox), ``qr`` (QR codes),
``warnings`` (early warning, 提前预警), ``texts`` (the pages' catalogs, used for SMS too),
``service`` (the threads and the API's entry points).
"""
