/* The whole int8 digits MLP (two fully-connected layers) on VexRiscv, on a
 * batch of N_IMAGES images, three ways:
 *   software: fc_int8_ref(), TFLM's reference kernel in plain C;
 *   cfu:      fc_int8_cfu(), the CFU's MAC4 and POST, image by image;
 *   gemm:     the GEMM engine behind the CFU (fc_gemm.h), the batch as the
 *             GEMMs' M: both layers' weights loaded once per batch inside the
 *             timed region, layer 2's while the engine computes layer 1.
 * Each way writes its hidden and output activations to memory; the testbench
 * checks them against the golden model. The firmware also compares the ways
 * with each other and exits with 1 if they differ. mcycle and minstret are
 * read around each way (stats[], in the order of sim/soc/firmware.py STATS). */
#include <stdint.h>

#include "cfu_gemm.h"
#include "fc_gemm.h"
#include "fc_kernel.h"
#include "mlp.h" /* generated: N_IN, N_HID, N_OUT, N_IMAGES, L1/L2_PARAMS, STAT_*, filter1/2, bias1/2, inputs */

#define ALIGNED __attribute__((aligned(4)))
int8_t hid_software[N_IMAGES][N_HID] ALIGNED, out_software[N_IMAGES][N_OUT] ALIGNED;
int8_t hid_cfu[N_IMAGES][N_HID] ALIGNED, out_cfu[N_IMAGES][N_OUT] ALIGNED;
int8_t hid_gemm[N_IMAGES][N_HID] ALIGNED, out_gemm[N_IMAGES][N_OUT] ALIGNED;
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

/* VexRiscv_FullCfu's data cache: 4 KB, direct mapped, 32-byte lines. Each way
 * starts with none of the model's data in it, as an inference whose weights
 * were not just used: reading a word of each line of a 4 KB buffer evicts them. */
#define DCACHE_BYTES 4096
#define DCACHE_LINE 32
static volatile uint32_t evictor[DCACHE_BYTES / 4] __attribute__((aligned(DCACHE_LINE)));
static void evict_dcache(void) {
  for (int i = 0; i < DCACHE_BYTES / 4; i += DCACHE_LINE / 4) (void)evictor[i];
}

static int differ(const int8_t *a, const int8_t *b, int n) {
  for (int i = 0; i < n; i++)
    if (a[i] != b[i]) return 1;
  return 0;
}

/* GEMM buffers: layer 1 in the low half of A, B and C, layer 2 in the high
 * half, so layer 2's weights load while the engine computes layer 1. The
 * batch goes through in chunks whose operands and results fit one half. */
#define A_HALF CFU_GEMM_OPERAND_DEPTH
#define B_HALF CFU_GEMM_OPERAND_DEPTH
#define C_HALF CFU_GEMM_RESULT_DEPTH
#define WORDS(n, per) (((n) + (per) - 1) / (per))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define CHUNK_A (CFU_GEMM_OPERAND_DEPTH / WORDS(N_IN > N_HID ? N_IN : N_HID, CFU_GEMM_ROWS))
#define CHUNK_C (CFU_GEMM_RESULT_DEPTH / WORDS(N_HID > N_OUT ? N_HID : N_OUT, CFU_GEMM_COLS))
#define CHUNK MIN(N_IMAGES, MIN(CHUNK_A, CHUNK_C))

/* Cycles spent in each step of the GEMM way, over all chunks. */
static uint32_t phase[6];
static inline void lap(uint32_t *t, int i) {
  uint32_t now = rdcycle();
  phase[i] += now - *t;
  *t = now;
}

static void mlp_gemm(void) {
  fc_gemm_layer_t g1, g2;
  uint32_t t = rdcycle();
  fc_gemm_load(&g1, &l1, filter1, bias1, 0, 0, N_IN, N_HID, 0, 0);
  lap(&t, 0);
  for (int s = 0; s < N_IMAGES; s += CHUNK) {
    int m = MIN(CHUNK, N_IMAGES - s);
    fc_gemm_start(&g1, inputs[s], m, 0, 0);
    lap(&t, 1);
    if (s == 0) fc_gemm_load(&g2, &l2, filter2, bias2, 0, 0, N_HID, N_OUT, B_HALF, N_HID);
    lap(&t, 2);
    fc_gemm_finish(&g1, &l1, m, hid_gemm[s]);
    lap(&t, 3);
    fc_gemm_start(&g2, hid_gemm[s], m, A_HALF, C_HALF);
    lap(&t, 4);
    fc_gemm_finish(&g2, &l2, m, out_gemm[s]);
    lap(&t, 5);
  }
}

int main(void) {
  evict_dcache();
  uint32_t c0 = rdcycle(), i0 = rdinstret();
  for (int s = 0; s < N_IMAGES; s++) {
    fc_int8_ref(&l1, inputs[s], N_IN, filter1, bias1, N_HID, hid_software[s]);
    fc_int8_ref(&l2, hid_software[s], N_HID, filter2, bias2, N_OUT, out_software[s]);
  }
  uint32_t c1 = rdcycle(), i1 = rdinstret();
  evict_dcache();
  uint32_t c1b = rdcycle(), i1b = rdinstret();
  for (int s = 0; s < N_IMAGES; s++) {
    fc_int8_cfu(&l1, inputs[s], N_IN, filter1, bias1, N_HID, hid_cfu[s]);
    fc_int8_cfu(&l2, hid_cfu[s], N_HID, filter2, bias2, N_OUT, out_cfu[s]);
  }
  uint32_t c2 = rdcycle(), i2 = rdinstret();
  evict_dcache();
  cfu_gemm_clear();
  uint32_t c3 = rdcycle(), i3 = rdinstret();
  mlp_gemm();
  uint32_t c4 = rdcycle(), i4 = rdinstret();

  stats[STAT_SOFTWARE_CYCLES] = c1 - c0;
  stats[STAT_CFU_CYCLES] = c2 - c1b;
  stats[STAT_GEMM_CYCLES] = c4 - c3;
  stats[STAT_SOFTWARE_INSTRUCTIONS] = i1 - i0;
  stats[STAT_CFU_INSTRUCTIONS] = i2 - i1b;
  stats[STAT_GEMM_INSTRUCTIONS] = i4 - i3;
  stats[STAT_GEMM_BUSY] = cfu_gemm_counter(CFU_GEMM_CNT_BUSY);
  stats[STAT_GEMM_WAIT] = cfu_gemm_counter(CFU_GEMM_CNT_WAIT);
  stats[STAT_GEMM_OVERLAP] = cfu_gemm_counter(CFU_GEMM_CNT_OVERLAP);
  stats[STAT_GEMM_TRANSFERS] = cfu_gemm_counter(CFU_GEMM_CNT_TRANSFERS);
  for (int i = 0; i < 6; i++) stats[STAT_GEMM_LOAD1 + i] = phase[i];

  const int n_hid = sizeof hid_software, n_out = sizeof out_software;
  return differ(&hid_software[0][0], &hid_cfu[0][0], n_hid) || differ(&out_software[0][0], &out_cfu[0][0], n_out) ||
         differ(&hid_software[0][0], &hid_gemm[0][0], n_hid) || differ(&out_software[0][0], &out_gemm[0][0], n_out);
}
