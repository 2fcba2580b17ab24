#!/usr/bin/env bash
# Builds both firmware images and runs them under QEMU (MPS2 AN386: Cortex-M4F, 64 KB of RAM
# by memory.x), failing when their output is not what it should be.
#   1. train: trains on 300 names in flash; must report that the loss fell.
#   2. infer: samples from a model trained on the host and exported with `charmlp export`.
#   3. check: the fast path against the PyTorch reference state in flash; every row must be
#      within tolerance, as `charmlp check` requires on the host.
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== host: train a model and export it as Rust for the inference image"
# From the project root: this directory's .cargo/config.toml would build the host tool for the
# Cortex-M target.
charmlp() { (cd .. && cargo run --quiet --release -p charmlp -- "$@"); }
charmlp train --steps 20000 --seed 42 --out "$work/model.safetensors" > "$work/host-train.log"
grep '^loss:' "$work/host-train.log"
charmlp export --lang rust --model "$work/model.safetensors" --out "$PWD/src/bin/infer/model.rs"

echo "== build"
cargo build --quiet --release --bins
elf_dir=target/thumbv7em-none-eabihf/release

for image in train infer check; do
    echo "== $image: sizes (bytes, from size -A)"
    size -A "$elf_dir/$image" | awk -v image="$image" '
        $1 == ".vector_table" || $1 == ".text" || $1 == ".rodata" { flash += $2 }
        $1 == ".data" { flash += $2; ram += $2 }
        $1 == ".bss" || $1 == ".uninit" { ram += $2 }
        $1 ~ /^\.(vector_table|text|rodata|data|bss|uninit)$/ { printf "  %-14s %7d\n", $1, $2 }
        END { printf "  flash (.vector_table+.text+.rodata+.data) %d, static RAM (.data+.bss+.uninit) %d\n", flash, ram }'
    echo "== $image: run under QEMU"
    timeout 600 cargo run --quiet --release --bin "$image" | tee "$work/$image.log"
done

fail() { echo "firmware/run.sh: $*" >&2; exit 1; }
grep -q '^result: the loss fell$' "$work/train.log" || fail "training image: the loss did not fall"
grep -q '^result: the model beats a uniform guess$' "$work/infer.log" || fail "inference image: bad model"
grep -q "^largest shape's file length: refused" "$work/infer.log" ||
    fail "inference image: Shape::file_len wrapped on a 32-bit target"
grep -q '^result: 15 of 15 tensors approximate$' "$work/check.log" ||
    fail "check image: the fast path differs from PyTorch on the device"
grep -q '^stack high-water mark: [0-9]* bytes$' "$work/check.log" || fail "check: no stack measure"
for image in train infer; do
    names=$(grep -c '^name: [a-z]*$' "$work/$image.log" || true)
    [ "$names" -ge 5 ] || fail "$image image: $names names, expected at least 5"
    grep -q '^stack high-water mark: [0-9]* bytes$' "$work/$image.log" || fail "$image: no stack measure"
done
echo "firmware: the three images ran as expected"
