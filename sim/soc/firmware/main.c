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

#include "runtime.h"

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

/* VexRiscv_FullCfu's data cache: 4 KB, direct mapped, 32-byte lines. touch()
 * reads a word of each line of `data` (they are in the cache afterwards);
 * evict() reads, for each, the word of a 4 KB-aligned buffer that maps to the
 * same cache line (they are not). */
#define DCACHE_BYTES 4096
#define DCACHE_LINE 32
static volatile uint32_t evictor[DCACHE_BYTES / 4] __attribute__((aligned(DCACHE_BYTES)));
__attribute__((unused)) static void touch(const volatile void *data, unsigned bytes) {
  const volatile uint8_t *d = data;
  for (unsigned i = 0; i < bytes; i += DCACHE_LINE) (void)d[i];
  (void)d[bytes - 1];
}
static void evict(const volatile void *data, unsigned bytes) {
  uintptr_t a = (uintptr_t)data & ~(uintptr_t)(DCACHE_LINE - 1), end = (uintptr_t)data + bytes;
  for (; a < end; a += DCACHE_LINE) (void)evictor[(a % DCACHE_BYTES) / 4];
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

__attribute__((noinline)) static void mlp_gemm(int images) {
  fc_gemm_layer_t g1, g2;
  uint32_t t = rdcycle();
  fc_gemm_load(&g1, &l1, filter1, bias1, 0, 0, N_IN, N_HID, 0, 0);
  lap(&t, 0);
  for (int s = 0; s < images; s += CHUNK) {
    int m = MIN(CHUNK, images - s);
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

enum { SOFTWARE, CFU, GEMM };

/* Way `way` on the first `images` images; with `warm_up`, a small run that executes the same code
 * (one output channel a layer, or a batch of one). */
static void run(int way, int images, int warm_up) {
  const int n_hid = warm_up ? 1 : N_HID, n_out = warm_up ? 1 : N_OUT;
  for (int s = 0; s < images && way != GEMM; s++) {
    if (way == SOFTWARE) {
      fc_int8_ref(&l1, inputs[s], N_IN, filter1, bias1, n_hid, hid_software[s]);
      fc_int8_ref(&l2, hid_software[s], N_HID, filter2, bias2, n_out, out_software[s]);
    } else {
      fc_int8_cfu(&l1, inputs[s], N_IN, filter1, bias1, n_hid, hid_cfu[s]);
      fc_int8_cfu(&l2, hid_cfu[s], N_HID, filter2, bias2, n_out, out_cfu[s]);
    }
  }
  if (way == GEMM) mlp_gemm(images);
}

/* Each way is timed as an inference on a new batch after earlier ones: its code is in the instruction
 * cache (a warm-up run executes it first) and the model's weights and biases are in the data cache (2.4 KB
 * of its 4 KB), but the batch's inputs are not. With COLD_WEIGHTS, a first inference: the weights are not
 * in the data cache either. */
#ifdef COLD_WEIGHTS
#define MODEL evict
#else
#define MODEL touch
#endif
static void measure(int way, int stat_cycles, int stat_instructions) {
  run(way, 1, 1);
  for (int i = 0; i < 6; i++) phase[i] = 0;
  MODEL(filter1, sizeof filter1);
  MODEL(bias1, sizeof bias1);
  MODEL(filter2, sizeof filter2);
  MODEL(bias2, sizeof bias2);
  MODEL(&l1, sizeof l1);
  MODEL(&l2, sizeof l2);
  evict(inputs, sizeof inputs);
  if (way == GEMM) cfu_gemm_clear();
  uint32_t c0 = rdcycle(), i0 = rdinstret();
  run(way, N_IMAGES, 0);
  uint32_t c1 = rdcycle(), i1 = rdinstret();
  stats[stat_cycles] = c1 - c0;
  stats[stat_instructions] = i1 - i0;
}

int main(void) {
  measure(SOFTWARE, STAT_SOFTWARE_CYCLES, STAT_SOFTWARE_INSTRUCTIONS);
  measure(CFU, STAT_CFU_CYCLES, STAT_CFU_INSTRUCTIONS);
  measure(GEMM, STAT_GEMM_CYCLES, STAT_GEMM_INSTRUCTIONS);
  stats[STAT_GEMM_BUSY] = cfu_gemm_counter(CFU_GEMM_CNT_BUSY);
  stats[STAT_GEMM_WAIT] = cfu_gemm_counter(CFU_GEMM_CNT_WAIT);
  stats[STAT_GEMM_OVERLAP] = cfu_gemm_counter(CFU_GEMM_CNT_OVERLAP);
  stats[STAT_GEMM_TRANSFERS] = cfu_gemm_counter(CFU_GEMM_CNT_TRANSFERS);
  for (int i = 0; i < 6; i++) stats[STAT_GEMM_LOAD1 + i] = phase[i];

  const int n_hid = sizeof hid_software, n_out = sizeof out_software;
  return differ(&hid_software[0][0], &hid_cfu[0][0], n_hid) || differ(&out_software[0][0], &out_cfu[0][0], n_out) ||
         differ(&hid_software[0][0], &hid_gemm[0][0], n_hid) || differ(&out_software[0][0], &out_gemm[0][0], n_out);
}
