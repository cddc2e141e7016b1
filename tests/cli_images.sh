#!/usr/bin/env bash
# Colour image data end to end on the CPU reference: `diffcl data` draws the built-in shapes32 as a
# labelled grid and writes shapes64 as a folder of 64x64 RGB PNGs that png:FOLDER reads back
# exactly; a U-Net trains 3 steps on that folder and on shapes32, and samples from both (--label
# all); bad folders and specs are refused with the documented exit codes, before anything is written.
#   tests/cli_images.sh PATH/TO/diffcl
set -uo pipefail
D=$1
[[ $D == /* ]] || D=$PWD/$D
T=$(mktemp -d "${TMPDIR:-/tmp}/diffcl-images-test.XXXXXX")
trap 'rm -rf "$T"' EXIT
failures=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}
# Runs the command quietly; fails (printing its stderr) unless it exits with the status wanted.
expect() {
    local want=$1
    shift
    "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    if ((rc != want)); then
        fail "exit $rc (want $want): $*"
        sed 's/^/    /' "$T/err" >&2
    fi
}
# Whether the file starts with the PNG signature.
is_png() { [[ -s $1 && $(head -c 8 "$1" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]]; }

# 1. The labelled grid of the default set (10000 images).
expect 0 "$D" data --data shapes32 --out "$T/grid.png"
is_png "$T/grid.png" || fail "diffcl data --data shapes32 wrote no PNG grid"

# 2. A folder of 64x64 RGB PNGs, one sub-folder per class, read back exactly: written out again
#    from png:FOLDER (class by class, so under other names) it gives the same PNG files.
expect 0 "$D" data --data shapes64:n=16 --out "$T/png64/"
n=$(find "$T/png64" -name '*.png' | wc -l)
((n == 16)) || fail "--out png64/ wrote $n PNGs, want 16"
[[ -d $T/png64/0_disc || -d $T/png64/1_square ]] || fail "no class sub-folders in png64/"
expect 0 "$D" data --data "png:$T/png64" --out "$T/again/"
sums() { find "$1" -name '*.png' -exec cksum {} + | cut -d' ' -f1,2 | sort; }
if [[ $(sums "$T/png64") != "$(sums "$T/again")" ]]; then
    fail "png:FOLDER does not read back the pixels of the images written"
fi

# 3. Train and sample on the folder (3-channel 64x64, class-conditional on its sub-folders).
expect 0 "$D" train --data "png:$T/png64" --steps 3 --batch 4 --base 8 --device cpu -q \
    --out "$T/m64.safetensors"
[[ -s $T/m64.safetensors ]] || fail "train on png:FOLDER wrote no checkpoint"
expect 0 "$D" sample --model "$T/m64.safetensors" --device cpu -q --steps 2 --n 4 \
    --out "$T/s64.png"
is_png "$T/s64.png" || fail "sample from the png:FOLDER model wrote no grid"

# 4. Train and sample on shapes32, one row per class.
expect 0 "$D" train --data shapes32:n=256 --steps 3 --batch 4 --base 8 --device cpu -q \
    --out "$T/m32.safetensors"
[[ -s $T/m32.safetensors ]] || fail "train on shapes32 wrote no checkpoint"
expect 0 "$D" sample --model "$T/m32.safetensors" --device cpu -q --steps 2 --label all \
    --out "$T/s32.png"
is_png "$T/s32.png" || fail "sample --label all from the shapes32 model wrote no grid"
expect 0 "$D" sample --model "$T/m32.safetensors" --device cpu -q --steps 2 --n 2 \
    --label triangle --out "$T/tri.png"

# 5. Refusals, before anything is written.
expect 4 "$D" data --data shapes32:n=4 --out "$T/png64/" # a folder that holds files
grep -q "give a new or empty folder" "$T/err" || fail "no advice for a folder that holds files"
expect 2 "$D" data --data spiral --out "$T/points/" # points are not images
[[ -e $T/points ]] && fail "a refused --out FOLDER/ was created"
expect 2 "$D" data --data shapes8 --out "$T/x.png"
grep -q "16..256" "$T/err" || fail "shapes8 is refused without the sizes that exist"
expect 2 "$D" data --data shapes32:size=64 --out "$T/x.png"
[[ -e $T/x.png ]] && fail "a refused spec wrote its --out"

if ((failures)); then
    echo "$failures failure(s)" >&2
    exit 1
fi
echo "cli_images: all passed"
