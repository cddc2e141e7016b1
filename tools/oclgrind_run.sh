#!/usr/bin/env bash
# Runs a command under Oclgrind (OpenCL simulator and checker) and fails when the command fails
# OR Oclgrind reported anything: Oclgrind itself exits 0 even when it finds errors, so the gate
# is an empty log (the approach of diku-dk/futhark tools/oclgrindrunner.sh).
#
#   tools/oclgrind_run.sh LOG COMMAND [ARGS...]
#
# Checks: out-of-bounds and unaligned accesses (always on), --data-races, --uninitialized,
# --check-api. OCLGRIND_ARGS adds options, e.g. "--max-wgsize 256 --local-mem-size 49152" to
# imitate a GPU's limits. Oclgrind's runtime is preloaded in place of the ICD loader, so the
# command sees one platform: the Oclgrind device.
set -euo pipefail

if (($# < 2)); then
    echo "usage: $0 LOG COMMAND [ARGS...]" >&2
    exit 2
fi
log=$1
shift
if ! command -v oclgrind >/dev/null 2>&1; then
    echo "oclgrind_run: oclgrind is not installed (apt-get install oclgrind)" >&2
    exit 2
fi

# Kernels built from source under Oclgrind, so its reports quote the kernel's source lines.
export DIFFCL_CL_CACHE=off
mkdir -p "$(dirname "$log")"
: >"$log"
extra=()
# Word splitting of OCLGRIND_ARGS is intended: it is a list of options.
# shellcheck disable=SC2206
[[ -n "${OCLGRIND_ARGS:-}" ]] && extra=(${OCLGRIND_ARGS})

rc=0
oclgrind --data-races --uninitialized --check-api --max-errors 20 "${extra[@]}" \
    --log "$log" "$@" || rc=$?

fail=0
if ((rc != 0)); then
    echo "oclgrind_run: '$*' exited with status $rc under Oclgrind" >&2
    fail=1
fi
if [[ -s "$log" ]]; then
    echo "oclgrind_run: Oclgrind reported problems for '$*' ($log):" >&2
    head -n 80 "$log" >&2
    n=$(wc -l <"$log")
    ((n <= 80)) || echo "... ($((n - 80)) more lines in $log)" >&2
    fail=1
fi
exit "$fail"
