#!/usr/bin/env bash
# Builds diffcl (installing Debian packages if missing), lists the devices it sees, and checks
# every op, GEMM included, on every device against the CPU reference.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=tools/setup.sh
source tools/setup.sh
diffcl_setup

echo "== diffcl devices"
build/diffcl devices
echo
echo "== diffcl check --device all"
build/diffcl check --device all
echo
echo "demo: every device agrees with the CPU reference (tools/test.sh runs the full test suite)"
