"""Installer tools: demo, simulator and scenarios, doctor, adoption, backup, systemd, a private Mosquitto."""
