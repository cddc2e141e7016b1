#!/usr/bin/env bash
# Data-parallel training under mpirun (host/cli/mpi.c): 2 ranks against one process, two 2-rank
# runs bit for bit, a CPU rank with a PoCL rank, a U-Net, and a rank that fails or is killed.
#   tests/cli_mpi.sh PATH/TO/diffcl PATH/TO/mpi_compare [PATH/TO/mpirun]
#
# Tolerances. At step 1 a checkpoint's Adam moments are m = (1 − β1) g and v = (1 − β2) g² of the
# step's gradient g, whose every element is a sum over the B = 1024 examples: one process sums
# them in its GEMM's order, two ranks sum 512 each and MPI adds the halves (the division by 2 is
# exact). Each is a summation of the same terms, within γ_{B−1} Σ|t_i| of the exact sum (Higham,
# "Accuracy and Stability of Numerical Algorithms", 2nd ed., §4.2), so the two differ by at most
# 2 γ_1023 = 1.22e-4 of Σ|t_i|; the test applies it to each tensor's largest |m| (and twice that
# to v, whose relative error is twice g's). After 300 Adam steps the weights are no longer
# comparable element by element: rounding differences in gradients near 0 flip Adam's
# sign-like early updates and the trajectories separate (by 0.2-0.4 of a tensor's largest weight,
# as much as one process on the CPU reference against one on PoCL), so the trained models are
# compared by what they do: sampled from the same noise, their sliced W2 distances to the data
# agree within a quarter of the data-vs-data floor that eval prints. A CPU rank with a PoCL rank
# has the gradient tolerance of --verify-every, 2e-3 of a tensor's largest value.
set -uo pipefail
# The device-failure cases plant a fault at the K-th OpenCL call; a tuning file of this machine
# (cl/gemm.cl in place of CLBlast, whose own calls are not counted) would move the step that call
# K falls in.
export DIFFCL_CL_TUNE=off
D=$1
C=$2
MPIRUN=${3:-mpirun}
T=$(mktemp -d "${TMPDIR:-/tmp}/diffcl-mpi-test.XXXXXX")
trap 'rm -rf "$T"' EXIT
failures=0
# Root in CI containers; 2 ranks on 2 cores; one CPU-reference thread per rank (results do not
# depend on the thread count) so the ranks do not fight over the cores.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 DIFFCL_THREADS=1
# Under AddressSanitizer (tools/test.sh's asan stage) the ranks run without LeakSanitizer: Open
# MPI's plugins, loaded and unloaded by MPI_Init/MPI_Finalize, leave ~116 KB of their own
# allocations at exit whose stacks end in the unloaded modules, so no suppression can name them.
# Memory errors are still caught, and the single-process runs here keep leak checking.
MPI=(env "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" "$MPIRUN" --oversubscribe)

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}
# run NAME ARGS...: runs ARGS with stdout and stderr in $T/NAME.log; fails the case on exit != 0.
run() {
    local name=$1
    shift
    if "$@" >"$T/$name.log" 2>&1; then
        echo "ok   $name"
    else
        fail "$name (exit $?): $*"
        sed 's/^/    /' "$T/$name.log" >&2
    fi
}
# compare NAME A B TOL [PREFIX]: mpi_compare, its line shown.
compare() {
    local name=$1
    shift
    if "$C" "$@" >"$T/cmp.log" 2>&1; then
        echo "ok   $name: $(cat "$T/cmp.log")"
    else
        fail "$name: $(cat "$T/cmp.log")"
    fi
}
sw2() { "$D" eval -q --device cpu --model "$1" --n 2000 --steps 40 --json | sed 's/.*"sw2": \([0-9.e+-]*\), "sw2_floor": \([0-9.e+-]*\).*/\1 \2/'; }
# close NAME A B: the SW2 of two checkpoints within a quarter of the floor.
close() {
    local a b
    read -r a floor < <(sw2 "$2")
    read -r b _ < <(sw2 "$3")
    if awk -v a="$a" -v b="$b" -v f="$floor" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= f / 4) }'; then
        echo "ok   $1: SW2 $a vs $b (floor $floor, tolerance floor/4)"
    else
        fail "$1: SW2 $a vs $b differ by more than a quarter of the floor $floor"
    fi
}

spiral=(train --data spiral --batch 1024)

# (a) 2 ranks against one process: the gradient at step 1, the trained model at step 300; two
# 2-rank runs bit for bit.
run one-1 "$D" "${spiral[@]}" --steps 1 --device cpu --out "$T/one-1.safetensors"
run two-1 "${MPI[@]}" -np 2 "$D" "${spiral[@]}" --steps 1 --device cpu --out "$T/two-1.safetensors"
compare "step 1: gradient (Adam m), 2 ranks vs 1" "$T/one-1.safetensors" "$T/two-1.safetensors" 1.22e-4 train.adam_m
compare "step 1: Adam v, 2 ranks vs 1" "$T/one-1.safetensors" "$T/two-1.safetensors" 2.44e-4 train.adam_v
run one "$D" "${spiral[@]}" --steps 300 --device cpu --out "$T/one.safetensors"
run two "${MPI[@]}" -np 2 "$D" "${spiral[@]}" --steps 300 --device cpu --out "$T/two.safetensors"
run two-again "${MPI[@]}" -np 2 "$D" "${spiral[@]}" --steps 300 --device cpu --out "$T/two-again.safetensors"
compare "two 2-rank runs, bit for bit" "$T/two.safetensors" "$T/two-again.safetensors" 0
close "300 steps, 2 ranks vs 1" "$T/one.safetensors" "$T/two.safetensors"
grep -q "rank 1: trains on cpu" "$T/two.log" || fail "rank 1 did not log its device"
[[ $(grep -c "^wrote " "$T/two.log") -eq 1 ]] || fail "more than one rank wrote a checkpoint"

# Usage errors before any work: a batch that does not divide by the ranks.
"${MPI[@]}" -np 2 "$D" train --data spiral --batch 1023 --steps 1 --device cpu \
    --out "$T/odd.safetensors" >"$T/odd.log" 2>&1
rc=$?
if [[ $rc -eq 2 ]] && grep -q "does not divide by the 2 MPI ranks" "$T/odd.log" &&
    [[ ! -e $T/odd.safetensors ]]; then
    echo "ok   --batch 1023 on 2 ranks: exit 2"
else
    fail "--batch 1023 on 2 ranks: exit $rc"
    sed 's/^/    /' "$T/odd.log" >&2
fi

# (b) rank 0 on the CPU reference, rank 1 on PoCL (an MPMD command line: only --device differs).
"$D" devices >"$T/devices" 2>&1
if grep -q "^\[[0-9]*\] cl:" "$T/devices"; then
    mixed() { # STEPS OUT
        "${MPI[@]}" -np 1 "$D" "${spiral[@]}" --steps "$1" --log-every 25 --device cpu --out "$2" \
            : -np 1 "$D" "${spiral[@]}" --steps "$1" --log-every 25 --device cl --out "$2"
    }
    run mixed-1 mixed 1 "$T/mixed-1.safetensors"
    compare "step 1: gradient, cpu + PoCL ranks vs 1 process" "$T/one-1.safetensors" \
        "$T/mixed-1.safetensors" 2e-3 train.adam_m
    run one-100 "$D" "${spiral[@]}" --steps 100 --log-every 25 --device cpu --out "$T/one-100.safetensors"
    run mixed-100 mixed 100 "$T/mixed-100.safetensors"
    grep -q "devices of different kinds" "$T/mixed-100.log" || fail "the mixed run did not say so"
    close "100 steps, cpu + PoCL ranks vs 1 process" "$T/one-100.safetensors" "$T/mixed-100.safetensors"
else
    echo "note: no OpenCL device; the cpu + PoCL case not run"
fi

# (c) A U-Net on images under 2 ranks trains a few steps and samples: Fashion-MNIST when
# installed, else 16 generated 8x8 images (an IDX file).
if [[ -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]]; then
    images=fashion-mnist:n=256
else
    { printf '\x00\x00\x08\x03\x00\x00\x00\x10\x00\x00\x00\x08\x00\x00\x00\x08'
      awk 'BEGIN { for (i = 0; i < 1024; i++) printf "%c", (i * 37 + int(i / 64) * 11) % 256 }'; } >"$T/img.idx"
    images="idx:$T/img.idx"
fi
run unet "${MPI[@]}" -np 2 "$D" train --data "$images" --steps 4 --batch 8 --log-every 2 \
    --device cpu --out "$T/unet.safetensors"
run unet-sample "$D" sample --device cpu --model "$T/unet.safetensors" --n 4 --steps 5 \
    --out "$T/unet.png"

# (d) A failing rank ends the job within seconds, naming the rank; rank 0's checkpoint loads.
small=(train --data spiral --steps 2000 --batch 256 --width 16 --log-every 5 --save-every 10)
DIFFCL_CL_FAULT=1 "$D" check --device cl --ops-only --sizes 3 >"$T/probe" 2>&1
if grep -q "(injected)" "$T/probe"; then
    start=$(date +%s)
    "${MPI[@]}" -np 1 "$D" "${small[@]}" --device cpu --out "$T/f.safetensors" \
        : -np 1 -x DIFFCL_CL_FAULT=2000:CL_INVALID_COMMAND_QUEUE "$D" "${small[@]}" --device cl \
        --out "$T/f.safetensors" >"$T/fault.log" 2>&1
    rc=$? took=$(($(date +%s) - start))
    if [[ $rc -ne 0 ]] && ((took < 30)) && grep -q "rank 1 on cl:.* failed" "$T/fault.log" &&
        grep -q "last consistent state (step [1-9][0-9]* of 2000) was saved" "$T/fault.log"; then
        echo "ok   a device failure on rank 1: exit $rc after ${took}s, rank 0 saved its state"
    else
        fail "a device failure on rank 1: exit $rc after ${took}s"
        sed 's/^/    /' "$T/fault.log" >&2
    fi
    run fault-load "$D" sample --device cpu --model "$T/f.safetensors" --n 10 --out "$T/f.csv"
else
    echo "note: no OpenCL device or no DIFFCL_FAULT_INJECTION; the planted device failure not run"
fi
# kill -9 of rank 1 (found by its OMPI_COMM_WORLD_RANK among mpirun's children) after rank 0's
# first periodic checkpoint.
"${MPI[@]}" -np 2 "$D" "${small[@]}" --device cpu --out "$T/k.safetensors" >"$T/kill.log" 2>&1 &
job=$!
for _ in $(seq 300); do
    compgen -G "$T/k-step*.safetensors" >/dev/null && break
    sleep 0.1
done
rank1=
for p in $(pgrep -P "$job"); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" && rank1=$p
done
if [[ -n $rank1 ]]; then
    start=$(date +%s)
    kill -9 "$rank1"
    wait "$job"
    rc=$? took=$(($(date +%s) - start))
    ckpt=$(compgen -G "$T/k-step*.safetensors" | tail -1)
    if [[ $rc -ne 0 ]] && ((took < 30)) && grep -q "rank 1" "$T/kill.log"; then
        echo "ok   kill -9 of rank 1: exit $rc after ${took}s"
    else
        fail "kill -9 of rank 1: exit $rc after ${took}s"
        sed 's/^/    /' "$T/kill.log" >&2
    fi
    run kill-load "$D" sample --device cpu --model "$ckpt" --n 10 --out "$T/k.csv"
else
    kill "$job" 2>/dev/null
    wait "$job"
    echo "note: rank 1's process not found under mpirun (not Open MPI?); the kill case not run"
fi

if ((failures)); then
    echo "$failures case(s) failed" >&2
    exit 1
fi
echo "all cases passed"
