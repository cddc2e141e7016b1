#!/usr/bin/env bash
# Fails when a comment or doc cites a document that is not in this repository: the old design
# notes, the reference notes, or the folder of notes that sits beside a working checkout but is not
# part of a clone. Comments must state the fact they rely on, or cite this repository's
# files or public sources (papers, format specifications, URLs).
#
#   tools/check_citations.sh     # prints each offending file:line and exits 1; exit 0 when clean
#
# Words that merely contain the names ("dereference", "shared by", "Design decisions") pass: the
# pattern wants the design notes' name as a whole upper-case word, and the two folders' names
# followed by a slash at the start of a word. The names are spelled in pieces below so that this
# file does not cite them itself.
set -euo pipefail

cd "$(dirname "$0")/.."

design=DES; design+=IGN
ref=refer; ref+=ence/
notes=sha; notes+=red
pattern="\\<$design\\>|\\<$ref|\\<$notes/|\\.\\./$notes\\>"
paths=()
for p in host include cl tests tools samples README.md host/README.md cl/README.md; do
    [[ -e $p ]] && paths+=("$p")
done

# -I skips binary files (the figures); this script itself is skipped.
if grep -rnIE --exclude=check_citations.sh "$pattern" "${paths[@]}"; then
    echo "check_citations: the lines above cite documents that are not in this repository;" \
        "state the fact in the file, host/README.md or cl/README.md, or cite a public source" >&2
    exit 1
fi
echo "check_citations: no citations of documents outside the repository"
