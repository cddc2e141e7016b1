#!/usr/bin/env bash
# Installs what diffcl needs on Debian 12 (apt-get, only when something is missing) and builds it
# into build/ (RelWithDebInfo). Run it, or source it for the functions (tools/test.sh does).
#
#   tools/setup.sh [EXTRA CMAKE ARGS...]
#   DIFFCL_WERROR=ON tools/setup.sh      # warnings are errors (tools/test.sh)
#   DIFFCL_BUILD_DIR=build-x tools/setup.sh -DDIFFCL_OPENCL=OFF
#
# Quiet when everything is installed and the build succeeds; prints the build log on failure.

# Debian packages: compiler and build tools, OpenCL headers + ICD loader + CLBlast, PNG, zlib
# (gzipped IDX files), OpenBLAS, JSON, PoCL (an OpenCL device on any CPU), clinfo, Oclgrind
# (OpenCL checker), clang-format, Fashion-MNIST (the fashion-mnist dataset, ~31 MB), Open MPI
# (data-parallel `diffcl train` under mpirun, and its test).
DIFFCL_PACKAGES=(
    build-essential cmake pkg-config
    ocl-icd-opencl-dev opencl-c-headers libclblast-dev
    libpng-dev zlib1g-dev libopenblas-dev libjansson-dev
    pocl-opencl-icd clinfo oclgrind clang-format
    dataset-fashion-mnist
    libopenmpi-dev openmpi-bin
)

# Prints the packages among "$@" that are not fully installed, one per line.
diffcl_missing_packages() {
    local p status
    for p in "$@"; do
        status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        [[ "$status" == "install ok installed" ]] || printf '%s\n' "$p"
    done
}

# Installs the missing ones among "$@" with apt-get (apt-get update only if one is missing).
diffcl_install_packages() {
    local pkgs=("$@") missing sudo=()
    if ! command -v dpkg-query >/dev/null 2>&1; then
        echo "setup: dpkg-query not found; this script expects Debian 12. Install by hand:" >&2
        echo "  ${pkgs[*]}" >&2
        return 1
    fi
    mapfile -t missing < <(diffcl_missing_packages "${pkgs[@]}")
    ((${#missing[@]})) || return 0
    if [[ $(id -u) -ne 0 ]]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "setup: missing packages (${missing[*]}) and neither root nor sudo" >&2
            return 1
        fi
        sudo=(sudo)
    fi
    echo "setup: installing ${missing[*]}"
    local log
    log=$(mktemp "${TMPDIR:-/tmp}/diffcl-apt.XXXXXX")
    if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >"$log" 2>&1 ||
        ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q "${missing[@]}" >>"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        echo "setup: apt-get failed (output above)" >&2
        return 1
    fi
    rm -f "$log"
    mapfile -t missing < <(diffcl_missing_packages "${missing[@]}")
    if ((${#missing[@]})); then
        echo "setup: still missing after apt-get: ${missing[*]}" >&2
        return 1
    fi
}

# Configures and builds DIFFCL_BUILD_DIR (default build) with "$@" as extra cmake arguments.
# DIFFCL_WERROR=ON|OFF (default OFF) is always passed so the cache never keeps a stale value.
diffcl_build() {
    local dir=${DIFFCL_BUILD_DIR:-build} log rc=0
    mkdir -p "$dir"
    log="$dir/setup.log"
    {
        cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
            -DDIFFCL_WERROR="${DIFFCL_WERROR:-OFF}" "$@" &&
            cmake --build "$dir" -j "$(nproc)"
    } >"$log" 2>&1 || rc=$?
    if ((rc)); then
        cat "$log" >&2
        echo "setup: build in $dir failed (log above, also in $log)" >&2
        return "$rc"
    fi
}

# Packages, then the build. Runs from the repository root whatever the caller's cwd.
diffcl_setup() {
    local root
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    diffcl_install_packages "${DIFFCL_PACKAGES[@]}" || return
    (cd "$root" && diffcl_build "$@")
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    diffcl_setup "$@"
fi
