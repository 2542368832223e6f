#!/bin/sh
# Prepare a fresh Debian machine for corral: Debian packages (when root and
# missing) and the project's virtual environment in .venv.
set -eu
cd "$(dirname "$0")/.."
PKGS=$(grep -v '^#' scripts/debian-packages.txt | tr '\n' ' ')
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    MISSING=""
    for p in $PKGS; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || MISSING="$MISSING $p"
    done
    if [ -n "$MISSING" ]; then
        echo "Installing Debian packages:$MISSING"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $MISSING
    fi
fi
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
STAMP=.venv/.corral-installed
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
    .venv/bin/pip install -q --upgrade pip
    # compat mode: a plain path entry instead of an import hook (faster CLI start)
    .venv/bin/pip install -q -e '.[test]' --config-settings editable_mode=compat
    touch "$STAMP"
fi
# Byte-compile, as a package install would: with PYTHONDONTWRITEBYTECODE set (as
# on some machines) every gnt-* run would otherwise recompile its imports.
.venv/bin/python -m compileall -q corral >/dev/null
