/* A tour of the C library, the same on a host (host.c) and on a Cortex-M4F under QEMU
 * (arm/main.c): load a model file and the arrays `charmlp export --lang c` wrote of it and
 * check that they predict alike, predict the next character, sample names, fine-tune on ten
 * names and sample again. No C library is needed: the numbers are formatted here, and the
 * platform prints each line (demo_print).
 *
 * ffi/run.sh builds it both ways and checks its output against the CLI's. */
#include "charmlp.h"
#include "demo.h"
#include "model.h"

_Static_assert(CHARMLP_EMBED == CHARMLP_LIB_EMBED, "the model's embedding is the library's");
_Static_assert(CHARMLP_CONTEXT == CHARMLP_LIB_CONTEXT, "the model's context is the library's");
_Static_assert(CHARMLP_HIDDEN == CHARMLP_LIB_HIDDEN, "the model's hidden width is the library's");
_Static_assert(CHARMLP_VOCAB <= CHARMLP_LIB_CAPACITY, "the library holds the model's symbols");

/* Static, so zeroed before the first load: 18,696 and 25,216 bytes. */
charmlp_model demo_model;
static charmlp_trainer trainer;

/* ---- Output without printf. ---- */
static char line[256];

static char *put_str(char *at, const char *s) {
    while (*s) *at++ = *s++;
    *at = 0;
    return at;
}

static char *put_u64(char *at, uint64_t x) {
    char digits[24];
    int n = 0;
    do {
        digits[n++] = (char)('0' + x % 10);
        x /= 10;
    } while (x);
    while (n) *at++ = digits[--n];
    *at = 0;
    return at;
}

/* x rounded to 4 decimals, as the firmware prints losses. */
static char *put_fixed4(char *at, double x) {
    if (x < 0) {
        *at++ = '-';
        x = -x;
    }
    uint64_t scaled = (uint64_t)(x * 10000.0 + 0.5);
    at = put_u64(at, scaled / 10000);
    *at++ = '.';
    for (uint64_t p = 1000; p; p /= 10) *at++ = (char)('0' + (scaled / p) % 10);
    *at = 0;
    return at;
}

/* A Unicode scalar value as UTF-8. */
static char *put_char(char *at, uint32_t c) {
    if (c < 0x80) {
        *at++ = (char)c;
    } else if (c < 0x800) {
        *at++ = (char)(0xC0 | c >> 6);
        *at++ = (char)(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        *at++ = (char)(0xE0 | c >> 12);
        *at++ = (char)(0x80 | (c >> 6 & 0x3F));
        *at++ = (char)(0x80 | (c & 0x3F));
    } else {
        *at++ = (char)(0xF0 | c >> 18);
        *at++ = (char)(0x80 | (c >> 12 & 0x3F));
        *at++ = (char)(0x80 | (c >> 6 & 0x3F));
        *at++ = (char)(0x80 | (c & 0x3F));
    }
    *at = 0;
    return at;
}

static int failed(const char *call, charmlp_status status) {
    char *at = put_str(line, "failed: ");
    at = put_str(at, call);
    at = put_str(at, ": ");
    put_str(at, charmlp_status_text(status));
    demo_print(line);
    return 1;
}

#define CHECK(call)                                         \
    do {                                                    \
        charmlp_status status_ = (call);                    \
        if (status_ != CHARMLP_OK) return failed(#call, status_); \
    } while (0)

/* ---- Ten of makemore's names, as examples: each letter and the end after its context. ---- */
static const char *const words[] = {"emma",     "olivia",    "ava", "isabella", "sophia",
                                    "charlotte", "mia",      "amelia", "harper", "evelyn"};
enum { WORDS = sizeof words / sizeof words[0], MOST_EXAMPLES = 80 };
static uint8_t contexts[MOST_EXAMPLES][CHARMLP_LIB_CONTEXT];
static uint8_t targets[MOST_EXAMPLES];
static size_t examples;

static int build_examples(void) {
    for (size_t w = 0; w < WORDS; w++) {
        uint8_t context[CHARMLP_LIB_CONTEXT] = {0};
        for (const char *c = words[w];; c++) {
            uint8_t target = 0; /* the boundary, after the last letter */
            if (*c) CHECK(charmlp_token(&demo_model, (uint32_t)(unsigned char)*c, &target));
            if (examples == MOST_EXAMPLES) return failed("build_examples", CHARMLP_ERR_BUFFER);
            for (int k = 0; k < CHARMLP_LIB_CONTEXT; k++) contexts[examples][k] = context[k];
            targets[examples++] = target;
            if (!*c) break;
            for (int k = 0; k + 1 < CHARMLP_LIB_CONTEXT; k++) context[k] = context[k + 1];
            context[CHARMLP_LIB_CONTEXT - 1] = target;
        }
    }
    return 0;
}

static int print_loss(const char *what) {
    double loss;
    CHECK(charmlp_loss(&demo_model, &contexts[0][0], targets, examples, &loss));
    put_fixed4(put_str(line, what), loss);
    demo_print(line);
    return 0;
}

static int print_names(const char *what, uint64_t seed, int n) {
    for (int i = 0; i < n; i++) {
        char name[CHARMLP_NAME_BYTES + 1];
        size_t len;
        CHECK(charmlp_sample(&demo_model, seed, (uint64_t)i, 1.0f, 0, name, sizeof name, &len));
        char *at = put_str(line, what);
        at = put_u64(at, (uint64_t)i);
        at = put_str(at, ": ");
        put_str(at, name);
        demo_print(line);
    }
    return 0;
}

/* A small generator for batch draws (Knuth's MMIX LCG, high bits). */
static uint64_t lcg = 1;
static uint32_t draw_below(uint32_t n) {
    lcg = lcg * 6364136223846793005u + 1442695040888963407u;
    return (uint32_t)((lcg >> 33) % n);
}

/* FNV-1a over the bits of the probabilities of every 10th context: a fingerprint of what the
 * model predicts. */
static int fingerprint(uint32_t *hash, uint32_t *count) {
    *hash = 2166136261u;
    *count = 0;
    for (uint32_t i = 0; i < (uint32_t)CHARMLP_VOCAB * CHARMLP_VOCAB * CHARMLP_VOCAB; i += 10) {
        uint8_t context[CHARMLP_LIB_CONTEXT] = {(uint8_t)(i / (CHARMLP_VOCAB * CHARMLP_VOCAB)),
                                                (uint8_t)(i / CHARMLP_VOCAB % CHARMLP_VOCAB),
                                                (uint8_t)(i % CHARMLP_VOCAB)};
        float probs[CHARMLP_LIB_CAPACITY];
        CHECK(charmlp_probs(&demo_model, context, 1.0f, 0, probs, CHARMLP_LIB_CAPACITY));
        const unsigned char *bytes = (const unsigned char *)probs;
        for (size_t b = 0; b < sizeof(float) * CHARMLP_VOCAB; b++)
            *hash = (*hash ^ bytes[b]) * 16777619u;
        ++*count;
    }
    return 0;
}

int charmlp_demo(const uint8_t *file, size_t file_len) {
    /* The file, then the arrays of the same model into the same storage: the same predictions. */
    uint32_t from_file, from_arrays, counted;
    CHECK(charmlp_model_load(&demo_model, file, file_len));
    if (fingerprint(&from_file, &counted)) return 1;
    const charmlp_arrays arrays = CHARMLP_ARRAYS;
    CHECK(charmlp_model_load_arrays(&demo_model, &arrays));
    if (fingerprint(&from_arrays, &counted)) return 1;
    char *at = put_str(line, "file and arrays: ");
    at = put_str(at, from_file == from_arrays ? "the same" : "different");
    at = put_str(at, " probabilities for ");
    at = put_u64(at, counted);
    put_str(at, " contexts");
    demo_print(line);
    if (from_file != from_arrays) return 1;

    charmlp_shape shape;
    CHECK(charmlp_model_shape(&demo_model, &shape));
    at = put_str(line, "model: ");
    at = put_u64(at, shape.symbols);
    at = put_str(at, " symbols, embedding ");
    at = put_u64(at, shape.embed);
    at = put_str(at, ", context ");
    at = put_u64(at, shape.context);
    at = put_str(at, ", hidden ");
    put_u64(at, shape.hidden);
    demo_print(line);

    /* The three likeliest characters after "emm". */
    uint8_t context[CHARMLP_LIB_CONTEXT];
    CHECK(charmlp_token(&demo_model, 'e', &context[0]));
    CHECK(charmlp_token(&demo_model, 'm', &context[1]));
    CHECK(charmlp_token(&demo_model, 'm', &context[2]));
    float probs[CHARMLP_LIB_CAPACITY];
    CHECK(charmlp_probs(&demo_model, context, 1.0f, 0, probs, CHARMLP_LIB_CAPACITY));
    at = put_str(line, "after emm:");
    for (int rank = 0; rank < 3; rank++) {
        uint32_t best = 0;
        for (uint32_t t = 1; t < shape.symbols; t++)
            if (probs[t] > probs[best]) best = t;
        uint32_t c;
        CHECK(charmlp_character(&demo_model, (uint8_t)best, &c));
        at = put_str(at, " ");
        at = best == 0 ? put_str(at, "(end)") : put_char(at, c);
        at = put_str(at, " ");
        at = put_fixed4(at, probs[best]);
        probs[best] = -1.0f;
    }
    demo_print(line);

    if (print_names("name ", 42, 8)) return 1;

    /* Errors are codes: bytes that are not a model leave the model as it was. */
    static const uint8_t not_a_model[] = "not a model";
    charmlp_status refused = charmlp_model_load(&demo_model, not_a_model, sizeof not_a_model);
    at = put_str(line, "not a model: ");
    put_str(at, charmlp_status_text(refused));
    demo_print(line);
    if (refused != CHARMLP_ERR_FILE) return 1;

    /* Fine-tune on the ten names: 30 steps at 0.1 from the trained model, then calibrate. */
    if (build_examples() || print_loss("loss on ten names: ")) return 1;
    static uint8_t batch_x[CHARMLP_LIB_BATCH][CHARMLP_LIB_CONTEXT], batch_y[CHARMLP_LIB_BATCH];
    for (int step = 1; step <= 30; step++) {
        for (int b = 0; b < CHARMLP_LIB_BATCH; b++) {
            uint32_t i = draw_below((uint32_t)examples);
            for (int k = 0; k < CHARMLP_LIB_CONTEXT; k++) batch_x[b][k] = contexts[i][k];
            batch_y[b] = targets[i];
        }
        float loss;
        CHECK(charmlp_train_step(&demo_model, &trainer, &batch_x[0][0], batch_y, 0.1f, &loss));
        if (step == 1 || step % 10 == 0) {
            at = put_str(line, "step ");
            at = put_u64(at, (uint64_t)step);
            at = put_str(at, " batch loss ");
            put_fixed4(at, loss);
            demo_print(line);
        }
    }
    CHECK(charmlp_calibrate(&demo_model, &contexts[0][0], examples));
    if (print_loss("loss on ten names, tuned: ")) return 1;
    return print_names("tuned name ", 7, 3);
}
