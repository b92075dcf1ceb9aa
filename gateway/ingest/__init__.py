"""Ingest: the MQTT sessions, routing (topic and address to a device) and the pipeline thread."""
