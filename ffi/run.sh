#!/usr/bin/env bash
# The C library (charmlp-ffi) from C, on the host and on a Cortex-M4F under QEMU, failing when
# its output is not the CLI's:
#   1. A model trained on names.txt by the CLI, exported as C arrays (`charmlp export --lang c`).
#   2. host: the static library and ffi/examples (demo.c, host.c) built with the system's cc.
#      The tour (demo.c) loads the model file and the arrays and requires the same
#      predictions, then predicts, samples 8 names, fine-tunes on ten names and samples 3
#      more; host.c then refuses the file with a bit flipped, checks that it predicts what the
#      arrays predict for every context, bit for bit, and writes the tuned model.
#      Its names must be `charmlp sample`'s (the model's, and the tuned model's as the CLI
#      reads the file the library wrote), and the fine-tuning must lower the loss.
#   3. Cortex-M4F: the static library for thumbv7em-none-eabihf and the same tour built with
#      arm-none-eabi-gcc (bare metal, no C library; ffi/examples/arm; the model file linked
#      into flash by objcopy) in 64 KB of RAM, run under QEMU (mps2-an386). Its output must be
#      the host's, line for line, and its static RAM plus measured stack within 64 KB.
#   4. The static library for the other thumb targets (Cortex-M0, M3, M33/M55), with sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
names_txt=../shared/data/names.txt
fail() { echo "ffi/run.sh: $*" >&2; exit 1; }
charmlp() { cargo run --quiet --release --locked -p charmlp -- "$@"; }

echo "== a model: names.txt, 20,000 steps, exported as C arrays"
charmlp train --data "$names_txt" --steps 20000 --out "$work/model.safetensors" >/dev/null
charmlp export --model "$work/model.safetensors" --lang c --out "$work/model.h"
charmlp sample --model "$work/model.safetensors" --seed 42 -n 8 >"$work/cli-names.txt"

echo "== host: libcharmlp_ffi.a and ffi/examples built with cc"
cargo build --quiet --release --locked -p charmlp-ffi
cc -std=c11 -Wall -Wextra -Werror -O2 -Iffi/include -I"$work" \
    ffi/examples/demo.c ffi/examples/host.c target/release/libcharmlp_ffi.a -lm -o "$work/host"
"$work/host" "$work/model.safetensors" "$work/tuned.safetensors" | tee "$work/host.log"

# Lines "LABEL i: NAME" of log $2 as NAME alone, in order.
names_of() { awk -v label="$1" '$0 ~ "^" label " [0-9]+: " { sub(/^[^:]*: /, ""); print }' "$2"; }
diff <(names_of name "$work/host.log") "$work/cli-names.txt" ||
    fail "host: the library's names are not charmlp sample's"
charmlp sample --model "$work/tuned.safetensors" --seed 7 -n 3 >"$work/cli-tuned.txt"
diff <(names_of "tuned name" "$work/host.log") "$work/cli-tuned.txt" ||
    fail "host: the tuned model's names are not those charmlp sample draws from its file"
awk '/^loss on ten names: / { before = $5 } /^loss on ten names, tuned: / { after = $6 }
    END { exit !(before + 0 > 0 && after + 0 > 0 && after < before) }' "$work/host.log" ||
    fail "host: fine-tuning did not lower the loss on the ten names"
grep -q '^file and arrays: the same probabilities, bit for bit, for all 19683 contexts$' \
    "$work/host.log" || fail "host: no file-and-arrays check"

echo "== Cortex-M4F: libcharmlp_ffi.a for thumbv7em-none-eabihf, ffi/examples with arm-none-eabi-gcc"
cargo build --quiet --release --locked -p charmlp-ffi --target thumbv7em-none-eabihf
# The model file as an object whose bytes go to flash (.rodata): _binary_model_safetensors_*.
(cd "$work" && arm-none-eabi-objcopy -I binary -O elf32-littlearm -B arm \
    --rename-section .data=.rodata,alloc,load,readonly,data,contents \
    model.safetensors model_file.o)
arm-none-eabi-gcc -std=c11 -Wall -Wextra -Werror -Os -mcpu=cortex-m4 -mthumb -mfloat-abi=hard \
    -mfpu=fpv4-sp-d16 -ffreestanding -nostdlib -ffunction-sections -fdata-sections \
    -Iffi/include -I"$work" ffi/examples/demo.c ffi/examples/arm/main.c "$work/model_file.o" \
    target/thumbv7em-none-eabihf/release/libcharmlp_ffi.a -lgcc \
    -T ffi/examples/arm/link.ld -Wl,--gc-sections -Wl,--no-warn-execstack -o "$work/demo.elf"
read -r flash ram < <(size -A "$work/demo.elf" | awk '
    $1 == ".text" || $1 == ".ARM.exidx" { flash += $2 } $1 == ".data" { flash += $2; ram += $2 }
    $1 == ".bss" { ram += $2 } END { print flash + 0, ram + 0 }')
# What of the flash is the model: the exported arrays and the file's bytes.
model_bytes=$(arm-none-eabi-nm -S -t d "$work/demo.elf" | awk '
    $4 ~ /^charmlp_(C|W1|b1|gain|bias|W2T|b2|bn_mean|bn_var)$/ { arrays += $2 }
    END { print arrays + 0 }')
file_bytes=$(stat -c %s "$work/model.safetensors")
echo "  flash $flash bytes: the model's arrays $model_bytes, its file $file_bytes," \
    "the rest code and tables; static RAM $ram"
echo "== Cortex-M4F: the tour under QEMU (mps2-an386)"
timeout 300 qemu-system-arm -cpu cortex-m4 -machine mps2-an386 -nographic \
    -semihosting-config enable=on,target=native -kernel "$work/demo.elf" | tee "$work/arm.log"
stack=$(awk '/^stack high-water mark: [0-9]+$/ { print $4 }' "$work/arm.log")
[ -n "$stack" ] || fail "Cortex-M4F: no stack high-water mark"
echo "  RAM: static $ram + stack $stack = $((ram + stack)) of 65,536 bytes"
[ $((ram + stack)) -le 65536 ] || fail "Cortex-M4F: more than 64 KB of RAM"
# The tour's lines on the host are those before host.c's own.
diff <(sed '/^one bit flipped/,$d' "$work/host.log") <(grep -v '^stack high-water mark' "$work/arm.log") ||
    fail "Cortex-M4F: the tour's output is not the host's"

echo "== libcharmlp_ffi.a for the other thumb targets"
for target in thumbv6m-none-eabi thumbv7m-none-eabi thumbv8m.main-none-eabihf; do
    cargo build --quiet --release --locked -p charmlp-ffi --target "$target"
    printf '  %-28s %9d bytes\n' "$target" "$(stat -c %s "target/$target/release/libcharmlp_ffi.a")"
done
echo "ffi/run.sh: the host and the Cortex-M4F run the tour alike, with the CLI's names"
