#!/usr/bin/env bash
# Regenerates the Fashion-MNIST figures under samples/ on the CPU reference: trains the
# class-conditional U-Net (about 36 minutes on 2 cores), then writes one 10×10 grid per sampling
# setting and evaluates it; trains the image classifier (a few minutes) and sweeps the guidance
# weight: class accuracy and Fréchet distance of 1000 samples per weight, table and plot. With a
# checkpoint argument it skips the U-Net's training, with two the classifier's too.
#   tools/fashion_figures.sh [MODEL.safetensors [CLASSIFIER.safetensors]]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
D=build/diffcl
OUT=samples
mkdir -p "$OUT"
MODEL=${1:-}
CLF=${2:-}
if [[ -z "$MODEL" ]]; then
    MODEL=$(mktemp -d "${TMPDIR:-/tmp}/diffcl-fashion.XXXXXX")/fashion.safetensors
    $D train --device cpu --data fashion-mnist --process flow --steps 2400 --batch 64 --base 16 \
        --lr 1e-3 --log-every 25 --out "$MODEL" --loss-plot "$OUT/fashion_loss.png"
fi
for w in 3 1; do
    $D sample --device cpu --model "$MODEL" --n 100 --label all --guidance $w --sampler ddim \
        --steps 50 --seed 1 --out "$OUT/fashion_ddim50_w$w.png"
done
$D sample --device cpu --model "$MODEL" --n 100 --label all --guidance 3 --sampler ddpm \
    --steps 100 --seed 1 --out "$OUT/fashion_ddpm100_w3.png"
$D eval --device cpu --model "$MODEL" --n 100 --label all --guidance 3 --sampler ddim --steps 50
if [[ -z "$CLF" ]]; then
    CLF=$(dirname "$MODEL")/clf.safetensors
    $D classify --device cpu --data fashion-mnist --out "$CLF"
fi
$D eval --device cpu --model "$MODEL" --classifier "$CLF" --n 1000 --sampler dpm++2m --steps 20 \
    --sweep guidance=0,1,2,3,5 --plot "$OUT/fashion_sweep_guidance.png"
