"""Integrations with other systems on the site's broker: Home Assistant MQTT discovery.

See docs/integrations.md. :class:`gateway.integrations.service.Integrations` starts, reconfigures and
stops them with the gateway; each runs on its own thread and MQTT client, off the pipeline thread.
"""
