#!/usr/bin/env bash
# System packages the gateway's tests need (Debian), installed only when missing, and the local
# Mosquitto at 127.0.0.1:1883 started when nothing answers there.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto mosquitto-clients)
command -v python3 >/dev/null 2>&1 || need+=(python3 python3-venv)
# Central time-series stores the sync tests start on loopback (issue 6): VictoriaMetrics, InfluxDB 1.x.
command -v victoria-metrics >/dev/null 2>&1 || need+=(victoria-metrics)
command -v influxd >/dev/null 2>&1 || need+=(influxdb)
# The console's browser test (issue 5): Debian's Chromium, driven by Playwright (no downloaded browsers).
[ -x /usr/bin/chromium ] || need+=(chromium)
# A CJK font, so the console's Chinese text renders in the browser test's screenshots.
[ -e /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ] || need+=(fonts-wqy-zenhei)
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The development and CI machines start Mosquitto before a session; start it when it is not there.
if ! (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
  echo "starting mosquitto on 127.0.0.1:1883"
  if [ -f /etc/mosquitto/mosquitto.conf ]; then
    $SUDO mosquitto -d -c /etc/mosquitto/mosquitto.conf
  else
    $SUDO mosquitto -d -p 1883
  fi
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null && break; sleep 0.1; done
fi
