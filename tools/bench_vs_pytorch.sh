#!/usr/bin/env bash
# diffcl against PyTorch (CPU) on the same two models: `diffcl bench train` and its PyTorch peer
# tools/peer_torch.py, run alternately for R rounds, then a table of medians [min-max] and the
# median of the per-round ratios diffcl / PyTorch-best (the faster of 1 and 2 threads that round).
# Not a test and not run by CI: it measures this machine, which should be otherwise idle.
#
#   tools/bench_vs_pytorch.sh [ROUNDS]          (default 5 rounds)
#   tools/bench_vs_pytorch.sh --table OUTDIR    the table again from OUTDIR/results.tsv
#
# Environment:
#   DIFFCL    the diffcl binary (default build-release/diffcl, else build/diffcl; a Release build
#             is what to compare: cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release &&
#             cmake --build build-release --target diffcl)
#   DEVICES   diffcl devices, one `bench train` run each per round (default "cpu"; e.g. "cpu cl:cpu")
#   THREADS   PyTorch thread counts (default "1 2")
#   VENV      the Python venv with torch (default ~/.cache/diffcl-bench-venv). Created on the first
#             run, and torch installed into it (CPU wheels from download.pytorch.org when that
#             answers, else PyPI's torch: several minutes and about 3 GB the first time).
#   PYTHON    the interpreter that creates the venv (default python3)
#   OUT       folder for the raw logs (default build/bench-vs-pytorch-DATE)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${1:-5}
DEVICES=${DEVICES:-cpu}
THREADS=${THREADS:-1 2}
VENV=${VENV:-$HOME/.cache/diffcl-bench-venv}
PYTHON=${PYTHON:-python3}
if [ -z "${DIFFCL:-}" ]; then
  DIFFCL=$ROOT/build-release/diffcl
  [ -x "$DIFFCL" ] || DIFFCL=$ROOT/build/diffcl
fi
OUT=${OUT:-$ROOT/build/bench-vs-pytorch-$(date -u +%Y%m%d-%H%M%S)}

# The table: medians [min-max] over rounds, the median per-round ratio of each diffcl device to
# PyTorch's best of that round, and of each further diffcl device to the first (DEVICES order).
table() { # OUTDIR
  "$PYTHON" - "$1/results.tsv" "$(cat "$1/torch_version" 2>/dev/null || echo '?')" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
metrics = [("mlp_train_steps", "spiral MLP 3x128, training steps/s, batch 1024"),
           ("mlp_sample_samples", "spiral MLP, Euler 100 steps x 10,000 points, samples/s"),
           ("unet_train_images", "Fashion-MNIST U-Net (175,441 params), training images/s, batch 64"),
           ("unet_forward_evals", "same U-Net, forward evaluations/s (Euler, batch 64)")]
variants = []
for r in rows:
    if r[1] not in variants: variants.append(r[1])
dv = [v for v in variants if v.startswith("diffcl_")]
tv = [v for v in variants if v.startswith("torch_")]
val = {(r[0], r[1], r[2]): float(r[3]) for r in rows}
rounds = sorted({r[0] for r in rows}, key=int)
def cell(xs):
    if not xs: return "-"
    f = (lambda x: "%.0f" % x) if max(xs) >= 100 else (lambda x: "%.1f" % x)
    return "%s [%s–%s]" % (f(statistics.median(xs)), f(min(xs)), f(max(xs)))
name = lambda v: ("diffcl `%s`" % v[7:]) if v.startswith("diffcl_") else \
    "PyTorch %s, %s thread%s" % (sys.argv[2], v[6:-3], "" if v[6:-3] == "1" else "s")
def ratio_cell(xs):
    return "**%.2f×** [%.2f–%.2f]" % (statistics.median(xs), min(xs), max(xs)) if xs else "-"
head = ["work"] + [name(v) for v in dv + tv] + ["%s / PyTorch best" % name(v) for v in dv] + \
    ["%s / %s" % (name(v), name(dv[0])) for v in dv[1:]]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for key, label in metrics:
    cells = [label]
    for v in dv + tv:
        cells.append(cell([val[(r, v, key)] for r in rounds if (r, v, key) in val]))
    for v in dv:
        ratios = []
        for r in rounds:
            best = max([val[(r, t, key)] for t in tv if (r, t, key) in val] or [0])
            if best > 0 and (r, v, key) in val: ratios.append(val[(r, v, key)] / best)
        cells.append(ratio_cell(ratios))
    for v in dv[1:]:
        cells.append(ratio_cell([val[(r, v, key)] / val[(r, dv[0], key)] for r in rounds
                                 if (r, v, key) in val and val.get((r, dv[0], key), 0) > 0]))
    print("| " + " | ".join(cells) + " |")
print("\n%d rounds; medians [min–max] over rounds; ratio: the median of per-round ratios." % len(rounds))
EOF
}
if [ "${1:-}" = --table ]; then table "${2:?--table needs the folder of a run}"; exit 0; fi
case $ROUNDS in '' | *[!0-9]* | 0) echo "usage: $0 [ROUNDS >= 1]" >&2; exit 2 ;; esac
[ -x "$DIFFCL" ] || { echo "$0: no diffcl binary at $DIFFCL (build it, or set DIFFCL)" >&2; exit 1; }

if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  echo "== creating $VENV and installing torch (CPU use; several minutes the first time)"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  if ! timeout 300 "$VENV/bin/pip" install -q --index-url https://download.pytorch.org/whl/cpu \
      torch numpy 2>/dev/null; then
    echo "   download.pytorch.org did not answer; installing torch from PyPI"
    "$VENV/bin/pip" install -q torch numpy
  fi
fi
TORCH_VERSION=$("$VENV/bin/python" -c 'import torch; print(torch.__version__)' 2>/dev/null)

mkdir -p "$OUT"
echo "$TORCH_VERSION" > "$OUT/torch_version"
machine() {
  echo "date:  $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "cpu:   $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores available"
  echo "load:  $(uptime | sed 's/.*load average: //') (1, 5, 15 min)"
}
echo "== start"; machine | tee "$OUT/start.txt"
echo "diffcl: $DIFFCL ($("$DIFFCL" --version 2>&1 | head -1)); torch $TORCH_VERSION; $ROUNDS rounds"
echo "logs:   $OUT"

# Each run's log becomes rows "round variant model rate-name value" in results.tsv.
parse() { # round variant log
  awk -v r="$1" -v v="$2" '
    /^== / { m = /U-Net/ ? "unet" : /MLP/ ? "mlp" : m }
    /^train / && m == "mlp"  { print r, v, "mlp_train_steps", $2 }
    /^train / && m == "unet" { print r, v, "unet_train_images", $4 }
    /^sample / && m == "mlp"  { print r, v, "mlp_sample_samples", $2 }
    /^sample / && m == "unet" { print r, v, "unet_forward_evals", $4 }' "$3" >> "$OUT/results.tsv"
}
: > "$OUT/results.tsv"
for r in $(seq 1 "$ROUNDS"); do
  for d in $DEVICES; do
    log=$OUT/r$r-diffcl-${d//:/_}.log
    echo "round $r/$ROUNDS: diffcl $d"
    "$DIFFCL" bench train --model both --device "$d" > "$log" 2> "$log.err" || {
      echo "diffcl bench train --device $d failed; see $log.err" >&2; exit 1; }
    parse "$r" "diffcl_$d" "$log"
  done
  for t in $THREADS; do
    for m in mlp unet; do
      log=$OUT/r$r-torch-$t-$m.log
      echo "round $r/$ROUNDS: torch $t thread(s) $m"
      OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t MKL_NUM_THREADS=$t \
        "$VENV/bin/python" "$ROOT/tools/peer_torch.py" --model "$m" --threads "$t" \
        > "$log" 2> "$log.err" || { echo "peer_torch.py failed; see $log.err" >&2; exit 1; }
      parse "$r" "torch_${t}thr" "$log"
    done
  done
done
echo "== end"; machine | tee "$OUT/end.txt"

table "$OUT" | tee "$OUT/table.md"
