#!/usr/bin/env bash
# Fuzzes each target for SECONDS (default 60) with cargo fuzz (nightly, AddressSanitizer),
# after seeding its corpus from real files (model files the host trains, names.txt, the built-in
# names) and the committed regression inputs in regressions/TARGET, which every run replays
# first. Fails on any crash; prints the executions of each target.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
root=$(cd .. && pwd)

echo "== seed corpora"
charmlp() { (cd "$root" && cargo run --quiet --release -p charmlp -- "$@"); }
mkdir -p corpus/model_bytes corpus/words corpus/sample_eval corpus/safetensors corpus/packed
charmlp pack --out "$PWD/corpus/packed/builtin.cmlw" > /dev/null
printf 'zoë\njosé\nchloé\nanna\nnoël\némile\nbob\nhélène\njean-luc\nmarie\n' |
    charmlp pack --data - --out "$PWD/corpus/packed/accents.cmlw" > /dev/null
charmlp train --steps 300 --out "$PWD/corpus/safetensors/h64.safetensors" > /dev/null
printf 'zoë\njosé\nchloé\n"x\\y"\nanna\nnoël\némile\nbob\nhélène\njean-luc\n' |
    charmlp train --data - --steps 50 --batch 4 \
    --out "$PWD/corpus/safetensors/accents.safetensors" > /dev/null
# The legacy format's corpus: the committed version-2 file of tests/data (see its README).
cp "$root/tests/data/v2.cmlp" corpus/model_bytes/v2.cmlp
head -c 4096 "$root/../shared/data/names.txt" > corpus/words/names-head.txt
head -c 4096 "$root/data/census-1990-first-names.txt" | sed 's/$/\r/' > corpus/words/census-crlf.txt
printf 'emma\nOlivia\nmary-jane\n\n' > corpus/words/mistakes.txt
printf 'zoë\njosé\n中村\no'"'"'brien\n' > corpus/words/world.txt
head -c 2048 corpus/safetensors/h64.safetensors > corpus/sample_eval/model-prefix
printf 'abcdefghijklmnopqrstuvwxyz' > corpus/sample_eval/letters

echo "== build"
cargo +nightly fuzz build

for target in model_bytes safetensors words sample_eval packed; do
    echo "== fuzz $target for ${seconds}s"
    log=$(mktemp)
    regressions=()
    [ -d "regressions/$target" ] && regressions=("regressions/$target")
    if ! cargo +nightly fuzz run "$target" "corpus/$target" "${regressions[@]}" -- \
        -max_total_time="$seconds" -max_len=65536 \
        > "$log" 2>&1; then
        tail -40 "$log"
        echo "fuzz/run.sh: $target crashed; the input is in fuzz/artifacts/$target" >&2
        exit 1
    fi
    grep -E '^Done [0-9]+ runs' "$log" || { tail -20 "$log"; exit 1; }
    rm -f "$log"
done
