/* Reads a layer from stdin: n_in n_out, six params, input[n_in], filter[n_out*n_in],
 * bias[n_out]; prints fc_int8_ref's outputs, then fc_int8_cfu's (through the
 * CFU emulation), one line each. */
#include <stdio.h>
#include <stdlib.h>

#include "fc_kernel.h"

int main(void) {
  int n_in, n_out;
  while (scanf("%d %d", &n_in, &n_out) == 2) {
    fc_params_t p;
    long v[6];
    for (int i = 0; i < 6; i++) if (scanf("%ld", &v[i]) != 1) return 1;
    p.input_offset = v[0]; p.output_multiplier = v[1]; p.output_shift = v[2];
    p.output_offset = v[3]; p.act_min = v[4]; p.act_max = v[5];
    int8_t *input = malloc(n_in), *filter = malloc((size_t)n_in * n_out);
    int32_t *bias = malloc(sizeof(int32_t) * n_out);
    int8_t *out = malloc(n_out);
    long x;
    for (int i = 0; i < n_in; i++) { if (scanf("%ld", &x) != 1) return 1; input[i] = (int8_t)x; }
    for (int i = 0; i < n_in * n_out; i++) { if (scanf("%ld", &x) != 1) return 1; filter[i] = (int8_t)x; }
    for (int i = 0; i < n_out; i++) { if (scanf("%ld", &x) != 1) return 1; bias[i] = (int32_t)x; }
    fc_int8_ref(&p, input, n_in, filter, bias, n_out, out);
    for (int i = 0; i < n_out; i++) printf("%d ", out[i]);
    printf("\n");
    fc_int8_cfu(&p, input, n_in, filter, bias, n_out, out);
    for (int i = 0; i < n_out; i++) printf("%d ", out[i]);
    printf("\n");
    free(input); free(filter); free(bias); free(out);
  }
  return 0;
}
