#!/usr/bin/env bash
# The CLI's documented exit codes and error messages on bad input, and a tiny train → sample →
# eval round on the CPU reference: every case names what it runs, and the script exits non-zero
# when any case gives another exit code or a message without the expected words.
#   tests/cli_exit_codes.sh PATH/TO/diffcl
set -uo pipefail
# The device-failure cases plant a fault at the K-th OpenCL call; a tuning file of this machine
# (cl/gemm.cl in place of CLBlast, whose own calls are not counted) would move the step that call
# K falls in.
export DIFFCL_CL_TUNE=off
D=$1
[[ $D == /* ]] || D=$PWD/$D # the default-output case runs in another folder
T=$(mktemp -d "${TMPDIR:-/tmp}/diffcl-cli-test.XXXXXX")
trap 'rm -rf "$T"' EXIT
failures=0

# expect CODE WORDS -- ARGS...: runs diffcl ARGS, wants exit CODE and WORDS (a grep -E pattern)
# somewhere in stderr.
expect() {
    local code=$1 words=$2
    shift 3
    "$D" "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    if [[ $rc -ne $code ]] || ! grep -qE -- "$words" "$T/err"; then
        echo "FAIL: diffcl $* -> exit $rc (want $code), stderr:" >&2
        sed 's/^/    /' "$T/err" >&2
        failures=$((failures + 1))
    else
        echo "ok   exit $rc  diffcl $*"
    fi
}

printf 'x0,x1\n0.5,1\n0.25,abc\n' >"$T/bad.csv"
printf 'not a safetensors file\n' >"$T/text.safetensors"
printf 'y\n1\n2\n' >"$T/one.csv"
# An IDX image file whose header promises 10 images of 28×28 but holds 100 bytes of pixels.
printf '\x00\x00\x08\x03\x00\x00\x00\x0a\x00\x00\x00\x1c\x00\x00\x00\x1c' >"$T/cut.idx"
head -c 100 /dev/zero >>"$T/cut.idx"
printf 'not a png' >"$T/bad.png" && mkdir -p "$T/pngs" && cp "$T/bad.png" "$T/pngs/a.png"

expect 2 "did you mean 'train'" -- trian
expect 2 "unknown process 'bogus'" -- train --process bogus
expect 2 "unknown dataset 'spirl'" -- train --data spirl
expect 2 "needs a value" -- train --steps
expect 2 "predictions|combination|velocity" -- train --process ve --predict velocity
expect 4 "bad.csv.*line 3" -- train --device cpu --data "csv:$T/bad.csv" --steps 1
expect 4 "cut.idx" -- train --device cpu --data "idx:$T/cut.idx" --steps 1
expect 4 "a.png" -- train --device cpu --data "png:$T/pngs" --steps 1
expect 2 "--model FILE is required" -- sample
expect 4 "nonexistent" -- sample --device cpu --model "$T/nonexistent.safetensors" --out "$T/x.csv"
expect 4 "text.safetensors" -- sample --device cpu --model "$T/text.safetensors" --out "$T/x.csv"
expect 4 "nonexistent.csv" -- eval --samples "$T/nonexistent.csv" --data spiral
expect 2 "must end in .csv" -- data --data spiral --out "$T/x.txt"

# check: ops and the training steps of both networks against the CPU reference.
expect 0 "" -- check --device all --sizes 31
grep -qE "training and sampling rows passed" "$T/out" ||
    { echo "FAIL: diffcl check printed no training-step summary" >&2; failures=$((failures + 1)); }
# Again with every GEMM case through cl/gemm.cl, as `diffcl tune` chooses on PoCL: the U-Net's same
# convolutions then run on padded planes (host/README.md, "Convolutions on OpenCL").
DIFFCL_CL_GEMM=own expect 0 "" -- check --device all --sizes 31

# A tiny model, end to end.
expect 0 "" -- train --device cpu --steps 20 --batch 64 --width 16 --log-every 10 \
    --out "$T/m.safetensors"
expect 0 "" -- sample --device cpu --model "$T/m.safetensors" --n 200 --steps 10 --out "$T/s.csv"
# --loss-csv: a header and one step,loss row per --log-every; plot draws two such files.
expect 0 "" -- train --device cpu --steps 20 --batch 64 --width 16 --log-every 5 \
    --out "$T/m2.safetensors" --loss-csv "$T/l1.csv"
[[ "$(head -1 "$T/l1.csv")" == "step,loss" && $(wc -l <"$T/l1.csv") -eq 5 ]] &&
    grep -qE "^20,[0-9.]+$" "$T/l1.csv" ||
    { echo "FAIL: --loss-csv wrote no 4 rows of step,loss" >&2; failures=$((failures + 1)); }
expect 2 "must end in .csv" -- train --device cpu --steps 2 --loss-csv "$T/l.png" --out "$T/x.safetensors"
expect 0 "" -- plot --csv "$T/l1.csv=first,$T/l1.csv=again" --log-y --out "$T/l.png"
[[ -s "$T/l.png" ]] || { echo "FAIL: plot wrote no PNG" >&2; failures=$((failures + 1)); }
expect 4 "nope.csv" -- plot --csv "$T/nope.csv" --out "$T/l.png"
expect 4 "needs x and y" -- plot --csv "$T/one.csv" --out "$T/l.png"
expect 2 "an empty file name" -- plot --csv "$T/l1.csv,,$T/l1.csv" --out "$T/l.png"
expect 2 "--out FILE.png is required" -- plot --csv "$T/l1.csv"
expect 0 "" -- eval --device cpu --model "$T/m.safetensors" --n 200 --steps 10
expect 2 "unconditional" -- sample --device cpu --model "$T/m.safetensors" --label 3 --out "$T/s.csv"
expect 2 "unknown sampler|ddpm, ddim" -- sample --device cpu --model "$T/m.safetensors" \
    --sampler bogus --out "$T/s.csv"
head -c 100 "$T/m.safetensors" >"$T/cut.safetensors"
expect 4 "cut.safetensors" -- sample --device cpu --model "$T/cut.safetensors" --out "$T/s.csv"
grep -q "^x0,x1$" "$T/s.csv" && [[ $(wc -l <"$T/s.csv") -eq 201 ]] ||
    { echo "FAIL: $T/s.csv is not a header and 200 rows" >&2; failures=$((failures + 1)); }

# Outputs are checked before any work: a missing folder fails at once (exit 4, naming the flag and
# the folder) and writes nothing; a PNG grid from a 2-D model is a usage error before sampling.
# not_started WHAT WORD: fails the case when stderr shows that WHAT started anyway.
not_started() {
    ! grep -q "$2" "$T/err" || { echo "FAIL: $1 started before its outputs were checked" >&2; failures=$((failures + 1)); }
}
expect 4 "--out $T/missing/m.safetensors: the folder $T/missing does not exist" -- train \
    --device cpu --steps 20 --out "$T/missing/m.safetensors"
not_started train "training"
expect 4 "--loss-plot $T/missing/l.png: the folder" -- train --device cpu --steps 20 \
    --out "$T/never.safetensors" --loss-plot "$T/missing/l.png"
not_started train "training"
[[ ! -e "$T/never.safetensors" ]] || { echo "FAIL: train wrote --out before checking --loss-plot" >&2; failures=$((failures + 1)); }
expect 2 "--out $T/g.png: a PNG grid is for image models" -- sample --device cpu \
    --model "$T/m.safetensors" --n 200 --steps 10 --out "$T/g.png"
not_started sample "sampling"
expect 4 "--plot $T/missing/p.png: the folder" -- sample --device cpu --model "$T/m.safetensors" \
    --n 200 --steps 10 --plot "$T/missing/p.png"
not_started sample "sampling"
expect 4 "--out $T/missing/x.csv: the folder" -- data --data spiral --out "$T/missing/x.csv"
expect 2 "unknown flag '--device' for 'data'" -- data --device cpu --data spiral --out "$T/x.csv"
expect 2 "unknown flag '--labels'" -- sample --device cpu --model "$T/m.safetensors" --labels all

# Without --out, sample writes MODEL_samples.csv (points) in the current folder and says so.
(cd "$T" && "$D" sample --device cpu --model m.safetensors --n 50 --steps 5 >"$T/out" 2>"$T/err")
if [[ $? -ne 0 ]] || ! grep -q "^wrote m_samples.csv (50 samples)$" "$T/out" ||
    [[ $(wc -l <"$T/m_samples.csv") -ne 51 ]]; then
    echo "FAIL: sample without --out did not write m_samples.csv" >&2
    sed 's/^/    /' "$T/err" >&2
    failures=$((failures + 1))
else
    echo "ok   sample without --out wrote m_samples.csv"
fi

# Not on a terminal, train prints a progress line every 10% with the loss, then one final line,
# and says what to run next; sample draws a bar over its steps.
expect 0 "" -- train --device cpu --steps 40 --batch 64 --width 16 --log-every 4 --out "$T/p.safetensors"
n_lines=$(grep -cE "^train +[0-9]+% [0-9]+/40 steps .*steps/s" "$T/err")
if [[ $n_lines -lt 5 ]] || ! grep -qE "^train +50% 20/40 steps .*loss [0-9.]+" "$T/err" ||
    ! grep -qE "^train 40/40 steps in .*final loss [0-9.]+ \(mean of the last 4 steps; smoothed" "$T/err" ||
    ! grep -q "next: diffcl sample --device cpu --model $T/p.safetensors --plot p_samples.png" "$T/err"; then
    echo "FAIL: train's progress lines ($n_lines), final line or next step are missing:" >&2
    sed 's/^/    /' "$T/err" >&2
    failures=$((failures + 1))
else
    echo "ok   train printed $n_lines progress lines, a final line and the next step"
fi
expect 0 "^sample +50% 5/10 steps" -- sample --device cpu --model "$T/m.safetensors" --n 20 \
    --steps 10 --out "$T/s20.csv"

# Planted kernel bugs (kernels read from a copy of cl/ through DIFFCL_CL_DIR) must be caught,
# on an OpenCL device: a 1e-4 bias in the sampler step kernel by `check`, a wrong index in a
# backward kernel (bias_backward sums column D-1-d for column d) by `check`, and a 1% error in
# the loss gradient kernel by `train --verify-every --verify-strict`.
if "$D" devices --device cl >/dev/null 2>&1; then
    CL=$(cd "$(dirname "${BASH_SOURCE[0]}")/../cl" && pwd)
    cp -r "$CL" "$T/cl-bias" && cp -r "$CL" "$T/cl-grad" && cp -r "$CL" "$T/cl-index"
    sed -i 's/out\[out_off + i\] = a \* x\[x_off + i\] + b \* y\[y_off + i\] + c \* z\[z_off + i\];/out[out_off + i] = (a * x[x_off + i] + b * y[y_off + i] + c * z[z_off + i]) * 1.0001f;/' \
        "$T/cl-bias/elementwise.cl"
    sed -i 's/dout\[dout_off + i\] = sw \* /dout[dout_off + i] = 1.01f * sw * /' "$T/cl-grad/diffusion.cl"
    sed -i 's/acc += dout\[dout_off + (size_t)r \* D + d\];/acc += dout[dout_off + (size_t)r * D + (D - 1 - d)];/' \
        "$T/cl-index/bias.cl"
    if cmp -s "$CL/elementwise.cl" "$T/cl-bias/elementwise.cl" ||
        cmp -s "$CL/diffusion.cl" "$T/cl-grad/diffusion.cl" ||
        cmp -s "$CL/bias.cl" "$T/cl-index/bias.cl"; then
        echo "FAIL: could not plant the kernel bugs (did the kernels change?)" >&2
        failures=$((failures + 1))
    else
        export DIFFCL_CL_CACHE=off
        DIFFCL_CL_DIR="$T/cl-bias" expect 1 "" -- check --device cl --sizes 31
        grep -qE "^sample\.ddim.*FAIL" "$T/out" && grep -q "first step over its tolerance" "$T/out" ||
            { echo "FAIL: check did not name the planted sampler bias" >&2; failures=$((failures + 1)); }
        DIFFCL_CL_DIR="$T/cl-index" expect 1 "" -- check --device cl --ops-only --sizes 31
        grep -qE "^bias_backward .*FAIL" "$T/out" && grep -qE "first failure: bias_backward" "$T/out" ||
            { echo "FAIL: check did not name the planted bias_backward index" >&2; failures=$((failures + 1)); }
        DIFFCL_CL_DIR="$T/cl-grad" expect 1 "verify step 10: the device's gradient" -- train \
            --device cl --steps 20 --batch 64 --width 16 --verify-every 10 --verify-strict \
            --out "$T/v.safetensors"
        unset DIFFCL_CL_CACHE
    fi
    # Device failures (DIFFCL_CL_FAULT makes the K-th OpenCL call fail; test builds only): a named
    # device stops with exit 5 after saving the last consistent state, which loads; auto goes on
    # on the CPU reference; sampling under auto starts again on the CPU and gives its samples.
    # DIFFCL_AUTO=opencl makes auto pick the OpenCL device even when it is a CPU (PoCL), which auto
    # alone leaves for the CPU reference.
    DIFFCL_CL_FAULT=1 "$D" check --device cl --ops-only --sizes 3 >"$T/probe" 2>&1
    if grep -q "(injected)" "$T/probe"; then
        tiny=(--steps 20 --batch 64 --width 16 --log-every 5)
        DIFFCL_CL_FAULT=2000:CL_INVALID_COMMAND_QUEUE expect 5 \
            "last consistent state \(step [1-9][0-9]* of 20\) was saved" \
            -- train --device cl "${tiny[@]}" --out "$T/f.safetensors"
        grep -q "CL_INVALID_COMMAND_QUEUE.* on cl:" "$T/err" ||
            { echo "FAIL: the device failure's message names no error and device" >&2; failures=$((failures + 1)); }
        expect 0 "" -- sample --device cpu --model "$T/f.safetensors" --n 10 --out "$T/f.csv"
        DIFFCL_AUTO=opencl DIFFCL_CL_FAULT=2000 expect 0 "continuing on the CPU reference from step [1-9]" -- \
            train --device auto "${tiny[@]}" --out "$T/a.safetensors"
        grep -q "finished on the CPU reference after a device failure" "$T/out" ||
            { echo "FAIL: train under auto did not say it finished on the CPU" >&2; failures=$((failures + 1)); }
        DIFFCL_AUTO=opencl DIFFCL_CL_FAULT=500 expect 0 "sampling on the CPU reference instead" -- sample \
            --device auto --model "$T/m.safetensors" --n 200 --steps 10 --out "$T/sa.csv"
        cmp -s "$T/s.csv" "$T/sa.csv" ||
            { echo "FAIL: samples after the fallback differ from the CPU reference's" >&2; failures=$((failures + 1)); }
        # Kernels are built when the device opens (dcl_device_prepare); with the program cache off
        # call 16 is one of those builds: a named device stops (exit 5), auto goes on on the CPU.
        DIFFCL_CL_CACHE=off DIFFCL_CL_FAULT=16 expect 5 "building cl/.* failed" -- \
            train --device cl "${tiny[@]}" --out "$T/p.safetensors"
        DIFFCL_AUTO=opencl DIFFCL_CL_CACHE=off DIFFCL_CL_FAULT=16 expect 0 "going on on the CPU reference instead" -- \
            train --device auto "${tiny[@]}" --out "$T/p.safetensors"
    else
        echo "note: built without DIFFCL_FAULT_INJECTION; device-failure cases not run"
    fi
else
    echo "note: no OpenCL device; planted-bug and device-failure cases not run"
fi

# eval --classifier: refused for a points model; on a (barely trained) Fashion-MNIST U-Net with a
# (barely trained) classifier it prints class accuracy and the Fréchet distance with its floor.
expect 2 "a set with a test split" -- eval --device cpu --model "$T/m.safetensors" --n 50 --steps 2 \
    --classifier "$T/m.safetensors"
if [[ -e /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ||
    -e /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte ]]; then
    expect 0 "" -- train --device cpu --data fashion-mnist --steps 2 --batch 8 --out "$T/fm.safetensors"
    expect 0 "" -- classify --device cpu --data fashion-mnist --test fashion-mnist:split=test,n=100 \
        --steps 5 --batch 16 --out "$T/clf.safetensors"
    expect 0 "" -- eval --device cpu --model "$T/fm.safetensors" --classifier "$T/clf.safetensors" \
        --n 20 --steps 2 --sampler dpm++2m
    grep -qE "^class acc\. .*%" "$T/out" && grep -qE "^Fréchet dist\. +[0-9.]+ " "$T/out" &&
        grep -qE "^Fréchet floor +[0-9.]+ " "$T/out" ||
        { echo "FAIL: eval --classifier printed no metrics" >&2; failures=$((failures + 1)); }
    # Reproducible: the same seed gives the same numbers; PoCL gives them to the printed precision.
    metrics() { grep -E "^(SW2 |class acc|per class|Fréchet)" "$T/out"; }
    ev=(eval --model "$T/fm.safetensors" --classifier "$T/clf.safetensors" --n 20 --steps 2)
    expect 0 "" -- "${ev[@]}" --device cpu && metrics >"$T/m1"
    expect 0 "" -- "${ev[@]}" --device cpu && metrics >"$T/m2"
    [[ -s "$T/m1" ]] && cmp -s "$T/m1" "$T/m2" ||
        { echo "FAIL: eval --classifier twice, different numbers" >&2; failures=$((failures + 1)); }
    if "$D" devices --device cl >/dev/null 2>&1; then
        expect 0 "" -- "${ev[@]}" --device cl && metrics >"$T/m3"
        cmp -s "$T/m1" "$T/m3" ||
            { echo "FAIL: eval --classifier, cpu and OpenCL differ:" >&2; diff "$T/m1" "$T/m3" >&2; failures=$((failures + 1)); }
    fi
    # A guidance sweep: one JSON point per value, each with the classifier's metrics, and a plot.
    expect 0 "" -- eval --device cpu --model "$T/fm.safetensors" --classifier "$T/clf.safetensors" \
        --n 20 --steps 2 --sweep guidance=0,3 --plot "$T/sweep.png" --json
    [[ $(grep -o '"class_accuracy"' "$T/out" | wc -l) -eq 2 && -s "$T/sweep.png" ]] ||
        { echo "FAIL: eval --sweep guidance: no 2-point table or no plot" >&2; failures=$((failures + 1)); }
fi

# eval --sweep: bad lists, a plot without a sweep, guidance on an unconditional model are usage
# errors; a steps sweep gives at each value the SW2 that a single eval at that value gives.
expect 2 "guidance=W1,W2" -- eval --device cpu --model "$T/m.safetensors" --sweep eta=0,1
expect 2 "0 is not a whole number" -- eval --device cpu --model "$T/m.safetensors" --sweep steps=0,4
expect 2 "give --sweep too" -- eval --device cpu --model "$T/m.safetensors" --plot "$T/p.png"
expect 2 "unconditional" -- eval --device cpu --model "$T/m.safetensors" --sweep guidance=1,3
expect 0 "" -- eval --device cpu --model "$T/m.safetensors" --n 200 --sweep steps=2,10 --json \
    --plot "$T/steps.png"
sweep_sw2=$(grep -oE '"steps": 10, "sw2": [0-9.e+-]+' "$T/out" | grep -oE '[0-9.e+-]+$')
expect 0 "" -- eval --device cpu --model "$T/m.safetensors" --n 200 --steps 10 --json
single_sw2=$(grep -oE '"sw2": [0-9.e+-]+' "$T/out" | grep -oE '[0-9.e+-]+$')
[[ -n "$sweep_sw2" && "$sweep_sw2" == "$single_sw2" && -s "$T/steps.png" ]] ||
    { echo "FAIL: eval --sweep steps: SW2 at 10 steps '$sweep_sw2', alone '$single_sw2'" >&2; failures=$((failures + 1)); }

# bench train: a bad --model, then two timed MLP steps on the CPU reference, which never waits.
expect 2 "use mlp, unet or both" -- bench train --model cnn
expect 0 "" -- bench train --device cpu --model mlp --steps 2
grep -qE "median step +ops +[1-9][0-9.]* +launches +[1-9].* waits +0.00" "$T/out" ||
    { echo "FAIL: bench train printed no per-step counters" >&2; failures=$((failures + 1)); }

# U-Net shapes: unlabelled IDX image sets of 8 random 32×32 and 30×30 images. Impossible shapes
# are usage errors (exit 2) naming the flag and what would work; a tiny U-Net with two blocks per
# level and attention at 16 and 8 trains, samples and resumes.
idx() { # idx FILE SIDE_AS_PRINTF_ESCAPE SIDE: 8 images of SIDE×SIDE
    printf '\x00\x00\x08\x03\x00\x00\x00\x08\x00\x00\x00'"$2"'\x00\x00\x00'"$2" >"$1"
    head -c $((8 * $3 * $3)) /dev/urandom >>"$1"
}
idx "$T/i32.idx" '\x20' 32
idx "$T/i30.idx" '\x1e' 30
unet=(train --device cpu --data "idx:$T/i32.idx" --steps 2 --batch 4 --base 8 --groups 4)
expect 2 "must be divisible by 2\^\(levels − 1\) = 4.*--mult with at most 2 levels.*28×28" -- \
    train --device cpu --data "idx:$T/i30.idx" --steps 1
expect 2 "--attn 12: .*heights are 32, 16, 8" -- "${unet[@]}" --attn 16,12
expect 2 "--attn 4: .*heights are 32, 16" -- "${unet[@]}" --mult 1,2 --attn 4
expect 2 "3 heads \(--heads\) do not divide the 16 channels at height 16" -- "${unet[@]}" \
    --attn 16 --heads 3
expect 2 "groups \(--groups 3\) must divide the base channels \(--base 8\)" -- "${unet[@]}" \
    --groups 3
expect 2 "--mult takes at most 5 levels" -- "${unet[@]}" --mult 1,1,1,1,1,1
expect 2 "--heads is for attention blocks: add --attn" -- "${unet[@]}" --heads 2
expect 2 "--batch 1048576: .*use a batch of at most [0-9]+" -- "${unet[@]}" --batch 1048576
expect 2 "--attn 12: the network's heights are 32, 16, 8" -- bench unet --device cpu \
    --image 1,32,32 --attn 12
expect 0 "unet: [0-9]+ parameters, [0-9.]+ MFLOP per image" -- "${unet[@]}" --res-blocks 2 \
    --attn 16,8 --heads 2 --out "$T/ua.safetensors"
grep -q -- "--res-blocks 2 --attn 16,8 --heads 2" "$T/err" ||
    { echo "FAIL: train did not print the U-Net's flags" >&2; failures=$((failures + 1)); }
expect 0 "" -- sample --device cpu --model "$T/ua.safetensors" --n 4 --steps 2 --out "$T/ua.png"
expect 2 "checkpoint's network is .*--res-blocks 2 --attn 16,8 --heads 2" -- train --device cpu \
    --resume "$T/ua.safetensors" --steps 3 --attn 16
expect 0 "resuming" -- train --device cpu --resume "$T/ua.safetensors" --steps 3 --res-blocks 2 \
    --attn 8,16 --out "$T/ub.safetensors"
# The checkpoint's own --mult repeated is no contradiction; another one is.
expect 0 "resuming" -- train --device cpu --resume "$T/ub.safetensors" --steps 4 --mult 1,2,2 \
    --out "$T/ub.safetensors"
expect 2 "checkpoint's network is --base [0-9]+ --mult 1,2,2 " -- train --device cpu \
    --resume "$T/ub.safetensors" --steps 5 --mult 1,2

if ((failures)); then
    echo "$failures case(s) failed" >&2
    exit 1
fi
