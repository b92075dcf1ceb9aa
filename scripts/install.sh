#!/usr/bin/env bash
# Install the gateway into a virtual environment. The Dockerfile runs this same script, so the
# image is built by the steps CI exercises.
#   scripts/install.sh VENV [dev]
set -euo pipefail
venv=${1:-.venv}
extra=${2:-}
here=$(cd "$(dirname "$0")/.." && pwd)
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
if [ "$extra" = "dev" ]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check -e "$here[dev]"
else
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$here"
fi
