/* Runs the GEMM FC kernels (fc_gemm.c) through the CFU emulation on layers read from stdin; prints each
 * case's int8 outputs on one line.
 *
 * A case: "way batch misalign_in misalign_filter misalign_out", then one layer, or two for way 3:
 *   n_in n_out per_channel has_bias, six fc_params_t values, [n_out multipliers, n_out shifts],
 *   filter[n_out * n_in], [bias[n_out]]
 * then input[batch * n_in]. Ways: 0 fc_int8_gemm / fc_int8_gemm_per_channel a row at a time;
 * 1 fc_int8_gemm_batch; 2 fc_gemm_load/start/finish with "b_base ch_base a_base c_base" read after the
 * layer; 3 two layers chained with the double-buffered flow (layer 2's weights loaded while layer 1
 * computes), printing layer 2's outputs. The buffers start `misalign` bytes past a 4-byte boundary.
 * Each case ends with a line "end" on stderr. */
#include <stdio.h>
#include <stdlib.h>

#include "cfu_gemm.h"
#include "fc_gemm.h"

typedef struct {
  int n_in, n_out, per_channel, has_bias;
  fc_params_t p;
  int32_t *mult, *shift, *bias;
  int8_t *filter;
} layer_t;

static int read_long(long *v) { return scanf("%ld", v) == 1; }

/* n bytes starting `misalign` past a 4-byte boundary */
static int8_t *bytes_at(int n, int misalign, void **block) {
  *block = malloc((size_t)n + 8);
  return (int8_t *)*block + misalign;
}

static int read_i8(int8_t *dst, int n) {
  long v;
  for (int i = 0; i < n; i++) {
    if (!read_long(&v)) return 0;
    dst[i] = (int8_t)v;
  }
  return 1;
}

static int read_i32(int32_t *dst, int n) {
  long v;
  for (int i = 0; i < n; i++) {
    if (!read_long(&v)) return 0;
    dst[i] = (int32_t)v;
  }
  return 1;
}

static int read_layer(layer_t *l, int misalign_filter, void **block) {
  long v[6];
  if (scanf("%d %d %d %d", &l->n_in, &l->n_out, &l->per_channel, &l->has_bias) != 4) return 0;
  for (int i = 0; i < 6; i++)
    if (!read_long(&v[i])) return 0;
  l->p.input_offset = (int32_t)v[0];
  l->p.output_multiplier = (int32_t)v[1];
  l->p.output_shift = (int32_t)v[2];
  l->p.output_offset = (int32_t)v[3];
  l->p.act_min = (int32_t)v[4];
  l->p.act_max = (int32_t)v[5];
  l->mult = l->shift = l->bias = NULL;
  if (l->per_channel) {
    l->mult = malloc(sizeof(int32_t) * l->n_out);
    l->shift = malloc(sizeof(int32_t) * l->n_out);
    if (!read_i32(l->mult, l->n_out) || !read_i32(l->shift, l->n_out)) return 0;
  }
  l->filter = bytes_at(l->n_in * l->n_out, misalign_filter, block);
  if (!read_i8(l->filter, l->n_in * l->n_out)) return 0;
  if (l->has_bias) {
    l->bias = malloc(sizeof(int32_t) * l->n_out);
    if (!read_i32(l->bias, l->n_out)) return 0;
  }
  return 1;
}

static void free_layer(layer_t *l) {
  free(l->mult);
  free(l->shift);
  free(l->bias);
}

int main(void) {
  int way, batch, mis_in, mis_filter, mis_out;
  while (scanf("%d %d %d %d %d", &way, &batch, &mis_in, &mis_filter, &mis_out) == 5) {
    layer_t l1, l2;
    void *blocks[5];
    if (!read_layer(&l1, mis_filter, &blocks[0])) return 1;
    if (way == 3 && !read_layer(&l2, mis_filter, &blocks[1])) return 1;
    long bases[4] = {0, 0, 0, 0};
    if (way == 2)
      for (int i = 0; i < 4; i++)
        if (!read_long(&bases[i])) return 1;
    int8_t *input = bytes_at(batch * l1.n_in, mis_in, &blocks[2]);
    if (!read_i8(input, batch * l1.n_in)) return 1;
    const layer_t *last = way == 3 ? &l2 : &l1;
    int8_t *out = bytes_at(batch * last->n_out, mis_out, &blocks[3]);
    if (way == 0) {
      for (int b = 0; b < batch; b++) {
        const int8_t *x = input + b * l1.n_in;
        int8_t *y = out + b * l1.n_out;
        if (l1.per_channel)
          fc_int8_gemm_per_channel(&l1.p, l1.mult, l1.shift, x, l1.n_in, l1.filter, l1.bias, l1.n_out, y);
        else
          fc_int8_gemm(&l1.p, x, l1.n_in, l1.filter, l1.bias, l1.n_out, y);
      }
    } else if (way == 1) {
      fc_int8_gemm_batch(&l1.p, l1.mult, l1.shift, input, batch, l1.n_in, l1.filter, l1.bias, l1.n_out, out);
    } else if (way == 2) {
      fc_gemm_layer_t g;
      fc_gemm_load(&g, &l1.p, l1.filter, l1.bias, l1.mult, l1.shift, l1.n_in, l1.n_out, (uint32_t)bases[0],
                   (int)bases[1]);
      fc_gemm_start(&g, input, batch, (uint32_t)bases[2], (uint32_t)bases[3]);
      fc_gemm_finish(&g, &l1.p, batch, out);
    } else {
      /* Layer 1's weights in B's half 0 and channel entries 0.., layer 2's in half 1 after them. */
      fc_gemm_layer_t g1, g2;
      int8_t *hidden = bytes_at(batch * l1.n_out, mis_out, &blocks[4]);
      fc_gemm_load(&g1, &l1.p, l1.filter, l1.bias, l1.mult, l1.shift, l1.n_in, l1.n_out, 0, 0);
      fc_gemm_start(&g1, input, batch, 0, 0);
      fc_gemm_load(&g2, &l2.p, l2.filter, l2.bias, l2.mult, l2.shift, l2.n_in, l2.n_out, CFU_GEMM_OPERAND_DEPTH,
                   l1.n_out);
      fc_gemm_finish(&g1, &l1.p, batch, hidden);
      fc_gemm_start(&g2, hidden, batch, CFU_GEMM_OPERAND_DEPTH, CFU_GEMM_RESULT_DEPTH);
      fc_gemm_finish(&g2, &l2.p, batch, out);
      free(blocks[4]);
    }
    for (int i = 0; i < batch * last->n_out; i++) printf("%d ", out[i]);
    printf("\n");
    fprintf(stderr, "end\n"); /* closes the case in an op trace (cfu_trace.c) */
    free_layer(&l1);
    free(blocks[0]);
    if (way == 3) {
      free_layer(&l2);
      free(blocks[1]);
    }
    free(blocks[2]);
    free(blocks[3]);
  }
  return 0;
}
