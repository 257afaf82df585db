/* See fc_kernel.h. The plain version follows TFLM's reference kernel
 * (kernels/internal/reference/integer_ops/fully_connected.h) and its
 * MultiplyByQuantizedMultiplier (common.cc, gemmlowp's rounding); it is
 * independent of the CFU emulation in cfu_emu.c, so the tests compare two
 * implementations, not one with itself. */
#include "fc_kernel.h"

#include "cfu_ops.h"

/* gemmlowp SaturatingRoundingDoublingHighMul */
static int32_t srdhm(int32_t a, int32_t b) {
  if (a == b && a == INT32_MIN) return INT32_MAX;
  int64_t ab = (int64_t)a * (int64_t)b;
  int64_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
  return (int32_t)((ab + nudge) / (1ll << 31));
}

/* gemmlowp RoundingDivideByPOT */
static int32_t rdbpot(int32_t x, int exponent) {
  const int32_t mask = (int32_t)((1ll << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0);
  return (x >> exponent) + (remainder > threshold);
}

/* TFLM MultiplyByQuantizedMultiplier, default (double-rounding) path */
static int32_t mbqm(int32_t x, int32_t multiplier, int shift) {
  int left = shift > 0 ? shift : 0;
  int right = shift > 0 ? 0 : -shift;
  if (right > 31) right = 31;
  return rdbpot(srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}

void fc_int8_ref(const fc_params_t *p, const int8_t *input, int n_in,
                 const int8_t *filter, const int32_t *bias, int n_out, int8_t *output) {
  for (int o = 0; o < n_out; o++) {
    int32_t acc = 0;
    for (int k = 0; k < n_in; k++)
      acc += filter[o * n_in + k] * (input[k] + p->input_offset);
    acc += bias[o];
    acc = mbqm(acc, p->output_multiplier, p->output_shift) + p->output_offset;
    if (acc < p->act_min) acc = p->act_min;
    if (acc > p->act_max) acc = p->act_max;
    output[o] = (int8_t)acc;
  }
}

/* Four int8 lanes from bytes, lane i = bits 8i+7..8i; lanes at or past n are 0. */
static uint32_t lanes(const int8_t *v, int n) {
  uint32_t w = 0;
  for (int i = 0; i < 4 && i < n; i++) w |= (uint32_t)(uint8_t)v[i] << (8 * i);
  return w;
}

/* Four int8 lanes from a 4-byte-aligned address: one lw. */
static uint32_t load4(const int8_t *v) {
  uint32_t w;
  __builtin_memcpy(&w, __builtin_assume_aligned(v, 4), 4);
  return w;
}

void fc_int8_cfu(const fc_params_t *p, const int8_t *input, int n_in,
                 const int8_t *filter, const int32_t *bias, int n_out, int8_t *output) {
  /* Whole words straight from memory when the rows are word-aligned. */
  const int aligned = n_in % 4 == 0 && (((uintptr_t)input | (uintptr_t)filter) & 3) == 0;
  cfu_set(CFU_REG_INPUT_OFFSET, p->input_offset);
  cfu_set(CFU_REG_OUTPUT_MULTIPLIER, p->output_multiplier);
  cfu_set(CFU_REG_OUTPUT_SHIFT, p->output_shift);
  cfu_set(CFU_REG_OUTPUT_OFFSET, p->output_offset);
  cfu_set(CFU_REG_ACT_MIN, p->act_min);
  cfu_set(CFU_REG_ACT_MAX, p->act_max);
  for (int o = 0; o < n_out; o++) {
    const int8_t *row = filter + o * n_in;
    if (aligned) {
      cfu_mac4_first(load4(input), load4(row));
      for (int k = 4; k < n_in; k += 4) cfu_mac4(load4(input + k), load4(row + k));
    } else {
      /* A zero filter lane adds nothing, whatever the input lane holds. */
      cfu_mac4_first(lanes(input, n_in), lanes(row, n_in));
      for (int k = 4; k < n_in; k += 4)
        cfu_mac4(lanes(input + k, n_in - k), lanes(row + k, n_in - k));
    }
    output[o] = (int8_t)cfu_post(bias[o]);
  }
}
