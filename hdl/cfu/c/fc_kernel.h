/* An int8 fully-connected layer in TFLite Micro's convention, twice:
 * fc_int8_ref() in plain C, fc_int8_cfu() with the CFU's MAC4 and POST ops.
 *
 * output[o] = clamp(MBQM(sum_k filter[o][k] * (input[k] + input_offset) + bias[o],
 *                        output_multiplier, output_shift) + output_offset,
 *                   act_min, act_max)
 * filter is [n_out][n_in], row-major (TFLM's layout). */
#ifndef FC_KERNEL_H
#define FC_KERNEL_H

#include <stdint.h>

typedef struct {
  int32_t input_offset;       /* -input zero point */
  int32_t output_multiplier;  /* QuantizeMultiplier(s_in * s_filter / s_out) */
  int32_t output_shift;       /* TFLM sign: positive shifts left */
  int32_t output_offset;      /* output zero point */
  int32_t act_min, act_max;
} fc_params_t;

void fc_int8_ref(const fc_params_t *p, const int8_t *input, int n_in,
                 const int8_t *filter, const int32_t *bias, int n_out, int8_t *output);

/* The same with CFU ops. input and each filter row are read four lanes at a
 * time; a last partial word is padded with zero filter lanes. */
void fc_int8_cfu(const fc_params_t *p, const int8_t *input, int n_in,
                 const int8_t *filter, const int32_t *bias, int n_out, int8_t *output);

#endif /* FC_KERNEL_H */
