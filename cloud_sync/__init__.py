"""Store-and-forward sync of telemetry and incident events to the central time-series store."""
