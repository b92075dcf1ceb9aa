#!/usr/bin/env bash
# Install the gateway into a virtual environment from the hashed lock (requirements/*.lock, made by
# scripts/lock). The Dockerfile runs this same script, so the image is built by the steps CI runs.
#   scripts/install.sh VENV [core|vision|demo|dev]
#     core    the service alone (no OpenCV/numpy): a site without cameras
#     vision  core + camera analytics (OpenCV headless, numpy)
#     demo    core + the embedded broker `edge-gateway demo` falls back to
#     dev     everything, with the test and lint toolchain
# Dependencies come only from the lock, with their hashes checked (--require-hashes); the project
# itself is then installed without dependencies and without a separate build environment, so
# nothing unpinned is fetched. demo and dev install it editable (run from the checkout).
set -euo pipefail
venv=${1:-.venv}
flavour=${2:-core}
here=$(cd "$(dirname "$0")/.." && pwd)
case "$flavour" in
  core | vision | demo | dev) ;;
  *) echo "install.sh: unknown flavour '$flavour' (core, vision, demo or dev)" >&2; exit 2 ;;
esac
python3 -m venv "$venv"
pip=("$venv/bin/pip" --quiet --disable-pip-version-check)
"${pip[@]}" install --require-hashes --no-deps -r "$here/requirements/$flavour.lock"
if [ "$flavour" = "dev" ] || [ "$flavour" = "demo" ]; then
  "${pip[@]}" install --no-deps --no-build-isolation -e "$here"
else
  "${pip[@]}" install --no-deps --no-build-isolation "$here"
fi
