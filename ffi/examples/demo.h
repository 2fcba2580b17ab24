/* The tour of demo.c, and what a platform gives it. */
#ifndef CHARMLP_DEMO_H
#define CHARMLP_DEMO_H

#include "charmlp.h"

/* Runs the tour on a model file's bytes (the file the exported arrays of model.h were
 * written from); 0 when every call did what it should. */
int charmlp_demo(const uint8_t *file, size_t len);

/* The model the tour loaded and fine-tuned. */
extern charmlp_model demo_model;

/* The platform's: prints one line (without its newline). */
void demo_print(const char *text);

#endif
