#!/usr/bin/env bash
# Checkpoints under faults, on the CPU reference: kill -9 at random moments of a run with
# --save-every (each time the newest checkpoint resumes; temporary files are never taken for one),
# SIGINT (exit 130, and the checkpoint resumes bit for bit), a diverging run (exit 7 and a finite
# checkpoint), and a resume that contradicts the checkpoint (exit 2 naming the difference).
#   tests/cli_resume.sh PATH/TO/diffcl
set -uo pipefail
D=$1
[[ $D == /* ]] || D=$PWD/$D
T=$(mktemp -d "${TMPDIR:-/tmp}/diffcl-resume-test.XXXXXX")
trap 'rm -rf "$T"' EXIT
failures=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}
# The step recorded in a checkpoint's config.
# (the header's JSON holds the config as a string, so its quotes are escaped).
step_of() { head -c 8192 "$1" | grep -ao '"step\\":[0-9]*' | head -1 | cut -d: -f2; }

# Whether every float32 after a safetensors header (8-byte length, then JSON) is finite.
all_finite() {
    local n
    n=$(od -An -tu8 -N8 "$1" | tr -d ' ')
    [[ -n $n ]] && ! od -An -v -f -j $((8 + n)) "$1" | grep -qiE 'nan|inf'
}

TINY=(--device cpu -q --batch 64 --width 16 --depth 2 --emb 8 --log-every 5)

# 1. kill -9 at random moments, 20 times.
for i in $(seq 1 20); do
    dir=$T/kill$i
    mkdir -p "$dir"
    "$D" train "${TINY[@]}" --steps 1000000 --save-every 5 --out "$dir/run.safetensors" 2>/dev/null &
    pid=$!
    sleep "0.$((RANDOM % 6 + 3))"
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    # A stray temporary file that looks newer than anything else must be ignored.
    printf 'partial' >"$dir/run-step99999999.safetensors.tmp-1-1"
    shopt -s nullglob
    ckpts=("$dir"/run-step[0-9]*.safetensors) # the glob sorts: 8-digit steps sort by step
    shopt -u nullglob
    newest=
    ((${#ckpts[@]})) && newest=$(basename "${ckpts[-1]}")
    [[ -n $newest ]] || {
        echo "skip kill $i: killed before the first checkpoint"
        continue
    }
    k=$(step_of "$dir/$newest")
    # --keep 2: at most one more while the newest is committed and the oldest not yet removed.
    n=${#ckpts[@]}
    ((n <= 3)) || fail "kill $i: $n periodic checkpoints left with --keep 2"
    if ! "$D" train --device cpu -q --resume "$dir" --steps $((k + 3)) --out "$dir/resumed.safetensors" \
        >/dev/null 2>"$T/err"; then
        fail "kill $i: --resume $dir (newest $newest) failed:"
        sed 's/^/    /' "$T/err" >&2
    elif [[ $(step_of "$dir/resumed.safetensors") != $((k + 3)) ]]; then
        fail "kill $i: resumed from the wrong checkpoint (want step $k + 3)"
    else
        echo "ok   kill -9 #$i: resumed from $newest (step $k)"
    fi
    rm -rf "$dir"
done

# 2. SIGINT (twice) and SIGTERM at random moments: exit 130 / 143 soon after, and the checkpoint
# resumes bit for bit (to 20 steps past it, against a straight run of as many steps).
MID=(--device cpu -q --batch 256 --width 64 --depth 3 --log-every 10)
for sig in INT INT TERM; do
    want=130
    [[ $sig == TERM ]] && want=143
    rm -f "$T/int.safetensors"
    "$D" train "${MID[@]}" --steps 1000000 --out "$T/int.safetensors" 2>"$T/err" &
    pid=$!
    sleep "$((RANDOM % 2 + 1)).$((RANDOM % 10))"
    kill -$sig $pid
    t0=$SECONDS
    wait $pid
    rc=$?
    if [[ $rc -ne $want ]] || ! grep -q "resume with: diffcl train --resume" "$T/err" ||
        ((SECONDS - t0 > 10)); then
        fail "SIG$sig: exit $rc (want $want) after $((SECONDS - t0)) s, stderr:"
        sed 's/^/    /' "$T/err" >&2
        continue
    fi
    k=$(step_of "$T/int.safetensors")
    "$D" train "${MID[@]}" --steps $((k + 20)) --out "$T/straight.safetensors" >/dev/null 2>&1
    "$D" train --device cpu -q --resume "$T/int.safetensors" --steps $((k + 20)) \
        --out "$T/resumed.safetensors" >/dev/null 2>&1
    if cmp -s "$T/straight.safetensors" "$T/resumed.safetensors"; then
        echo "ok   SIG$sig at step $k: exit $want; resumed to $((k + 20)) = straight run, byte for byte"
    else
        fail "SIG$sig at step $k: the resumed run differs from the straight one"
    fi
done

# 3. Divergence: exit 7, and the checkpoint holds no NaN or Inf.
"$D" train "${TINY[@]}" --steps 300 --lr 1e6 --save-every 5 --out "$T/div.safetensors" 2>"$T/err"
rc=$?
if [[ $rc -ne 7 ]] || ! grep -q "training diverged" "$T/err"; then
    fail "--lr 1e6: exit $rc (want 7), stderr:"
    sed 's/^/    /' "$T/err" >&2
elif ! all_finite "$T/div.safetensors"; then
    fail "--lr 1e6: the saved checkpoint holds a NaN or Inf"
else
    echo "ok   --lr 1e6: exit 7, the checkpoint (step $(step_of "$T/div.safetensors")) is finite"
fi

# 4. A resume that contradicts the checkpoint is a usage error naming the difference.
"$D" train "${TINY[@]}" --steps 10 --out "$T/base.safetensors" >/dev/null 2>&1
for args in "--seed 9:seed" "--data moons:dataset" "--process ve:process" "--width 32:network"; do
    flag=${args%%:*} word=${args##*:}
    # shellcheck disable=SC2086
    "$D" train --device cpu -q --resume "$T/base.safetensors" --steps 20 $flag \
        --out "$T/x.safetensors" 2>"$T/err"
    rc=$?
    if [[ $rc -ne 2 ]] || ! grep -q "$word" "$T/err"; then
        fail "--resume with $flag: exit $rc (want 2 naming the $word), stderr:"
        sed 's/^/    /' "$T/err" >&2
    else
        echo "ok   --resume with $flag: exit 2 naming the $word"
    fi
done

if ((failures)); then
    echo "$failures failure(s)" >&2
    exit 1
fi
echo "all resume cases passed"
