/* int8 fully-connected layers on the GEMM CFU's systolic array, in TFLite Micro's convention
 * (fc_kernel.h): per tensor, and per channel (a multiplier and shift per output channel).
 *
 * A layer is one GEMM in mode nt: A = the inputs (batch x n_in), B = the filter as stored by TFLM
 * (n_out x n_in), C = A.B^T (batch x n_out). The input offset is folded into each channel's bias:
 * sum_k w[o][k] * (x[k] + input_offset) + bias[o] = sum_k w[o][k] * x[k] + (bias[o] + input_offset * rowsum[o]),
 * rowsum[o] = sum_k w[o][k] (the unit's B_ROWSUM register). READ8 then applies TFLM's output stage per
 * channel and answers four int8 outputs a word.
 *
 * Addresses are word addresses in the unit's spaces (cfu_gemm.h): A and B hold 2 * CFU_GEMM_OPERAND_DEPTH
 * words of 8 int8 each (the top address bit picks the half), C 2 * CFU_GEMM_RESULT_DEPTH words of
 * CFU_GEMM_COLS int32. A layer's B rows take stride = ceil(n_in / 8) words each, its inputs batch * stride
 * words of A, its results ceil(n_out / CFU_GEMM_COLS) * batch words of C. Output shifts must fit the unit's
 * 6 bits (-32..31, TFLM's are in this range).
 *
 * Double buffering: the engine computes on the addresses named at START; the CPU may meanwhile write other
 * addresses (weights with fc_gemm_load, the next inputs) and load other channel entries. A GEMM's results
 * must lie in one half of C (c_base mod CFU_GEMM_RESULT_DEPTH + ceil(n_out / CFU_GEMM_COLS) * batch <=
 * CFU_GEMM_RESULT_DEPTH): a READ waits for the engine only if it reads the half the engine writes.
 * See README.md and docs/cfu_gemm.md.
 */
#ifndef FC_GEMM_H
#define FC_GEMM_H

#include <stdint.h>

#include "fc_kernel.h" /* fc_params_t */

/* A layer whose weights are in B: filled in by fc_gemm_load. */
typedef struct {
  int n_in, n_out, stride; /* stride: words per stored row, ceil(n_in / 8) */
  uint32_t b_base;         /* its first word in B */
  int ch_base;             /* its first per-channel entry: channel o uses entry (ch_base + o) mod CFU_GEMM_CHANNELS */
} fc_gemm_layer_t;

/* Weights (filter [n_out][n_in], TFLM layout) into B at b_base as an N x K matrix (mode nt); per-channel
 * entries ch_base.. get bias + input_offset * rowsum (from B_ROWSUM), multiplier, shift (multipliers and
 * shifts NULL: p's per-tensor values; bias NULL: 0). Needs 1 <= n_in, 1 <= n_out <= CFU_GEMM_CHANNELS.
 * Safe while the engine computes on other addresses: this is the double-buffered weight load. */
void fc_gemm_load(fc_gemm_layer_t *l, const fc_params_t *p, const int8_t *filter, const int32_t *bias,
                  const int32_t *multipliers, const int32_t *shifts, int n_in, int n_out, uint32_t b_base,
                  int ch_base);

/* Write `batch` input rows (n_in bytes each, contiguous) to A at a_base and START into C at c_base.
 * Does not wait for this GEMM; it waits (WAIT) only for a previous one still running, just before its START,
 * since START needs the engine idle. The writes overlap the previous GEMM, so a_base must not be where
 * that one reads. 1 <= batch <= 65535. */
void fc_gemm_start(const fc_gemm_layer_t *l, const int8_t *input, int batch, uint32_t a_base, uint32_t c_base);

/* WAIT, then read the int8 outputs (batch rows of n_out bytes) of the last START with READ8 (sets
 * OUT_OFFSET/ACT_MIN/ACT_MAX/CH_BASE from p and l). */
void fc_gemm_finish(const fc_gemm_layer_t *l, const fc_params_t *p, int batch, int8_t *output);

/* One call, weights loaded per call: per tensor and per channel (TFLM per-channel quantization). */
void fc_int8_gemm(const fc_params_t *p, const int8_t *input, int n_in, const int8_t *filter, const int32_t *bias,
                  int n_out, int8_t *output);
void fc_int8_gemm_per_channel(const fc_params_t *p, const int32_t *multipliers, const int32_t *shifts,
                              const int8_t *input, int n_in, const int8_t *filter, const int32_t *bias,
                              int n_out, int8_t *output);

/* Batched: weights resident across `batch` inputs (input [batch][n_in], output [batch][n_out]).
 * multipliers and shifts NULL: per tensor. The weights are loaded once if they fit B and the channel
 * table, else in column chunks; the inputs go in chunks that fit half of A and half of C, alternating
 * halves so that the next chunk's inputs are written and the last chunk's outputs read while the
 * engine computes. A row too long for half of A (n_in > 8 * CFU_GEMM_OPERAND_DEPTH) runs on the MAC4
 * ops instead (fc_int8_cfu, fc_kernel.c). */
void fc_int8_gemm_batch(const fc_params_t *p, const int32_t *multipliers, const int32_t *shifts,
                        const int8_t *input, int batch, int n_in, const int8_t *filter, const int32_t *bias,
                        int n_out, int8_t *output);

#endif /* FC_GEMM_H */
