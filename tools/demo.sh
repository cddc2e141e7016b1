#!/usr/bin/env bash
# The main job on an embedded default: builds diffcl (installing Debian packages if missing),
# lists the devices, cross-checks every op against the CPU reference, then trains a flow model on
# the spiral on the default device, samples it and writes the plots.
#   tools/demo.sh [--images]
#   --images              also train a small class-conditional U-Net on Fashion-MNIST for a few
#                         minutes and write a sample grid (one row per class, guidance 3)
#   DIFFCL_DEMO_OUT=DIR   where the models, samples and PNGs go (default demo-out/)
set -euo pipefail

images=0
for arg in "$@"; do
    case $arg in
    --images) images=1 ;;
    -h | --help)
        sed -n '2,8p' "$0"
        exit 0
        ;;
    *)
        echo "demo.sh: unknown argument '$arg' (use --images or --help)" >&2
        exit 2
        ;;
    esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=tools/setup.sh
source tools/setup.sh
diffcl_setup

OUT=${DIFFCL_DEMO_OUT:-demo-out}
mkdir -p "$OUT"
D=build/diffcl

echo "== diffcl devices"
$D devices
echo
echo "== diffcl check --device all (every op against the CPU reference)"
$D check --device all
echo
echo "== diffcl train: a flow model on the spiral"
$D train --data spiral --process flow --steps 3000 --batch 1024 \
    --out "$OUT/spiral.safetensors" --loss-plot "$OUT/loss.png"
echo
echo "== diffcl sample: Euler, 100 steps"
$D sample --model "$OUT/spiral.safetensors" --sampler euler --steps 100 --n 10000 --seed 1 \
    --out "$OUT/samples.csv" --plot "$OUT/samples.png" --trajectories "$OUT/trajectories.png"
echo
echo "== diffcl eval"
$D eval --samples "$OUT/samples.csv" --data spiral
echo
echo "demo: plots in $OUT/: samples.png (samples over data), trajectories.png (noise to data,"
echo "      coloured by t), loss.png; the model is $OUT/spiral.safetensors"

if ((images)); then
    echo
    # A GPU if there is one; otherwise the CPU reference, which trains the U-Net several times
    # faster than PoCL's CPU device does (diffcl bench unet --device all shows both).
    dev=cpu
    if $D devices --device cl:gpu >/dev/null 2>&1; then dev=cl:gpu; fi
    echo "== diffcl train: a class-conditional U-Net on Fashion-MNIST on $dev (short: a demo)"
    $D train --device "$dev" --data fashion-mnist --steps 300 --batch 64 --base 16 --lr 1e-3 \
        --out "$OUT/fashion.safetensors"
    echo
    echo "== diffcl sample: one row per class, guidance 3, DDIM 50 steps"
    $D sample --device "$dev" --model "$OUT/fashion.safetensors" --n 100 --label all --guidance 3 \
        --sampler ddim --steps 50 --out "$OUT/fashion-grid.png"
    echo "demo: $OUT/fashion-grid.png (300 steps give shapes; README shows a longer run)"
fi
