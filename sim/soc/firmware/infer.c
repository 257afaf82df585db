/* `python -m sim infer --engine soc`: a model's accelerated layers (FULLY_CONNECTED, and CONV_2D as the
 * GEMM of its im2col patches) on VexRiscv through the GEMM CFU, with the kit's fc_int8_gemm_batch
 * (fc_gemm.c): per tensor, or per channel (a multiplier and shift per output channel).
 *
 * The generated header (sim/infer/soc.py) holds every layer's weights, TFLM parameters and its input
 * rows (the im2col patches for a CONV_2D, made on the host) as the host's NumPy reference computed them,
 * and one output buffer per layer. The layers run in order, each timed with rdcycle (stats[2 i]) and
 * the engine's BUSY counter (stats[2 i + 1]); the testbench reads the outputs and stats through the
 * debug port after the CPU halts. Caches are cold: this is a first inference. */
#include <stdint.h>

#include "runtime.h"

#include "cfu_gemm.h"
#include "fc_gemm.h"
#include "fc_kernel.h"

typedef struct {
  fc_params_t p;         /* per tensor; per channel: output_multiplier/shift unused */
  int per_channel;       /* 1: mult[] and shift[] per output channel */
  int m, k, n;           /* the GEMM: m input rows of k int8 each, n outputs each */
  const int8_t *a;       /* [m][k] */
  const int8_t *filter;  /* [n][k], TFLM's layout */
  const int32_t *bias;   /* [n] (zeros when the op has none) */
  const int32_t *mult, *shift;
  int8_t *out;           /* [m][n] */
} layer_t;

#include "infer_model.h" /* generated: N_LAYERS, the arrays, `static const layer_t layers[N_LAYERS]` */

uint32_t stats[2 * N_LAYERS];

int main(void) {
  for (int i = 0; i < N_LAYERS; i++) {
    const layer_t *l = &layers[i];
    cfu_gemm_clear();
    uint32_t c0 = rdcycle();
    fc_int8_gemm_batch(&l->p, l->per_channel ? l->mult : 0, l->per_channel ? l->shift : 0, l->a, l->m, l->k,
                       l->filter, l->bias, l->n, l->out);
    uint32_t c1 = rdcycle();
    stats[2 * i] = c1 - c0;
    stats[2 * i + 1] = cfu_gemm_counter(CFU_GEMM_CNT_BUSY);
  }
  return 0;
}
