#!/usr/bin/env bash
# Regenerates the spiral figures under samples/ and prints their evaluation, on the CPU reference
# (deterministic: the same commands give the same PNGs bit for bit). Needs a build (tools/demo.sh).
#   tools/spiral_figures.sh [DEVICE]        default: cpu
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
D=build/diffcl
DEV=${1:-cpu}
OUT=samples
WORK=$(mktemp -d "${TMPDIR:-/tmp}/diffcl-figures.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

echo "== flow, velocity prediction, euler 100 steps"
$D train --device "$DEV" --data spiral --process flow --predict velocity --steps 3000 --batch 1024 \
    --out "$WORK/flow.safetensors" --loss-plot "$OUT/spiral_flow_loss.png"
$D sample --device "$DEV" --model "$WORK/flow.safetensors" --sampler euler --steps 100 --n 10000 \
    --seed 1 --out "$WORK/flow.csv" --plot "$OUT/spiral_flow_samples.png" \
    --trajectories "$OUT/spiral_flow_trajectories.png"
$D eval --samples "$WORK/flow.csv" --data spiral

echo "== ve (sigma_q = 3), x0 prediction, ddpm and ddim 100 steps"
$D train --device "$DEV" --data spiral --process ve --sigma-q 3 --predict x0 --steps 3000 \
    --batch 1024 --out "$WORK/ve.safetensors"
for s in ddpm ddim; do
    $D sample --device "$DEV" --model "$WORK/ve.safetensors" --sampler $s --steps 100 --n 10000 \
        --seed 1 --out "$WORK/ve-$s.csv" --plot "$OUT/spiral_ve_$s.png"
    $D eval --samples "$WORK/ve-$s.csv" --data spiral
done
$D sample --device "$DEV" --model "$WORK/ve.safetensors" --sampler ddpm --steps 100 --n 10000 \
    --seed 1 --paths 40 --trajectories "$OUT/spiral_ve_ddpm_trajectories.png"

echo "== memorisation: 10 and 1000 training points (tutorial figure 6)"
for n in 10 1000; do
    $D train --device "$DEV" --data "spiral:n=$n" --steps 3000 --out "$WORK/n$n.safetensors"
    $D sample --device "$DEV" --model "$WORK/n$n.safetensors" --n 2000 --plot "$OUT/spiral_n$n.png"
    $D eval --device "$DEV" --model "$WORK/n$n.safetensors"
done
echo "figures in $OUT/"
