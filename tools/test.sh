#!/usr/bin/env bash
# shellcheck disable=SC2317  # stage functions are called indirectly, through run_stage
# diffcl's full check, as CI runs it (.ci/run). Stages:
#   build     tools/setup.sh with warnings as errors (build/)
#   ctest     every test on PoCL and the CPU reference; a skipped test fails when an OpenCL
#             platform exists, because then skipping means the test could not find it
#   oclgrind  test_ops, test_rng, test_conv, test_mlp and test_adam --small under Oclgrind
#             (races, uninitialised values, API misuse, out-of-bounds); fails on a non-empty log
#   pocl-wg   the OpenCL tests again with PoCL capped at a GPU-like 256 work-items per group
#   install   cmake --install build/ into a temporary prefix, then samples/train_spiral.c built
#             against it with find_package(diffcl) and with pkg-config, and both run on the CPU
#   lint      no file-level dependency cycles among the library's files (tools/check_cycles.sh)
#             and no comment citing a document outside the repository (tools/check_citations.sh)
#   asan      CPU-only build (DIFFCL_OPENCL=OFF) with ASan+UBSan in build-asan/, all its tests
#   format    clang-format (.clang-format) on host/ include/ tests/ cl/ samples/
# Every stage runs (the build's dependants are skipped if it fails); a summary with wall times
# closes the output and the exit status is non-zero if any stage failed.
#
#   tools/test.sh               every stage
#   tools/test.sh install ...   only the stages named (and the build when one needs it)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=tools/setup.sh
source tools/setup.sh

JOBS=${DIFFCL_TEST_JOBS:-2}
LOGDIR=build/test-logs
summary=()
failed=0

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
banner() { printf '\n==== %s ====\n' "$*"; }

# 1 when clinfo lists an OpenCL platform. Asked by each stage that needs it, so always after the
# build stage's set-up has installed PoCL and clinfo (on a fresh machine, CI's, neither exists
# before it, and deciding earlier would let a skipped OpenCL test pass as "no platform").
platform_present() {
    if command -v clinfo >/dev/null 2>&1 && clinfo -l 2>/dev/null | grep -q '^Platform #'; then
        echo 1
    else
        echo 0
    fi
}

# Runs ctest with "$@" (output shown); fails when ctest fails, and when a test was skipped or
# not run while an OpenCL platform is present (skip_is_error=1).
run_ctest() {
    local skip_is_error=$1 out rc=0
    shift
    out=$(mktemp "${TMPDIR:-/tmp}/diffcl-ctest.XXXXXX")
    ctest --no-tests=error --output-on-failure --timeout 600 "$@" 2>&1 | tee "$out" || rc=$?
    local skipped
    skipped=$(grep -E '\*\*\*(Skipped|Not Run)' "$out" | sed -E 's/^ *//' || true)
    rm -f "$out"
    if [[ -n "$skipped" ]]; then
        if ((skip_is_error)); then
            echo "FAIL: tests were skipped although clinfo lists an OpenCL platform:" >&2
            echo "$skipped" >&2
            echo "      (a skipped OpenCL test here means the test did not find PoCL)" >&2
            return 1
        fi
        echo "note: skipped (allowed here):"
        echo "$skipped"
    fi
    return "$rc"
}

stage_build() {
    DIFFCL_WERROR=ON diffcl_setup
    echo "built build/ (RelWithDebInfo, -Werror)"
}

stage_ctest() {
    local have_platform
    have_platform=$(platform_present)
    if ((!have_platform)); then
        echo "note: clinfo lists no OpenCL platform; OpenCL tests may skip (exit 77)"
    fi
    run_ctest "$have_platform" --test-dir build -j "$JOBS"
}

stage_oclgrind() {
    local t rc=0
    mkdir -p "$LOGDIR"
    for t in test_ops test_rng test_conv test_mlp test_adam; do
        echo "-- $t --small under Oclgrind (log: $LOGDIR/oclgrind-$t.log)"
        local t0
        t0=$(now)
        # A divergent barrier can hang instead of failing: bound each run.
        local limit=${DIFFCL_OCLGRIND_TIMEOUT:-300} trc=0
        timeout "$limit" tools/oclgrind_run.sh "$LOGDIR/oclgrind-$t.log" \
            "build/tests/$t" --small || trc=$?
        if ((trc == 0)); then
            echo "   ok ($(elapsed "$t0")s)"
        elif ((trc == 124)); then
            echo "   FAILED: timed out after ${limit}s (DIFFCL_OCLGRIND_TIMEOUT)"
            rc=1
        else
            echo "   FAILED ($(elapsed "$t0")s)"
            rc=1
        fi
    done
    return "$rc"
}

stage_pocl_wg() {
    POCL_MAX_WORK_GROUP_SIZE=256 run_ctest "$(platform_present)" --test-dir build -L opencl -j "$JOBS"
}

# The installed package as a user meets it: headers, libdiffcl, the CMake package and diffcl.pc
# in a fresh prefix; the example built both ways must run and write its plot.
stage_install() {
    local tmp prefix
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/diffcl-install.XXXXXX")
    # shellcheck disable=SC2064  # expand now: tmp is local
    trap "rm -rf '$tmp'" EXIT
    prefix=$tmp/prefix
    cmake --install build --prefix "$prefix" >"$tmp/install.log"
    echo "installed into a temporary prefix: $(find "$prefix" -type f | wc -l) files"

    echo "-- find_package(diffcl): samples/ as its own project"
    cmake -S samples -B "$tmp/cmake" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_C_FLAGS="-Wall -Wextra -Werror" >"$tmp/cmake.log" 2>&1 ||
        { cat "$tmp/cmake.log" >&2; return 1; }
    cmake --build "$tmp/cmake" >>"$tmp/cmake.log" 2>&1 || { cat "$tmp/cmake.log" >&2; return 1; }

    echo "-- pkg-config --cflags --libs --static diffcl"
    local flags
    flags=$(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs --static diffcl)
    echo "   cc -std=c11 samples/train_spiral.c $flags"
    # shellcheck disable=SC2086  # flags is a list of words
    cc -std=c11 -Wall -Wextra -Werror -O2 samples/train_spiral.c -o "$tmp/train_spiral_pc" $flags

    local exe rc=0
    for exe in "$tmp/cmake/train_spiral" "$tmp/train_spiral_pc"; do
        echo "-- ${exe#"$tmp"/} cpu"
        (cd "$tmp" && "$exe" cpu "$tmp/out") || { echo "FAIL: ${exe#"$tmp"/} exited $?" >&2; rc=1; }
        if [[ ! -s "$tmp/out.png" || ! -s "$tmp/out.safetensors" ]]; then
            echo "FAIL: ${exe#"$tmp"/} wrote no plot or checkpoint" >&2
            rc=1
        fi
        rm -f "$tmp/out.png" "$tmp/out.safetensors"
    done
    return "$rc"
}

stage_lint() {
    local rc=0
    tools/check_cycles.sh build || rc=1
    tools/check_citations.sh || rc=1
    return "$rc"
}

stage_asan() {
    DIFFCL_BUILD_DIR=build-asan DIFFCL_WERROR=ON \
        diffcl_build -DDIFFCL_OPENCL=OFF -DDIFFCL_SANITIZE=ON
    echo "built build-asan/ (DIFFCL_OPENCL=OFF, ASan+UBSan, -Werror)"
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        run_ctest 0 --test-dir build-asan -j "$JOBS"
}

stage_format() {
    if ! command -v clang-format >/dev/null 2>&1; then
        echo "note: clang-format not installed; format check not run"
        return 0
    fi
    if [[ ! -f .clang-format ]]; then
        echo "FAIL: .clang-format is missing" >&2
        return 1
    fi
    local f files=() bad=()
    mapfile -t files < <(find host include tests cl samples -type f \
        \( -name '*.c' -o -name '*.h' -o -name '*.cl' \) 2>/dev/null | LC_ALL=C sort)
    for f in "${files[@]}"; do
        if ! clang-format --style=file "$f" | cmp -s - "$f"; then
            bad+=("$f")
        fi
    done
    echo "checked ${#files[@]} files with $(clang-format --version | sed -E 's/.*version ([^ ]+).*/clang-format \1/')"
    if ((${#bad[@]})); then
        echo "FAIL: ${#bad[@]} files differ from .clang-format (fix: clang-format -i FILE):" >&2
        for f in "${bad[@]}"; do
            echo "  $f ($(clang-format --style=file "$f" | diff "$f" - | grep -c '^[<>]') lines)" >&2
        done
        for f in "${bad[@]::3}"; do
            echo "--- first differences in $f:" >&2
            clang-format --style=file "$f" | diff -u "$f" - | sed -n '3,40p' >&2 || true
        done
        return 1
    fi
}

# run_stage NAME FUNCTION: runs FUNCTION in a subshell with errexit, records result and time in
# summary and its status in stage_rc. Never call it in a condition (`if`, `||`): bash would then
# ignore errexit inside the stage too.
stage_rc=0
run_stage() {
    local name=$1 fn=$2 t0 t
    banner "$name"
    t0=$(now)
    set +e
    (
        set -euo pipefail
        "$fn"
    ) 2>&1
    stage_rc=$?
    set -e
    t=$(elapsed "$t0")
    if ((stage_rc == 0)); then
        summary+=("$(printf '%-9s %-7s %7ss' "$name" ok "$t")")
    else
        summary+=("$(printf '%-9s %-7s %7ss' "$name" FAILED "$t")")
        failed=1
    fi
}

skip_stage() {
    summary+=("$(printf '%-9s %-7s %8s' "$1" skipped "($2)")")
    failed=1
}

# Stages to run: those named on the command line, or all of them.
ALL_STAGES=(build ctest oclgrind pocl-wg install lint asan format)
if (($#)); then
    for s in "$@"; do
        [[ " ${ALL_STAGES[*]} " == *" $s "* ]] ||
            { echo "test.sh: unknown stage '$s' (stages: ${ALL_STAGES[*]})" >&2; exit 2; }
    done
    WANT=" $* "
else
    WANT=" ${ALL_STAGES[*]} "
fi
wants() { [[ "$WANT" == *" $1 "* ]]; }

T0=$(now)
# The stages that use build/ need the build stage first.
if wants build || wants ctest || wants oclgrind || wants pocl-wg || wants install || wants lint; then
    run_stage build stage_build
    build_ok=$((stage_rc == 0))
    for s in ctest oclgrind pocl-wg install lint; do
        wants "$s" || continue
        if ((build_ok)); then
            run_stage "$s" "stage_${s//-/_}"
        else
            skip_stage "$s" "build failed"
        fi
    done
fi
if wants asan; then run_stage asan stage_asan; fi
if wants format; then run_stage format stage_format; fi

banner summary
printf '%s\n' "${summary[@]}"
printf '%-9s %-7s %7ss\n' total "$( ((failed)) && echo FAILED || echo ok)" "$(elapsed "$T0")"
exit "$failed"
