#!/usr/bin/env bash
# Builds the firmware images and runs them under QEMU (MPS2 AN386: Cortex-M4F, 64 KB of RAM by
# memory-an386.x; the micro:bit: Cortex-M0), failing when their output is not what it should be.
#   1. train: trains on 300 names in flash; must report that the loss fell.
#   2. infer: samples from a model trained on the host and exported with `charmlp export`; built
#      for size, its flash must fit 40 KB.
#   3. check: the fast path against the PyTorch reference state in flash; every row must be
#      within tolerance, as `charmlp check` requires on the host.
#   4. recipe: makemore's recipe on names.txt packed in flash (`charmlp pack`), 20,000 steps;
#      its losses must be the host's `train --steps 20000` to within 0.01, val at most 2.25.
#   5. count: instructions per training step and per sampled name, under QEMU's -icount, and
#      the time they take at 64 and 168 MHz at 1 cycle per instruction (a lower bound).
#   6. adapt: the inference image's model adapted to 247 Japanese given names in flash, every
#      layer trained and then the embedding and first layer frozen, under -icount; its losses
#      before must be the host's `eval`, and its loss on the new words must fall.
#   7. int8: the inference image's model quantised (`charmlp export --int8`), integer inference
#      on the Cortex-M0 (QEMU microbit, in 32 KB of flash and 8 KB of RAM) and on the
#      Cortex-M4F, under -icount; its validation loss and names must be the host's exactly.
#   Then train and count on the Cortex-M3 (lm3s6965evb, f32 in software), the Cortex-M7
#   (mps2-an500), the Cortex-M33 (mps2-an505), the Cortex-M55 (mps3-an547) and RISC-V
#   (rv32imac, QEMU virt; firmware-riscv/): the train image must print the Cortex-M4F's losses
#   and names exactly.
# It ends with one table of every image: flash, RAM, stack, instructions, result.
#
#   bash firmware/run.sh recipe    the whole recipe alone: 200,000 steps (about 18 minutes of
#                                  QEMU), val at most 2.17 (PyTorch's peer: 2.159)
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
names_txt=$PWD/../../shared/data/names.txt

# From the project root: this directory's .cargo/config.toml would build the host tool for the
# Cortex-M target.
charmlp() { (cd .. && cargo run --quiet --release -p charmlp -- "$@"); }

# Flash and static RAM of image $1 (built in $2, by default the Cortex-M4F's directory), as
# `size -A` gives its sections; sets $flash and $ram.
sizes() {
    local elf=${2:-$elf_dir}/$1
    echo "== $1: sizes (bytes, from size -A)"
    # (.init.rust and .eh_frame are riscv-rt's, .vector_table cortex-m-rt's.)
    size -A "$elf" | awk '
        $1 ~ /^\.(vector_table|init\.rust|text|rodata|eh_frame|data|bss|uninit)$/ {
            printf "  %-14s %7d\n", $1, $2 }'
    read -r flash ram < <(size -A "$elf" | awk '
        $1 ~ /^\.(vector_table|init\.rust|text|rodata|eh_frame)$/ { flash += $2 }
        $1 == ".data" { flash += $2; ram += $2 }
        $1 == ".bss" || $1 == ".uninit" { ram += $2 }
        END { print flash + 0, ram + 0 }')
    echo "  flash (code, read-only data and .data) $flash, static RAM (.data+.bss+.uninit) $ram"
}

fail() { echo "firmware/run.sh: $*" >&2; exit 1; }
elf_dir=target/thumbv7em-none-eabihf/release

# The stack high-water mark an image printed in log $1.
stack_of() { awk '/^stack high-water mark: [0-9]+ bytes$/ { print $4 }' "$1"; }

# One row of the closing table: target (QEMU machine), core, image, flash, static RAM, stack,
# instructions (per what), result. CI logs it on every run, so that growth is seen.
table=$work/table
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$table"; }
print_table() {
    echo "== firmware: every image (bytes; instructions under QEMU's -icount)"
    { printf 'target\tcore\timage\tflash\tstatic RAM\tstack\tinstructions\tresult\n'; cat "$table"; } |
        awk -F '\t' '{ line[NR] = $0; for (i = 1; i <= NF; i++) if (length($i) > w[i]) w[i] = length($i) }
            END { for (r = 1; r <= NR; r++) { n = split(line[r], f, "\t")
                for (i = 1; i <= n; i++) printf "%-*s%s", w[i], f[i], (i < n ? "  " : "\n") } }'
}

# The recipe image for $1 steps, run; its losses checked against the host's same run, val
# against $2.
recipe() {
    local steps=$1 val_max=$2
    echo "== host: pack names.txt, and the same recipe for $steps steps"
    charmlp pack --data "$names_txt" --out "$work/names.cmlw"
    charmlp train --data "$names_txt" --steps "$steps" --seed 42 --out "$work/host-recipe.safetensors" \
        > "$work/host-recipe.log"
    grep '^loss:' "$work/host-recipe.log"
    CHARMLP_WORDS=$work/names.cmlw CHARMLP_RECIPE_STEPS=$steps \
        cargo build --quiet --release --bin recipe
    sizes recipe
    [ "$flash" -le $((512 * 1024)) ] || fail "recipe: flash $flash over 512 KB"
    echo "== recipe: run under QEMU"
    local start=$SECONDS
    CHARMLP_WORDS=$work/names.cmlw CHARMLP_RECIPE_STEPS=$steps \
        timeout 3600 cargo run --quiet --release --bin recipe | tee "$work/recipe.log"
    echo "recipe: $((SECONDS - start)) s under QEMU"
    grep -q '^result: done$' "$work/recipe.log" || fail "recipe: did not finish"
    local stack
    stack=$(stack_of "$work/recipe.log")
    [ -n "$stack" ] || fail "recipe: no stack measure"
    echo "recipe: RAM static $ram + stack $stack = $((ram + stack)) bytes of 65536"
    [ $((ram + stack)) -le 65536 ] || fail "recipe: RAM over 64 KB"
    # Device and host losses, split by split, and val against its bound.
    awk -v val_max="$val_max" '
        FNR == NR && /^loss:/ { host["train"] = $3; host["val"] = $5; host["test"] = $7; next }
        /^(train|val|test) loss [0-9.]+$/ {
            d = $3 - host[$1]; if (d < 0) d = -d
            printf "recipe: %s loss %s on the device, %s on the host\n", $1, $3, host[$1]
            if (d > 0.01) { print "recipe: " $1 " differs from the host by more than 0.01"; bad = 1 }
            if ($1 == "val" && $3 > val_max) { print "recipe: val above " val_max; bad = 1 }
            seen++
        }
        END { exit (bad || seen != 3) }' "$work/host-recipe.log" "$work/recipe.log" ||
        fail "recipe: losses not as they should be"
    row mps2-an386 M4F recipe "$flash" "$ram" "$stack" - \
        "$steps steps: val $(awk '/^val loss/ { print $3 }' "$work/recipe.log")"
    echo "== count: instructions per step and per name, under QEMU's -icount"
    CHARMLP_WORDS=$work/names.cmlw cargo build --quiet --release --bin count
    timeout 600 qemu-system-arm -cpu cortex-m4 -machine mps2-an386 -nographic \
        -semihosting-config enable=on,target=native -icount shift=0,align=off,sleep=off \
        -kernel "$elf_dir/count" | tee "$work/count.log"
    awk '/^instructions per (training step|sampled name):/ {
            printf "  %s: %.1f ms at 64 MHz, %.1f ms at 168 MHz, at 1 cycle per instruction\n",
                ($3 == "training" ? "a step" : "a name"), $5 / 64e3, $5 / 168e3 }' "$work/count.log"
    grep -q '^instructions per training step: [1-9][0-9]*$' "$work/count.log" ||
        fail "count: no instruction count"
    row mps2-an386 M4F count - - - \
        "$(awk '/^instructions per training step:/ { s = $5 } /^instructions per sampled name:/ { n = $5 }
            END { print s " a step, " n " a name" }' "$work/count.log")" counted
}

if [ "${1:-}" = recipe ]; then
    recipe 200000 2.17
    print_table
    echo "firmware: the whole recipe ran as expected"
    exit 0
fi

echo "== host: train a model and export it as Rust for the inference image"
charmlp train --steps 20000 --seed 42 --out "$work/model.safetensors" > "$work/host-train.log"
grep '^loss:' "$work/host-train.log"
charmlp export --lang rust --model "$work/model.safetensors" --out "$PWD/src/bin/infer/model.rs"
charmlp export --int8 --lang rust --model "$work/model.safetensors" --out "$PWD/src/bin/int8/model.rs"

echo "== build"
cargo build --quiet --release --bins
# The f32 inference image for size (Cargo.toml's profile.size): its flash must fit 40 KB.
cargo build --quiet --profile size --bin infer
size_dir=target/thumbv7em-none-eabihf/size

declare -A image_flash image_ram
for image in train infer check; do
    dir=$elf_dir
    [ "$image" = infer ] && dir=$size_dir
    sizes "$image" "$dir"
    image_flash[$image]=$flash image_ram[$image]=$ram
    echo "== $image: run under QEMU"
    timeout 600 qemu-system-arm -cpu cortex-m4 -machine mps2-an386 -nographic \
        -semihosting-config enable=on,target=native -kernel "$dir/$image" | tee "$work/$image.log"
done
[ "${image_flash[infer]}" -le 40960 ] || fail "inference image: flash ${image_flash[infer]} over 40 KB"

grep -q '^result: the loss fell$' "$work/train.log" || fail "training image: the loss did not fall"
grep -q "^examples: the names' text gives the table's$" "$work/train.log" ||
    fail "training image: name_examples() is not EXAMPLES"
grep -q '^result: the model beats a uniform guess$' "$work/infer.log" || fail "inference image: bad model"
grep -q "^largest shape's file length: refused" "$work/infer.log" ||
    fail "inference image: Shape::file_len wrapped on a 32-bit target"
grep -q '^result: 15 of 15 tensors approximate$' "$work/check.log" ||
    fail "check image: the fast path differs from PyTorch on the device"
for image in train infer; do
    names=$(grep -c '^name: [a-z]*$' "$work/$image.log" || true)
    [ "$names" -ge 5 ] || fail "$image image: $names names, expected at least 5"
done
for image in train infer check; do
    stack=$(stack_of "$work/$image.log")
    [ -n "$stack" ] || fail "$image: no stack measure"
    [ $((image_ram[$image] + stack)) -le 65536 ] || fail "$image: RAM over 64 KB"
done
row mps2-an386 M4F train "${image_flash[train]}" "${image_ram[train]}" "$(stack_of "$work/train.log")" - \
    "the loss fell"
row mps2-an386 M4F infer "${image_flash[infer]}" "${image_ram[infer]}" "$(stack_of "$work/infer.log")" - \
    "loss $(awk '/^loss over/ { print $NF }' "$work/infer.log")"
row mps2-an386 M4F check "${image_flash[check]}" "${image_ram[check]}" "$(stack_of "$work/check.log")" - \
    "15 of 15 tensors as PyTorch's"

# int8 inference (the inference image's model quantised) on the Cortex-M0 and the Cortex-M4F,
# under -icount. Its loss (as a fixed-point sum) and its names must be the host's exactly; the
# Cortex-M0 image must fit 32 KB of flash (its memory layout holds no more) and 8 KB of RAM.
int8() {
    echo "== int8: the host's loss and names of the quantised model"
    charmlp pack --only val --out "$work/val.cmlw"
    charmlp eval --int8 --json --model "$work/model.safetensors" > "$work/host-int8.json"
    local host_loss
    host_loss=$(sed -n 's/.*"val":{"bits_q16":\([0-9]*\),"loss":\([0-9.]*\),"n":\([0-9]*\)}.*/bits_q16 \1 over \3 examples/p' \
        "$work/host-int8.json")
    [ -n "$host_loss" ] || fail "int8: no int8 val loss from the host's eval --json"
    echo "host: int8 val loss as $host_loss"
    charmlp sample --int8 -n 8 --seed 42 --model "$work/model.safetensors" 2> /dev/null |
        cut -f1 > "$work/host-int8-names"
    cat "$work/host-int8-names"
    local board triple machine core ram_max flash_max log stack
    for board in microbit mps2-an386; do
        case $board in
            microbit) triple=thumbv6m-none-eabi machine=(-machine microbit) core=M0
                ram_max=8192 flash_max=32768 ;;
            mps2-an386) triple=thumbv7em-none-eabihf machine=(-cpu cortex-m4 -machine mps2-an386)
                core=M4F ram_max=65536 flash_max=$((1024 * 1024)) ;;
        esac
        CHARMLP_WORDS=$work/val.cmlw cargo build --quiet --release --bin int8 --target "$triple"
        sizes int8 "target/$triple/release"
        echo "== int8 on the $board ($core): run under QEMU's -icount"
        log=$work/int8-$board.log
        timeout 600 qemu-system-arm "${machine[@]}" -nographic \
            -semihosting-config enable=on,target=native -icount shift=0,align=off,sleep=off \
            -kernel "target/$triple/release/int8" | tee "$log"
        grep -q '^result: done$' "$log" || fail "int8 on the $board: did not finish"
        grep -q "^int8 val loss: [0-9]*\.[0-9]* ($host_loss)\$" "$log" ||
            fail "int8 on the $board: the loss is not the host's ($host_loss)"
        sed -n 's/^name: //p' "$log" | diff - "$work/host-int8-names" ||
            fail "int8 on the $board: the names are not the host's"
        stack=$(stack_of "$log")
        [ -n "$stack" ] || fail "int8 on the $board: no stack measure"
        echo "int8 on the $board: flash $flash of $flash_max, RAM static $ram + stack $stack = $((ram + stack)) of $ram_max"
        [ "$flash" -le "$flash_max" ] || fail "int8 on the $board: flash over $flash_max"
        [ $((ram + stack)) -le "$ram_max" ] || fail "int8 on the $board: RAM over $ram_max"
        row "$board" "$core" int8 "$flash" "$ram" "$stack" \
            "$(awk '/^instructions per example/ { e = $NF } /^instructions per sampled name/ { n = $5 }
                END { print e " an example, " n " a name" }' "$log")" \
            "val $(awk '/^int8 val loss:/ { print $4 }' "$log"), the host's"
    done
}
# The inference image's model adapted to new words; run under -icount to count its steps.
adapt() {
    local new_words=$PWD/../data/japanese-given-names.txt
    echo "== adapt: the exported model to $(wc -l < "$new_words") new words; the host's losses before"
    charmlp pack --data "$new_words" --alphabet a-z --out "$work/new-words.cmlw"
    charmlp eval --model "$work/model.safetensors" --data "$new_words" > "$work/host-eval.log" \
        2> "$work/host-eval.err" || { cat "$work/host-eval.err" >&2; fail "adapt: the host's eval failed"; }
    cat "$work/host-eval.log"
    CHARMLP_NEW_WORDS=$work/new-words.cmlw cargo build --quiet --release --bin adapt
    sizes adapt
    echo "== adapt: run under QEMU's -icount"
    timeout 600 qemu-system-arm -cpu cortex-m4 -machine mps2-an386 -nographic \
        -semihosting-config enable=on,target=native -icount shift=0,align=off,sleep=off \
        -kernel "$elf_dir/adapt" | tee "$work/adapt.log"
    grep -q '^result: done$' "$work/adapt.log" || fail "adapt: did not finish"
    local stack
    stack=$(stack_of "$work/adapt.log")
    [ -n "$stack" ] || fail "adapt: no stack measure"
    echo "adapt: RAM static $ram + stack $stack = $((ram + stack)) bytes of 65536"
    [ $((ram + stack)) -le 65536 ] || fail "adapt: RAM over 64 KB"
    # The model as exported: the host's losses on the same split, to 0.001. After each of the
    # two runs, each once: lower losses on the new words' train and val splits. Freezing: fewer
    # instructions a step. Every figure a plain number (not NaN or inf) and every line there.
    awk '
        function number(s) { return s ~ /^[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?$/ }
        function no(why) { print "adapt: " why; bad = 1 }
        FNR == NR && /^(train|val|test) / { if (number($2)) host[$1] = $2; next }
        /^losses / && !/^losses [a-z-]+: train [^ ]+ val [^ ]+ test [^ ]+ old [^ ]+$/ {
            no("a losses line not as expected: " $0)
        }
        /^losses before: / {
            for (i = 4; i <= 8; i += 2) {
                split_name = $(i - 1)
                if (!number($i)) { no(split_name " loss before is " $i); continue }
                before[split_name] = $i
                if (split_name == "old") continue
                if (!(split_name in host)) { no("the host printed no " split_name " loss"); continue }
                d = $i - host[split_name]; if (d < 0) d = -d
                if (d > 0.001) no(split_name " loss " $i " before, the host says " host[split_name])
            }
            seen++
        }
        /^losses (all-layers|frozen-below-batch-norm): / {
            run = substr($2, 1, length($2) - 1)
            printf "adapt: %s train %s -> %s, val %s -> %s\n", run, before["train"], $4, before["val"], $6
            if (!number($4) || !number($6) || !($4 + 0 < before["train"] + 0 && $6 + 0 < before["val"] + 0))
                no("the loss did not fall")
            runs[run]++
        }
        /^instructions per step [a-z-]+: [0-9]+$/ { steps[substr($4, 1, length($4) - 1)] = $5 }
        END {
            if (seen != 1) no("not one losses line before")
            if (runs["all-layers"] != 1 || runs["frozen-below-batch-norm"] != 1) no("not each run once")
            all = steps["all-layers"] + 0; frozen = steps["frozen-below-batch-norm"] + 0
            if (!(frozen > 0 && frozen < all)) no("freezing did not cut the instructions a step")
            exit bad
        }' "$work/host-eval.log" "$work/adapt.log" || fail "adapt: losses not as they should be"
    [ "$(grep '^name before:' "$work/adapt.log" | cut -d: -f2)" != \
        "$(grep '^name all-layers:' "$work/adapt.log" | cut -d: -f2)" ] ||
        fail "adapt: the names did not change"
    row mps2-an386 M4F adapt "$flash" "$ram" "$stack" \
        "$(awk '/^instructions per step all-layers:/ { a = $NF } /^instructions per step frozen/ { f = $NF }
            END { print a " a step, " f " frozen" }' "$work/adapt.log")" "the new words' loss fell"
}

# The train image's log $1 on another core ($2 names it): the loss fell, its lines are the
# Cortex-M4F's exactly, and RAM (static $ram + measured stack) fits 64 KB. Sets $stack.
like_the_m4f() {
    grep -q '^result: the loss fell$' "$1" || fail "$2: the loss did not fall"
    local printed='^(step [0-9]+: loss|loss: |calibrated |name: )'
    diff <(grep -E "$printed" "$work/train.log") <(grep -E "$printed" "$1") ||
        fail "$2: its losses or names are not the Cortex-M4F's"
    stack=$(stack_of "$1")
    [ -n "$stack" ] && [ $((ram + stack)) -le 65536 ] || fail "$2: RAM over 64 KB, or no stack measure"
}

# f32 training on other cores: the train image on the Cortex-M3 (lm3s6965evb: no FPU, f32 in
# software), the Cortex-M7 (mps2-an500: the M4F's image as it is), the Cortex-M33 (mps2-an505)
# and the Cortex-M55 (mps3-an547; Armv8-M Mainline code, Helium unused). Each must print the
# M4F's losses and names exactly: IEEE arithmetic, with no fused operations, rounds the same in
# hardware and in software. Then `count`, from the built-in names' training split, counts the
# instructions of a step and of a name on each under -icount.
boards() {
    charmlp pack --only train --out "$work/train.cmlw"
    local board triple machine core log stack
    for board in lm3s6965evb mps2-an500 mps2-an505 mps3-an547; do
        case $board in
            lm3s6965evb) triple=thumbv7m-none-eabi machine=(-machine lm3s6965evb) core=M3 ;;
            mps2-an500) triple=thumbv7em-none-eabihf machine=(-cpu cortex-m7 -machine mps2-an500)
                core=M7 ;;
            mps2-an505) triple=thumbv8m.main-none-eabihf machine=(-machine mps2-an505) core=M33 ;;
            mps3-an547) triple=thumbv8m.main-none-eabihf machine=(-machine mps3-an547) core=M55 ;;
        esac
        # build.rs picks the memory map by target, and by CHARMLP_BOARD for Armv8-M Mainline.
        local board_env=()
        [ "$triple" = thumbv8m.main-none-eabihf ] && board_env=(CHARMLP_BOARD="$board")
        env "${board_env[@]}" cargo build --quiet --release --bin train --target "$triple"
        sizes train "target/$triple/release"
        echo "== train on the $board ($core): run under QEMU"
        log=$work/train-$board.log
        timeout 900 qemu-system-arm "${machine[@]}" -nographic \
            -semihosting-config enable=on,target=native -kernel "target/$triple/release/train" |
            tee "$log"
        like_the_m4f "$log" "train on the $board"
        row "$board" "$core" train "$flash" "$ram" "$stack" - "the M4F's losses and names"
        echo "== count on the $board ($core): run under QEMU's -icount"
        env "${board_env[@]}" CHARMLP_WORDS="$work/train.cmlw" \
            cargo build --quiet --release --bin count --target "$triple"
        log=$work/count-$board.log
        timeout 900 qemu-system-arm "${machine[@]}" -nographic \
            -semihosting-config enable=on,target=native -icount shift=0,align=off,sleep=off \
            -kernel "target/$triple/release/count" | tee "$log"
        grep -q '^instructions per training step: [1-9][0-9]*$' "$log" ||
            fail "count on the $board: no instruction count"
        row "$board" "$core" count - - - \
            "$(awk '/^instructions per training step:/ { s = $5 } /^instructions per sampled name:/ { n = $5 }
                END { print s " a step, " n " a name" }' "$log")" counted
    done
}

# The train image on RISC-V (rv32imac: no FPU, f32 in software; QEMU virt), from
# firmware-riscv/, its own crate (riscv-rt) that includes the same training run: its lines must
# be the Cortex-M4F's exactly. Under -icount, it also counts a step's and a name's instructions
# (minstret).
riscv() {
    echo "== train on RISC-V (rv32imac, QEMU virt): build"
    (cd ../firmware-riscv && cargo build --quiet --release --locked)
    local dir=../firmware-riscv/target/riscv32imac-unknown-none-elf/release
    sizes charmlp-firmware-riscv "$dir"
    echo "== train on RISC-V: run under QEMU's -icount"
    local log=$work/train-riscv.log stack
    timeout 900 qemu-system-riscv32 -machine virt -bios none -nographic \
        -semihosting-config enable=on,target=native -icount shift=0,align=off,sleep=off \
        -kernel "$dir/charmlp-firmware-riscv" | tee "$log"
    like_the_m4f "$log" "train on RISC-V"
    grep -q '^instructions per training step: [1-9][0-9]*$' "$log" ||
        fail "train on RISC-V: no instruction count"
    row virt rv32imac train "$flash" "$ram" "$stack" \
        "$(awk '/^instructions per training step:/ { s = $5 } /^instructions per sampled name:/ { n = $5 }
            END { print s " a step, " n " a name" }' "$log")" "the M4F's losses and names"
}

int8
boards
riscv
adapt
recipe 20000 2.25
print_table
echo "firmware: every image ran as expected"
