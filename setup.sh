#!/usr/bin/env bash
# Set everything up in ./.venv, then run one thing:
#   ./setup.sh demo    the default experiment (python -m iwx.run --gin gin/point_nav_iwpl.gin)
#   ./setup.sh test    the test suite (what .ci/run calls)
#   ./setup.sh bench   python -m iwx.bench
#   ./setup.sh         set up only
# Extra arguments go to the command (e.g. ./setup.sh test -k math).
#
# Torch: on a machine without an NVIDIA GPU, torch==2.13.0 is installed first
# and on its own, so nothing later can pull a multi-GB CUDA build. Where no
# CPU wheel is reachable through pip's configured indexes, point
# IWX_TORCH_INDEX at a CPU wheel index (PyTorch publishes one).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
VENV=${IWX_VENV:-.venv}

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
stamp="$VENV/.iwx-installed"
want=$(cat pyproject.toml setup.py setup.sh | sha256sum | cut -c1-32)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    has_gpu=0
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then has_gpu=1; fi
    echo "[setup] installing torch==2.13.0 ($([ $has_gpu = 1 ] && echo GPU build || echo CPU build)) into $VENV" >&2
    if [ $has_gpu = 1 ]; then
        "${PIP[@]}" torch==2.13.0
    else
        "${PIP[@]}" torch==2.13.0 ${IWX_TORCH_INDEX:+--index-url "$IWX_TORCH_INDEX"}
    fi
    echo "[setup] installing iwx and its dependencies" >&2
    "${PIP[@]}" -e ".[dev]"
    if [ $has_gpu = 0 ] && "$VENV/bin/python" -c 'import sys, torch; sys.exit(torch.version.cuda is None)'; then
        echo "[setup] WARNING: a CUDA build of torch was installed on a machine without a GPU;" \
             "set IWX_TORCH_INDEX to a CPU wheel index and rerun" >&2
    fi
    echo "$want" > "$stamp"
fi

# Rendering (python -m iwx.figure 5, iwx.run --video) needs OpenGL: EGL (a GPU's, or
# Mesa's) or OSMesa. Install OSMesa where it is missing and apt-get can (as root);
# otherwise only say so: nothing else needs it.
if ! { ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null; } | grep 'libOSMesa\.so' >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "[setup] installing libosmesa6 (OpenGL in software, to render frames)" >&2
        export DEBIAN_FRONTEND=noninteractive
        if ! { apt-get install -y -qq libosmesa6 >/dev/null 2>&1 \
               || { apt-get update -qq >/dev/null 2>&1 \
                    && apt-get install -y -qq libosmesa6 >/dev/null 2>&1; }; }; then
            echo "[setup] WARNING: apt-get install libosmesa6 failed; rendering needs EGL" \
                 "or OSMesa (apt-get install -y libosmesa6)" >&2
        fi
    else
        echo "[setup] WARNING: no OSMesa and no apt-get as root; rendering (python -m" \
             "iwx.figure 5) needs EGL or OSMesa (apt-get install -y libosmesa6)" >&2
    fi
fi

export MUJOCO_GL=${MUJOCO_GL:-disable}
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled}
what=${1:-}
[ $# -gt 0 ] && shift
case "$what" in
    demo)  exec "$VENV/bin/python" -m iwx.run --gin gin/point_nav_iwpl.gin "$@" ;;
    test)  exec "$VENV/bin/python" -m pytest "$@" ;;
    bench) exec "$VENV/bin/python" -m iwx.bench "$@" ;;
    "")    echo "[setup] ready: $VENV" >&2 ;;
    *)     echo "usage: ./setup.sh [demo|test|bench] [args...]" >&2; exit 2 ;;
esac
