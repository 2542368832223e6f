#!/bin/sh
# `make demo`: start a local 3-node cluster with corral-testkit and run the
# paper's scenario on it (fake hypervisor), printing what a user would see.
set -eu
cd "$(dirname "$0")/.."
DIR=${1:-/tmp/corral-demo}
exec .venv/bin/python -m corral.testkit.demo --dir "$DIR"
