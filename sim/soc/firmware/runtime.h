/* The co-simulation firmware's runtime, shared by main.c and infer.c: the
 * cycle and instruction counters (runtime.c holds what gcc may call). */
#ifndef RUNTIME_H
#define RUNTIME_H

#include <stdint.h>

static inline uint32_t rdcycle(void) { uint32_t v; __asm__ volatile("rdcycle %0" : "=r"(v)); return v; }
static inline uint32_t rdinstret(void) { uint32_t v; __asm__ volatile("rdinstret %0" : "=r"(v)); return v; }

#endif /* RUNTIME_H */
