#!/usr/bin/env bash
# NumPy on the other side of the model file: in a throwaway venv with numpy and safetensors
# (not torch), scripts/numpy_eval.py computes a freshly trained model's train/val/test losses
# from the file alone; each must equal `charmlp eval`'s to 1e-5. Two models: makemore's names
# (a-z) and a word list whose alphabet has non-ASCII characters, quotes and a backslash.
# Run from the project root with ../shared beside it (CI does).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/numpy-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import numpy, safetensors' 2>/dev/null ||
    "$venv/bin/pip" install --quiet numpy safetensors
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
charmlp() { cargo run --quiet --release -p charmlp -- "$@"; }

names=../shared/data/names.txt
# The census names with a few changed: accents, a quote, a backslash, an emoji.
sed -e 's/^emma$/émma/' -e 's/^anna$/ann"a/' -e 's/^mary$/ma\\ry/' -e 's/^zoe$/zoë😀/' \
    data/census-1990-first-names.txt > "$work/odd.txt"

for data in "$names" "$work/odd.txt"; do
    model="$work/model.safetensors"
    charmlp train --data "$data" --steps 3000 --out "$model" > /dev/null
    charmlp eval --model "$model" --data "$data" --digits 7 > "$work/charmlp.txt"
    "$venv/bin/python" scripts/numpy_eval.py "$model" "$data" > "$work/numpy.txt"
    echo "== $(basename "$data"): charmlp eval | NumPy"
    paste "$work/charmlp.txt" "$work/numpy.txt"
    paste "$work/charmlp.txt" "$work/numpy.txt" | awk '
        $1 != $3 { print "split names differ: " $0; bad = 1 }
        { d = $2 - $4; if (d < 0) d = -d; if (d > 1e-5) { print $1 ": differs by " d; bad = 1 } }
        END { exit bad }'
done
