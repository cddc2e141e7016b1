#!/usr/bin/env bash
# Fails when two or more of the library's source files depend on each other in a cycle. A file
# depends on another when its object file uses a symbol the other defines (nm: calls and data,
# including those that arrive through transitive includes), or when it #includes it (host/ and
# include/ headers). tsort(1) reports any loop. Usage: tools/check_cycles.sh [BUILD_DIR]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-$ROOT/build}
OBJDIR=$BUILD/CMakeFiles/diffcl_lib.dir
[[ -d $OBJDIR ]] || { echo "check_cycles: no objects in $OBJDIR (build first)" >&2; exit 2; }

edges=$(mktemp)
trap 'rm -f "$edges" "$edges.def" "$edges.use"' EXIT

# Object files, named by their source path relative to the repository (host/x/y.c).
mapfile -t objs < <(find "$OBJDIR" -name '*.o' | LC_ALL=C sort)
for o in "${objs[@]}"; do
    src=${o#"$OBJDIR"/}
    src=${src%.o}
    src=${src#"$ROOT"/}
    [[ -f $ROOT/$src ]] || continue # generated, or a stale object of a removed file
    nm --defined-only -g "$o" | awk -v f="$src" 'NF == 3 { print $3, f }' >>"$edges.def"
    nm --undefined-only -g "$o" | awk -v f="$src" '{ print $NF, f }' >>"$edges.use"
done
# "user definer" pairs for every symbol one library file uses from another.
LC_ALL=C sort -o "$edges.def" "$edges.def"
LC_ALL=C sort -o "$edges.use" "$edges.use"
LC_ALL=C join "$edges.use" "$edges.def" | awk '$2 != $3 { print $2, $3 }' >>"$edges"

# #include "..." edges between the project's own headers and sources.
cd "$ROOT"
while IFS= read -r f; do
    sed -nE 's/^#include "([^"]+)".*/\1/p' "$f" | while IFS= read -r inc; do
        for dir in host include "$(dirname "$f")"; do
            if [[ -f $dir/$inc ]]; then
                echo "$f $(realpath --relative-to=. "$dir/$inc")"
                break
            fi
        done
    done
done < <(find host include -name '*.[ch]' | LC_ALL=C sort) | awk '$1 != $2' >>"$edges"

n_files=$(tr ' ' '\n' <"$edges" | LC_ALL=C sort -u | wc -l)
if ! out=$(tsort "$edges" 2>&1 >/dev/null) || [[ -n $out ]]; then
    echo "check_cycles: file-level dependency cycle(s):" >&2
    # tsort prints each loop it breaks; show each set of files once.
    echo "$out" | awk '/input contains a loop/ { if (c) print c; c = ""; next }
                       { c = c " " $NF } END { if (c) print c }' |
        while read -r -a files; do printf '%s\n' "${files[@]}" | LC_ALL=C sort | paste -sd' '; done |
        LC_ALL=C sort -u | sed 's/^ *//; s/ / <-> /g; s/^/  /' >&2
    exit 1
fi
echo "check_cycles: no cycles among $n_files files ($(LC_ALL=C sort -u "$edges" | wc -l) dependencies)"
