/* One layer of the quantized digits MLP on VexRiscv, twice: in software on
 * the CPU's multiplier, then with the CFU's MAC4 and POST. Both write their
 * int8 outputs to memory; the testbench checks them against the golden
 * model. The firmware itself also compares the two and exits with 1 if they
 * differ. mcycle and minstret are read around each version. */
#include <stdint.h>

#include "fc_kernel.h"
#include "layer.h"   /* generated: LAYER_PARAMS, N_IN, N_OUT, N_SAMPLES, filter, bias, inputs */

int8_t out_sw[N_SAMPLES][N_OUT];
int8_t out_cfu[N_SAMPLES][N_OUT];
/* cycles and instructions retired: software, then CFU */
uint32_t stats[4];

static inline uint32_t rdcycle(void) { uint32_t v; __asm__ volatile("rdcycle %0" : "=r"(v)); return v; }
static inline uint32_t rdinstret(void) { uint32_t v; __asm__ volatile("rdinstret %0" : "=r"(v)); return v; }

/* What gcc may call at -O2 in a freestanding build. */
void *memset(void *dst, int c, unsigned n) {
  unsigned char *d = dst;
  while (n--) *d++ = (unsigned char)c;
  return dst;
}
void *memcpy(void *dst, const void *src, unsigned n) {
  unsigned char *d = dst;
  const unsigned char *s = src;
  while (n--) *d++ = *s++;
  return dst;
}

int main(void) {
  static const fc_params_t params = LAYER_PARAMS;
  uint32_t c0 = rdcycle(), i0 = rdinstret();
  for (int s = 0; s < N_SAMPLES; s++) fc_int8_ref(&params, inputs[s], N_IN, filter, bias, N_OUT, out_sw[s]);
  uint32_t c1 = rdcycle(), i1 = rdinstret();
  for (int s = 0; s < N_SAMPLES; s++) fc_int8_cfu(&params, inputs[s], N_IN, filter, bias, N_OUT, out_cfu[s]);
  uint32_t c2 = rdcycle(), i2 = rdinstret();
  stats[0] = c1 - c0;
  stats[1] = c2 - c1;
  stats[2] = i1 - i0;
  stats[3] = i2 - i1;
  for (int s = 0; s < N_SAMPLES; s++)
    for (int o = 0; o < N_OUT; o++)
      if (out_sw[s][o] != out_cfu[s][o]) return 1;
  return 0;
}
