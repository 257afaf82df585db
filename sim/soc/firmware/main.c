/* The whole int8 digits MLP (two fully-connected layers) on VexRiscv, on a
 * batch of N_IMAGES images, several ways:
 *   software: fc_int8_ref(), TFLM's reference kernel in plain C;
 *   cfu:      fc_int8_cfu(), the CFU's MAC4 and POST.
 * Each way writes its hidden and output activations to memory; the testbench
 * checks them against the golden model. The firmware also compares the ways
 * with each other and exits with 1 if they differ. mcycle and minstret are
 * read around each way (stats[], in the order of sim/soc/firmware.py STATS). */
#include <stdint.h>

#include "fc_kernel.h"
#include "mlp.h" /* generated: N_IN, N_HID, N_OUT, N_IMAGES, L1/L2_PARAMS, STAT_*, filter1/2, bias1/2, inputs */

#define ALIGNED __attribute__((aligned(4)))
int8_t hid_software[N_IMAGES][N_HID] ALIGNED, out_software[N_IMAGES][N_OUT] ALIGNED;
int8_t hid_cfu[N_IMAGES][N_HID] ALIGNED, out_cfu[N_IMAGES][N_OUT] ALIGNED;
uint32_t stats[N_STATS];

static const fc_params_t l1 = L1_PARAMS, l2 = L2_PARAMS;

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

static int differ(const int8_t *a, const int8_t *b, int n) {
  for (int i = 0; i < n; i++)
    if (a[i] != b[i]) return 1;
  return 0;
}

int main(void) {
  uint32_t c0 = rdcycle(), i0 = rdinstret();
  for (int s = 0; s < N_IMAGES; s++) {
    fc_int8_ref(&l1, inputs[s], N_IN, filter1, bias1, N_HID, hid_software[s]);
    fc_int8_ref(&l2, hid_software[s], N_HID, filter2, bias2, N_OUT, out_software[s]);
  }
  uint32_t c1 = rdcycle(), i1 = rdinstret();
  for (int s = 0; s < N_IMAGES; s++) {
    fc_int8_cfu(&l1, inputs[s], N_IN, filter1, bias1, N_HID, hid_cfu[s]);
    fc_int8_cfu(&l2, hid_cfu[s], N_HID, filter2, bias2, N_OUT, out_cfu[s]);
  }
  uint32_t c2 = rdcycle(), i2 = rdinstret();
  stats[STAT_SOFTWARE_CYCLES] = c1 - c0;
  stats[STAT_CFU_CYCLES] = c2 - c1;
  stats[STAT_SOFTWARE_INSTRUCTIONS] = i1 - i0;
  stats[STAT_CFU_INSTRUCTIONS] = i2 - i1;
  return differ(&hid_software[0][0], &hid_cfu[0][0], sizeof hid_software) || differ(&out_software[0][0], &out_cfu[0][0], sizeof out_software);
}
