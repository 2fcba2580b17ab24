/* The tour on a host (demo.c), then what a host has room for:
 *   host MODEL.safetensors TUNED.safetensors
 * runs the tour on MODEL (the file the exported arrays came from), refuses MODEL with a bit
 * flipped, checks that MODEL predicts exactly what the arrays predict for every context, and
 * writes the tuned model to TUNED for the CLI. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo.h"
#include "model.h"

void demo_print(const char *text) { puts(text); }

static int fail(const char *what, charmlp_status status) {
    fprintf(stderr, "host: %s: %s\n", what, charmlp_status_text(status));
    return 1;
}

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16;
    unsigned char *bytes = malloc(cap);
    *len = 0;
    size_t got;
    while (bytes && (got = fread(bytes + *len, 1, cap - *len, f)) > 0) {
        *len += got;
        if (*len == cap) bytes = realloc(bytes, cap *= 2);
    }
    fclose(f);
    return bytes;
}

static charmlp_model from_file, from_arrays;

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: host MODEL.safetensors TUNED.safetensors\n");
        return 2;
    }
    size_t len;
    unsigned char *bytes = read_file(argv[1], &len);
    if (!bytes) {
        perror(argv[1]);
        return 1;
    }
    if (charmlp_demo(bytes, len) != 0) return 1;
    charmlp_status s = charmlp_model_load(&from_file, bytes, len);
    if (s != CHARMLP_OK) return fail(argv[1], s);
    /* One flipped bit: refused, and the model loaded before stays. */
    bytes[len / 2] ^= 1;
    s = charmlp_model_load(&from_file, bytes, len);
    printf("one bit flipped in the file: %s\n", charmlp_status_text(s));
    if (s != CHARMLP_ERR_CHECKSUM && s != CHARMLP_ERR_FILE) return 1;
    free(bytes);

    const charmlp_arrays arrays = CHARMLP_ARRAYS;
    s = charmlp_model_load_arrays(&from_arrays, &arrays);
    if (s != CHARMLP_OK) return fail("arrays", s);
    uint8_t ctx[CHARMLP_LIB_CONTEXT];
    size_t contexts = 0;
    for (int a = 0; a < CHARMLP_VOCAB; a++)
        for (int b = 0; b < CHARMLP_VOCAB; b++)
            for (int c = 0; c < CHARMLP_VOCAB; c++) {
                ctx[0] = (uint8_t)a, ctx[1] = (uint8_t)b, ctx[2] = (uint8_t)c;
                float p[CHARMLP_LIB_CAPACITY], q[CHARMLP_LIB_CAPACITY];
                s = charmlp_probs(&from_file, ctx, 1.0f, 0, p, CHARMLP_LIB_CAPACITY);
                if (s != CHARMLP_OK) return fail("probs", s);
                s = charmlp_probs(&from_arrays, ctx, 1.0f, 0, q, CHARMLP_LIB_CAPACITY);
                if (s != CHARMLP_OK) return fail("probs", s);
                if (memcmp(p, q, sizeof(float) * CHARMLP_VOCAB) != 0) {
                    fprintf(stderr, "host: file and arrays differ at context %d %d %d\n", a, b, c);
                    return 1;
                }
                contexts++;
            }
    printf("file and arrays: the same probabilities, bit for bit, for all %zu contexts\n",
           contexts);

    size_t need = 0;
    s = charmlp_model_write(&demo_model, NULL, 0, &need);
    if (s != CHARMLP_ERR_BUFFER) return fail("asking the size", s);
    unsigned char *out = malloc(need);
    s = charmlp_model_write(&demo_model, out, need, &len);
    if (s != CHARMLP_OK) return fail("write", s);
    FILE *f = fopen(argv[2], "wb");
    if (!f || fwrite(out, 1, len, f) != len || fclose(f) != 0) {
        perror(argv[2]);
        return 1;
    }
    free(out);
    printf("tuned model written: %zu bytes\n", len);
    return 0;
}
