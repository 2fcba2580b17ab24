#!/usr/bin/env bash
# The README's int8 promise on makemore's recipe: the default recipe on names.txt, hidden 64 and
# 200, the model quantised to int8 (`eval --int8`): each split's loss within 0.005 of the f32
# model's.
# Run from the project root with ../shared beside it (CI does).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
charmlp() { cargo run --quiet --release --locked -p charmlp -- "$@"; }

names=../shared/data/names.txt
for hidden in 64 200; do
    echo "== hidden $hidden"
    charmlp train --data "$names" --hidden "$hidden" --out "$work/model.safetensors" > /dev/null
    charmlp eval --int8 --model "$work/model.safetensors" --data "$names" | tee "$work/eval.txt"
    # "val 2.1635  int8 2.1637 (+0.0003)": f32 in $2, int8 in $4.
    awk '
        function plain(s) { return s ~ /^[0-9]+\.[0-9]+$/ }
        $3 == "int8" && plain($2) && plain($4) {
            d = $4 - $2; if (d < 0) d = -d
            if (d >= 0.005) { print "int8: " $1 " differs from f32 by " d; bad = 1 }
            seen++
        }
        END { exit (bad || seen != 3) }' "$work/eval.txt" ||
        { echo "scripts/int8_check.sh: the int8 model is not within 0.005 of the f32 model" >&2; exit 1; }
done
echo "int8: every split of both models within 0.005 of the f32 model's"
