#!/usr/bin/env bash
# Fails when a comment or doc cites a document that is not in this repository: the old design
# notes (DESIGN.md, "DESIGN §4"), reference notes (reference/*.md) or anything under a shared/
# folder outside the tree. Comments must state the fact they rely on, or cite this repository's
# files or public sources (papers, format specifications, URLs).
#
#   tools/check_citations.sh     # prints each offending file:line and exits 1; exit 0 when clean
#
# Words that merely contain these strings ("dereference", "shared by", "Design decisions") pass:
# the pattern wants DESIGN as a whole upper-case word, and reference/ or shared/ starting a word.
set -euo pipefail

cd "$(dirname "$0")/.."

pattern='\<DESIGN\>|\<reference/|\<shared/|\.\./shared\>'
paths=()
for p in host include cl tests tools samples README.md host/README.md cl/README.md; do
    [[ -e $p ]] && paths+=("$p")
done

# -I skips binary files (the figures); this script names the strings it looks for, so it is skipped.
if grep -rnIE --exclude=check_citations.sh "$pattern" "${paths[@]}"; then
    echo "check_citations: the lines above cite documents that are not in this repository;" \
        "state the fact in the file, host/README.md or cl/README.md, or cite a public source" >&2
    exit 1
fi
echo "check_citations: no citations of documents outside the repository"
