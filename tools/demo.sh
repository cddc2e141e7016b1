#!/usr/bin/env bash
# The main job on an embedded default: builds diffcl (installing Debian packages if missing),
# lists the devices, cross-checks every op against the CPU reference, then trains a flow model on
# the spiral on the default device, samples it and writes the plots.
#   DIFFCL_DEMO_OUT=DIR   where the model, samples and PNGs go (default demo-out/)
set -euo pipefail

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
