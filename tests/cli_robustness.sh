#!/usr/bin/env bash
# Hostile and careless inputs to the CLI, each a regression test of a reliability fix:
# outputs checked before any work (missing folder, wrong extension, read-only folder) in under a
# second; the first SIGINT/SIGTERM stops sample and eval within a step, writing nothing, exit
# 130/143; --out on a FIFO, a character device and a symbolic link; a checkpoint whose config
# does not match its tensors, with NaN weights, with a data string naming a FIFO, or giving NaN
# samples; control bytes in paths escaped; sample --n beyond what the network allows.
#   tests/cli_robustness.sh PATH/TO/diffcl
set -uo pipefail
D=$1
[[ $D == /* ]] || D=$PWD/$D
T=$(mktemp -d "${TMPDIR:-/tmp}/diffcl-robust.XXXXXX")
cleanup() {
    [[ -n ${MNT:-} ]] && umount "$MNT" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
failures=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# expect CODE WORDS MAX_S -- ARGS...: diffcl ARGS exits CODE within MAX_S seconds with WORDS (a
# grep -E pattern) in stderr.
expect() {
    local code=$1 words=$2 max_s=$3
    shift 4
    local t0 t1
    t0=$(date +%s.%N)
    "$D" "$@" >"$T/out" 2>"$T/err" </dev/null
    local rc=$?
    t1=$(date +%s.%N)
    local slow
    slow=$(awk -v a="$t0" -v b="$t1" -v m="$max_s" 'BEGIN { print (b - a > m) }')
    if [[ $rc -ne $code ]] || ! grep -qE -- "$words" "$T/err" || ((slow)); then
        fail "diffcl $* -> exit $rc (want $code, within ${max_s}s: slow=$slow), stderr:"
        sed 's/^/    /' "$T/err" >&2
    else
        echo "ok   exit $rc  diffcl $*"
    fi
}

# A small 2-D model and a small image model.
"$D" train --device cpu --steps 20 --batch 64 --width 16 --log-every 10 \
    --out "$T/m.safetensors" >/dev/null 2>&1 || fail "training the test model"

# ---- outputs checked before any work ----------------------------------------------------------
expect 4 "/nonexistent/x.safetensors.*does not exist" 1 -- train --out /nonexistent/x.safetensors
expect 2 "g.png.*image models" 1 -- sample --device cpu --model "$T/m.safetensors" --out g.png
expect 2 "--loss-plot.*must end in .png" 1 -- train --device cpu --loss-plot "$T/l.txt"
expect 2 "--plot.*must end in .png" 1 -- sample --device cpu --model "$T/m.safetensors" \
    --plot "$T/p.csv"
expect 4 "--out.*that is a folder" 1 -- train --device cpu --out "$T"
# A read-only folder: a read-only tmpfs when this runs as root (root writes into a chmod 555
# folder, and access(2) says so), else a chmod 555 folder.
mkdir -p "$T/ro"
if ((EUID == 0)) && mount -t tmpfs -o ro,size=64k tmpfs "$T/ro" 2>/dev/null; then
    MNT=$T/ro
    expect 4 "--loss-plot.*not writable" 1 -- train --device cpu --loss-plot "$T/ro/l.png"
    umount "$MNT" && MNT=
elif ((EUID != 0)); then
    chmod 555 "$T/ro"
    expect 4 "--loss-plot.*not writable" 1 -- train --device cpu --loss-plot "$T/ro/l.png"
    chmod 755 "$T/ro"
else
    echo "note: cannot mount a read-only tmpfs as root; the read-only case is skipped"
fi

# A full disk (a 256 KiB tmpfs, as root): a full file system is refused before the work; a save
# that does not fit fails with the bytes needed, the old checkpoint byte-identical, no temp file.
mkdir -p "$T/small"
if ((EUID == 0)) && mount -t tmpfs -o size=256k tmpfs "$T/small" 2>/dev/null; then
    MNT=$T/small
    cp "$T/m.safetensors" "$T/small/m.safetensors"
    head -c 200000 /dev/zero >"$T/small/filler"
    expect 4 "No space left on device \(.*bytes needed" 60 -- train --device cpu --steps 1 \
        --width 64 --out "$T/small/m.safetensors"
    cmp -s "$T/m.safetensors" "$T/small/m.safetensors" || fail "the old checkpoint changed"
    leftover=("$T"/small/*.tmp-*)
    [[ -e ${leftover[0]} ]] && fail "temp file left on the full disk: ${leftover[*]}"
    head -c 1000000 /dev/zero >>"$T/small/filler" 2>/dev/null
    expect 4 "file system .* is full" 1 -- train --device cpu --out "$T/small/x.safetensors"
    umount "$MNT" && MNT=
fi

# ---- signals: sample and eval stop within a step and write nothing ------------------------------
# stop_after SIG WANT ARGS...: runs diffcl ARGS (long), sends SIG once sampling runs, wants exit
# WANT within 10 s of the signal, no file at $T/sig.csv and no temp file.
stop_after() {
    local sig=$1 want=$2
    shift 2
    "$D" "$@" >/dev/null 2>"$T/err" &
    local pid=$! waited=0
    # Until sampling has started (its log line; with -q there is none: 3 s), so the handlers are
    # installed whatever the machine's load.
    if [[ " $* " == *" -q "* ]]; then
        sleep 3
    else
        while ! grep -q "sampling" "$T/err" && ((waited < 300)); do
            sleep 0.1
            waited=$((waited + 1))
        done
        sleep 0.5
        waited=0
    fi
    kill -"$sig" "$pid"
    while kill -0 "$pid" 2>/dev/null && ((waited < 100)); do
        sleep 0.1
        waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        fail "diffcl $* still running 10 s after SIG$sig"
        kill -9 "$pid"
    fi
    wait "$pid"
    local rc=$?
    local left=("$T"/sig.csv*)
    if [[ $rc -ne $want || -e ${left[0]} ]]; then
        fail "diffcl $* after SIG$sig: exit $rc (want $want), left: ${left[*]}"
        sed 's/^/    /' "$T/err" >&2
    elif ! grep -q "nothing was written" "$T/err"; then
        fail "diffcl $* after SIG$sig did not say that nothing was written"
    else
        echo "ok   exit $rc  SIG$sig to diffcl $*"
    fi
}
long=(--device cpu --model "$T/m.safetensors" --n 20000 --steps 100000)
stop_after INT 130 sample "${long[@]}" --out "$T/sig.csv"
stop_after TERM 143 sample "${long[@]}" --out "$T/sig.csv"
stop_after INT 130 sample -q "${long[@]}" --out "$T/sig.csv" # the bar hidden: still polled
stop_after TERM 143 eval "${long[@]}"

# ---- special files as --out ---------------------------------------------------------------------
one=(train --device cpu --steps 1 --batch 8 --width 8)
mkfifo "$T/fifo"
cat "$T/fifo" >"$T/from_fifo" &
reader=$!
expect 0 "" 60 -- "${one[@]}" --out "$T/fifo"
wait "$reader"
[[ -p $T/fifo && -s $T/from_fifo ]] || fail "--out FIFO: not written through the FIFO"
cp "$T/m.safetensors" "$T/real.safetensors"
ln -s real.safetensors "$T/link.safetensors"
expect 0 "" 60 -- "${one[@]}" --out "$T/link.safetensors"
[[ -L $T/link.safetensors ]] || fail "--out LINK: the link was replaced"
cmp -s "$T/m.safetensors" "$T/real.safetensors" && fail "--out LINK: its target was not replaced"
if mknod "$T/null" c 1 3 2>/dev/null; then
    expect 0 "" 60 -- "${one[@]}" --out "$T/null"
    [[ -c $T/null ]] || fail "--out on a character device replaced it"
fi
# No temp file anywhere.
temps=("$T"/*.tmp-* "$T"/.*.tmp-*)
for t in "${temps[@]}"; do [[ -e $t ]] && fail "temp file left: $t"; done

# ---- hostile checkpoints (crafted with python3 when it is there) -------------------------------
# craft SRC DST PY: DST is SRC with its safetensors header (a dict h) and float data (a list x)
# changed by the Python statements PY.
craft() {
    python3 - "$1" "$2" "$3" <<'EOF'
import json, struct, sys, math
src, dst, code = sys.argv[1:4]
b = open(src, 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
data = bytearray(b[8 + n:])
cfg = json.loads(h['__metadata__']['diffcl'])
x = list(struct.unpack('<%df' % (len(data) // 4), data))
exec(code)
h['__metadata__']['diffcl'] = json.dumps(cfg, separators=(',', ':'))
head = json.dumps(h, separators=(',', ':')).encode()
head += b' ' * (-len(head) % 8)
open(dst, 'wb').write(struct.pack('<Q', len(head)) + head + struct.pack('<%df' % len(x), *x))
EOF
}
if command -v python3 >/dev/null 2>&1; then
    M=$T/m.safetensors
    craft "$M" "$T/wide.safetensors" "cfg['net']['width'] = 20000; cfg['net']['depth'] = 8"
    expect 4 "wide.safetensors.*does not match" 2 -- sample --device cpu -m "$T/wide.safetensors" \
        --out "$T/x.csv"
    craft "$M" "$T/wrap.safetensors" "cfg['net']['width'] = 2**32 + 16"
    expect 4 "wrap.safetensors.*out of range" 2 -- sample --device cpu -m "$T/wrap.safetensors" \
        --out "$T/x.csv"
    craft "$M" "$T/nan.safetensors" "x[5] = float('nan')"
    expect 4 "nan.safetensors.*tensor '.*'.*non-finite" 2 -- sample --device cpu \
        -m "$T/nan.safetensors" --out "$T/x.csv"
    expect 4 "nan.safetensors.*non-finite" 2 -- eval --device cpu -m "$T/nan.safetensors"
    # The data string names a FIFO with no writer: plotting and eval go on without blocking.
    mkfifo "$T/data.fifo"
    craft "$M" "$T/fifo_data.safetensors" "cfg['data'] = 'csv:$T/data.fifo'"
    expect 0 "" 20 -- sample --device cpu -m "$T/fifo_data.safetensors" --n 50 --steps 2 \
        --plot "$T/p.png"
    expect 4 "FIFO" 20 -- eval --device cpu --model "$T/fifo_data.safetensors" --n 10 --steps 2
    # A prev model with a prev_dt that gives non-finite samples: an error, never "wrote".
    "$D" train --device cpu --process ve --predict prev --steps 5 --batch 8 --width 8 \
        --out "$T/prev.safetensors" >/dev/null 2>&1 || fail "training a prev model"
    craft "$T/prev.safetensors" "$T/tiny_dt.safetensors" "cfg['prev_dt'] = 1e-300"
    expect 4 "non-finite values" 20 -- sample --device cpu -m "$T/tiny_dt.safetensors" --n 50 \
        --steps 5 --out "$T/nf.csv"
    [[ -e $T/nf.csv ]] && fail "non-finite samples were written"
else
    echo "note: no python3; the crafted-checkpoint cases are skipped"
fi

# ---- control bytes are escaped; sample --n names its real maximum -----------------------------
"$D" sample --device cpu -m "$T/m.safetensors" --out $'\x1b[2J/x.csv' 2>"$T/err" >/dev/null
if grep -q $'\x1b' "$T/err" || ! grep -qF '\x1b[2J' "$T/err"; then
    fail "a path with ESC was echoed raw: $(cat -v "$T/err")"
else
    echo "ok   control bytes escaped"
fi
"$D" train --device cpu --steps 1 --out "$T/w128.safetensors" >/dev/null 2>&1
expect 2 "--n 4194304: this model draws at most [0-9]+ samples" 5 -- sample --device cpu \
    -m "$T/w128.safetensors" --n 4194304 --out "$T/x.csv"

# A U-Net batch whose activations exceed an OpenCL device's largest buffer (but not the kernels'
# 2^32 elements): a usage error, not a device failure with a fall-back to the CPU. Run only on a
# device whose max allocation is below the 15.6 GB asked for.
max_gib=$("$D" devices 2>/dev/null | awk '/^\[[0-9]+\] cl:/ { on = 1 } on && /max allocation/ {
    v = $3; if ($4 == "MiB") v /= 1024; if ($4 == "TiB") v *= 1024; print int(v); exit }')
if [[ -n $max_gib ]] && ((max_gib < 15)); then
    { printf '\x00\x00\x08\x03\x00\x00\x00\x04\x00\x00\x00\x1c\x00\x00\x00\x1c'
      head -c 3136 /dev/zero; } >"$T/img.idx"
    DIFFCL_AUTO=opencl expect 2 "too large for device cl:" 60 -- train --device auto -q \
        --data "idx:$T/img.idx" --batch 10000 --steps 1 --out "$T/u.safetensors"
fi

if ((failures)); then
    echo "$failures case(s) failed" >&2
    exit 1
fi
echo "all cases passed"
