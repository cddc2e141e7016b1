#!/usr/bin/env bash
# Regenerates the colour and attention figures under samples/ on the CPU reference:
#  1. a class-conditional U-Net with self-attention at 16×16 and 8×8 trained on shapes32, a grid
#     per class at guidance 1 and 3 (DDIM 50), and a shapes classifier's verdict on each grid;
#  2. the Fashion-MNIST U-Net with and without attention at 7×7, the same steps: both loss curves
#     in one plot.
#   tools/shapes_figures.sh [all|shapes|attn]      (default all; about 45 minutes on 2 idle cores)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
D=${DIFFCL:-build/diffcl}
OUT=samples
WORK=$(mktemp -d "${TMPDIR:-/tmp}/diffcl-shapes.XXXXXX")
mkdir -p "$OUT"
what=${1:-all}

if [[ $what == all || $what == shapes ]]; then
    /usr/bin/env time -f "shapes32 training: %e s wall, %U s user" \
        $D train --device cpu --data shapes32 --base 16 --mult 1,2,2 --attn 16,8 --batch 32 \
        --steps 11000 --lr 1e-3 --log-every 50 --out "$WORK/shapes.safetensors" \
        --loss-plot "$OUT/shapes32_loss.png"
    $D classify --device cpu --data shapes32 --steps 600 --batch 64 --out "$WORK/shapes_clf.safetensors"
    for w in 1 3; do
        $D sample --device cpu --model "$WORK/shapes.safetensors" --n 50 --label all --guidance $w \
            --sampler ddim --steps 50 --seed 1 --out "$OUT/shapes32_ddim50_w$w.png"
        $D eval --device cpu --model "$WORK/shapes.safetensors" --classifier "$WORK/shapes_clf.safetensors" \
            --n 50 --label all --guidance $w --sampler ddim --steps 50 --seed 1
    done
fi

if [[ $what == all || $what == attn ]]; then
    common=(--device cpu --data fashion-mnist --process flow --steps 500 --batch 64 --base 16
        --lr 1e-3 --log-every 25)
    $D train "${common[@]}" --out "$WORK/fm_plain.safetensors" --loss-csv "$WORK/plain.csv"
    $D train "${common[@]}" --attn 7 --out "$WORK/fm_attn.safetensors" --loss-csv "$WORK/attn.csv"
    $D plot --csv "$WORK/plain.csv=no attention,$WORK/attn.csv=attention at 7x7" --log-y \
        --title "Fashion-MNIST U-Net, 500 steps of 64: training loss" --ylabel "loss (MSE)" \
        --out "$OUT/fashion_attn_loss.png"
fi
echo "work files in $WORK"
