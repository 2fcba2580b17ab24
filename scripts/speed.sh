#!/usr/bin/env bash
# The README's speed figures, side by side in one loop, three rounds: the machine's FMA peak,
# `charmlp bench` of each build given, the PyTorch and NumPy peers, the full recipe on
# names.txt, `eval` and `sample -n 200000`. Compare ratios within a round, and medians of rounds:
# a busy neighbour core moves every figure.
#
#   bash scripts/speed.sh PYTHON PEAK CHARMLP [OTHER_CHARMLP...]
#
# PYTHON has torch and numpy (python3 -m venv /tmp/peers && /tmp/peers/bin/pip install torch
# numpy); PEAK is ../shared/tools/peak built (cargo build --release in a writable copy); each
# CHARMLP is a release binary (the first is timed for the recipe, eval and sample against the
# second, when given).
set -euo pipefail
python=$1 peak=$2
shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
peers=$here/../shared/peers
names=$here/../shared/data/names.txt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
seconds() { # median of $1 runs of the rest, in seconds
    local runs=$1
    shift
    for _ in $(seq "$runs"); do
        local start end
        start=$(date +%s.%N)
        "$@" > /dev/null 2>&1
        end=$(date +%s.%N)
        echo "$end - $start" | bc
    done | sort -n | sed -n "$(((runs + 1) / 2))p"
}
for round in 1 2 3; do
    echo "== round $round"
    "$peak"
    for bin in "$@"; do
        echo "bench $bin: $("$bin" bench --steps 50000 | grep latency)"
    done
    echo "torch: $("$python" "$peers/torch_step.py" "$names" 3000 1 2>&1 | tail -1)"
    echo "numpy: $(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$python" "$peers/numpy_step.py" "$names" 3000 2>&1 | tail -1)"
    for bin in "$1" "${2:-}"; do
        [ -n "$bin" ] || continue
        model=$work/$(basename "$bin").safetensors
        echo "recipe $bin: $("$bin" train --data "$names" --out "$model" 2>&1 | grep -E '^(time|loss):' | tr '\n' ' ')"
    done
    for bin in "$1" "${2:-}"; do
        [ -n "$bin" ] || continue
        model=$work/$(basename "$1").safetensors
        echo "eval $bin: $(seconds 5 "$bin" eval --model "$model" --data "$names") s"
        echo "sample -n 200000 $bin: $(seconds 3 "$bin" sample --model "$model" -n 200000) s"
    done
done
