/* See fc_gemm.h. Every loop that moves data issues one CFU op per 8 bytes in (WRITE_A/WRITE_B, both
 * 32-bit operands) and one per 4 bytes out (READ8); the rest is set-up per layer, row or chunk, and
 * no division is done inside a loop.
 *
 * The hot paths are tuned for VexRiscv (CFU Playground's CPU): it holds a CFU instruction while a load
 * or store is in its memory or write-back stage, so the streams of WRITEs load eight words, then issue
 * four WRITEs (by hand in asm, the loop control covering the last loads); fc_gemm_load's per-tensor rows
 * are one asm loop; READ8s go four at a time before their stores; the paths for unaligned or partial
 * rows are cold functions, out of the instruction cache's way. With -DCFU_SOFTWARE_DEFINED the asm is
 * replaced by the same ops in C. */
#include "fc_gemm.h"

#include "cfu_gemm.h"

#define OPERAND_HALF CFU_GEMM_OPERAND_DEPTH
#define RESULT_HALF CFU_GEMM_RESULT_DEPTH
#define INLINE static inline __attribute__((always_inline))

/* Four int8 lanes from a 4-byte-aligned address: one lw. */
INLINE uint32_t load4(const int8_t *v) {
  uint32_t w;
  __builtin_memcpy(&w, __builtin_assume_aligned(v, 4), 4);
  return w;
}

/* Four int8 lanes from any address, a byte at a time. */
INLINE uint32_t gather4(const int8_t *v) {
  const uint8_t *u = (const uint8_t *)v;
  return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}

/* v[0..n-1] (n < 4) as lanes 0..n-1; the other lanes 0. */
INLINE uint32_t partial4(const int8_t *v, int n) {
  uint32_t w = 0;
  for (int i = 0; i < n; i++) w |= (uint32_t)(uint8_t)v[i] << (8 * i);
  return w;
}

INLINE uint32_t get4(const int8_t *v, int aligned) { return aligned ? load4(v) : gather4(v); }

/* One WRITE_B (b) or WRITE_A: the sub-op is part of the instruction, so `b` must be a constant. */
INLINE void put(int b, uint32_t lo, uint32_t hi) {
  if (b)
    (void)cfu_gemm_write_b(lo, hi);
  else
    (void)cfu_gemm_write_a(lo, hi);
}

/* `pairs` WRITEs of two words each from w (4-byte aligned), four an iteration, their eight loads first.
 * VexRiscv holds a CFU instruction while a load is in its memory or write-back stage, so the loop is
 * scheduled by hand: eight loads, the two loop-control instructions to cover the last loads, four WRITEs. */
#ifdef CFU_SOFTWARE_DEFINED
#define STREAM4(OP, w, groups)                                                              \
  do {                                                                                       \
    for (; groups > 0; groups--, w += 8) {                                                   \
      (void)cfu_op(CFU_GOP, OP, w[0], w[1]);                                                 \
      (void)cfu_op(CFU_GOP, OP, w[2], w[3]);                                                 \
      (void)cfu_op(CFU_GOP, OP, w[4], w[5]);                                                 \
      (void)cfu_op(CFU_GOP, OP, w[6], w[7]);                                                 \
    }                                                                                        \
  } while (0)
#else
#define STREAM4(OP, w, groups)                                                                          \
  do {                                                                                                   \
    uint32_t t0_, t1_, t2_, t3_, t4_, t5_, t6_, t7_;                                                     \
    __asm__ volatile("1:\n"                                                                              \
                     "lw %[a], 0(%[p])\n lw %[b], 4(%[p])\n lw %[c], 8(%[p])\n lw %[d], 12(%[p])\n"     \
                     "lw %[e], 16(%[p])\n lw %[f], 20(%[p])\n lw %[g], 24(%[p])\n lw %[h], 28(%[p])\n"  \
                     "addi %[p], %[p], 32\n addi %[n], %[n], -1\n"                                       \
                     ".insn r 0x0B, 7, " CFU_STR(OP) ", x0, %[a], %[b]\n"                                \
                     ".insn r 0x0B, 7, " CFU_STR(OP) ", x0, %[c], %[d]\n"                                \
                     ".insn r 0x0B, 7, " CFU_STR(OP) ", x0, %[e], %[f]\n"                                \
                     ".insn r 0x0B, 7, " CFU_STR(OP) ", x0, %[g], %[h]\n"                                \
                     "bnez %[n], 1b\n"                                                                   \
                     : [p] "+r"(w), [n] "+r"(groups), [a] "=&r"(t0_), [b] "=&r"(t1_), [c] "=&r"(t2_),     \
                       [d] "=&r"(t3_), [e] "=&r"(t4_), [f] "=&r"(t5_), [g] "=&r"(t6_), [h] "=&r"(t7_)     \
                     :                                                                                   \
                     : "memory");                                                                        \
  } while (0)
#endif

INLINE void stream(int b, const uint32_t *w, int pairs) {
  int groups = pairs >> 2;
  if (groups > 0) {
    if (b)
      STREAM4(CFU_GEMM_OP_WRITE_B, w, groups);
    else
      STREAM4(CFU_GEMM_OP_WRITE_A, w, groups);
  }
  for (pairs &= 3; pairs > 0; pairs--, w += 2) put(b, w[0], w[1]);
}

/* One stored row: n >= 1 int8 at v as ceil(n / 8) words, the lanes past n zero (B_ROWSUM sums all 8).
 * aligned: v is 4-byte aligned (then its 4-byte groups are read with lw). */
INLINE void put_row(int b, const int8_t *v, int n, int aligned) {
#pragma GCC unroll 4
  for (; n >= 8; n -= 8, v += 8) put(b, get4(v, aligned), get4(v + 4, aligned));
  if (n > 4)
    put(b, get4(v, aligned), partial4(v + 4, n - 4));
  else if (n == 4)
    put(b, get4(v, aligned), 0);
  else if (n > 0)
    put(b, partial4(v, n), 0);
}

/* Rows that are not whole words, or not aligned: out of the hot code (COLD keeps them apart, so that the
 * fast paths stay together in the instruction cache). */
#define COLD static __attribute__((noinline, cold))
COLD void write_rows_any(const int8_t *v, int rows, int n) {
  if (((uintptr_t)v & 3) == 0 && (n & 3) == 0) /* every row starts aligned */
    for (int r = 0; r < rows; r++, v += n) put_row(0, v, n, 1);
  else
    for (int r = 0; r < rows; r++, v += n) put_row(0, v, n, 0);
}

/* `rows` rows of n int8, back to back from v, into A at a_base (rows of `stride` words). */
static void write_inputs(const int8_t *v, int rows, int n, int stride, uint32_t a_base) {
  cfu_gemm_set(CFU_GEMM_REG_A_STRIDE, stride);
  cfu_gemm_set(CFU_GEMM_REG_A_WADDR, a_base);
  cfu_gemm_set(CFU_GEMM_REG_A_WROW, 0);
  if ((((uintptr_t)v & 3) | (n & 7)) == 0) /* whole words, rows back to back: one stream of lw pairs */
    stream(0, __builtin_assume_aligned(v, 4), rows * (n >> 3));
  else
    write_rows_any(v, rows, n);
}

/* The GEMM's registers, then START once the engine is idle (a START while busy would be refused). */
static void issue(const fc_gemm_layer_t *l, int rows, uint32_t a_base, uint32_t c_base) {
  cfu_gemm_set(CFU_GEMM_REG_M, rows);
  cfu_gemm_set(CFU_GEMM_REG_K, l->n_in);
  cfu_gemm_set(CFU_GEMM_REG_N, l->n_out);
  cfu_gemm_set(CFU_GEMM_REG_MODE, CFU_GEMM_MODE_NT);
  cfu_gemm_set(CFU_GEMM_REG_A_STRIDE, l->stride);
  cfu_gemm_set(CFU_GEMM_REG_B_STRIDE, l->stride);
  cfu_gemm_set(CFU_GEMM_REG_A_BASE, a_base);
  cfu_gemm_set(CFU_GEMM_REG_B_BASE, l->b_base);
  cfu_gemm_set(CFU_GEMM_REG_C_BASE, c_base);
  (void)cfu_gemm_wait();
  (void)cfu_gemm_start();
}

/* The output stage's per-layer registers. */
static void set_output_stage(const fc_params_t *p, int ch_base) {
  cfu_gemm_set(CFU_GEMM_REG_OUT_OFFSET, p->output_offset);
  cfu_gemm_set(CFU_GEMM_REG_ACT_MIN, p->act_min);
  cfu_gemm_set(CFU_GEMM_REG_ACT_MAX, p->act_max);
  cfu_gemm_set(CFU_GEMM_REG_CH_BASE, ch_base);
}

/* READ8 from the read pointer on: `rows` rows of n outputs, row r to out + r * out_stride. The pointer
 * moves to the next row after column n - 1, so a row takes ceil(n / 4) reads. */
COLD void read_rows_any(int rows, int n, int8_t *out, int out_stride) {
  for (int r = 0; r < rows; r++, out += out_stride) {
    int j = 0;
    for (; j + 4 <= n; j += 4) {
      uint32_t v = cfu_gemm_read8();
      out[j] = (int8_t)v;
      out[j + 1] = (int8_t)(v >> 8);
      out[j + 2] = (int8_t)(v >> 16);
      out[j + 3] = (int8_t)(v >> 24);
    }
    if (j < n)
      for (uint32_t v = cfu_gemm_read8(); j < n; j++, v >>= 8) out[j] = (int8_t)v;
  }
}

static void read_outputs(int rows, int n, int8_t *out, int out_stride) {
  if ((n & 3) == 0 && (((uintptr_t)out | (uintptr_t)out_stride) & 3) == 0 && out_stride == n) {
    /* word stores, rows back to back; four READ8 then their four stores (a CFU instruction waits while a
     * store is in the memory or write-back stage) */
    uint32_t *w = __builtin_assume_aligned(out, 4), *end = w + rows * (n >> 2);
    for (; w + 4 <= end; w += 4) {
      uint32_t v0 = cfu_gemm_read8(), v1 = cfu_gemm_read8(), v2 = cfu_gemm_read8(), v3 = cfu_gemm_read8();
      w[0] = v0;
      w[1] = v1;
      w[2] = v2;
      w[3] = v3;
    }
    for (; w < end; w++) *w = cfu_gemm_read8();
    return;
  }
  if ((n & 3) == 0 && (((uintptr_t)out | (uintptr_t)out_stride) & 3) == 0) { /* word stores, row by row */
    for (int r = 0; r < rows; r++, out += out_stride) {
      uint32_t *w = __builtin_assume_aligned(out, 4);
      for (int j = 0; j < n; j += 4) *w++ = cfu_gemm_read8();
    }
    return;
  }
  if (((n | out_stride | (int)(uintptr_t)out) & 1) == 0) { /* halfword stores */
    for (int r = 0; r < rows; r++, out += out_stride) {
      uint16_t *h = __builtin_assume_aligned(out, 2);
      int j = 0;
      for (; j + 4 <= n; j += 4, h += 2) {
        uint32_t v = cfu_gemm_read8();
        h[0] = (uint16_t)v;
        h[1] = (uint16_t)(v >> 16);
      }
      if (j < n) {
        uint32_t v = cfu_gemm_read8();
        h[0] = (uint16_t)v;
        if (j + 2 < n) h[1] = (uint16_t)(v >> 16);
      }
    }
    return;
  }
  read_rows_any(rows, n, out, out_stride);
}

/* The read pointer at row 0, column 0 of the rows x n result at c_base. */
static void point_at(uint32_t c_base, int rows, int n) {
  cfu_gemm_set(CFU_GEMM_REG_R_BASE, c_base);
  cfu_gemm_set(CFU_GEMM_REG_R_M, rows);
  cfu_gemm_set(CFU_GEMM_REG_R_N, n);
  cfu_gemm_set(CFU_GEMM_REG_R_ROW, 0);
  cfu_gemm_set(CFU_GEMM_REG_R_COL, 0);
}

/* Any rows: one at a time, then its channel entry. */
COLD void load_rows_any(const fc_params_t *p, const int8_t *filter, const int32_t *bias,
                        const int32_t *multipliers, const int32_t *shifts, int n_in, int n_out, int ch_base) {
  const uint32_t offset = (uint32_t)p->input_offset;
  const int aligned = (n_in & 3) == 0 && ((uintptr_t)filter & 3) == 0; /* then every row is */
  for (int o = 0; o < n_out; o++, filter += n_in) {
    if (aligned)
      put_row(1, filter, n_in, 1);
    else
      put_row(1, filter, n_in, 0);
    const uint32_t ch = (uint32_t)(ch_base + o) & (CFU_GEMM_CHANNELS - 1);
    /* acc + bias in TFLM = sum w*x + (bias + input_offset * rowsum), both wrapping at 32 bits. */
    const uint32_t row_sum = cfu_gemm_get(CFU_GEMM_REG_B_ROWSUM);
    (void)cfu_gemm_ch_bias(ch, (bias ? (uint32_t)bias[o] : 0u) + offset * row_sum);
    (void)cfu_gemm_ch_mult(ch, multipliers ? multipliers[o] : p->output_multiplier);
    (void)cfu_gemm_ch_shift(ch, shifts ? shifts[o] : p->output_shift);
  }
}

/* n_out rows of `groups` groups of four WRITE_B (aligned), per-tensor multiplier and shift: for each row the
 * channel's multiplier and shift, the row, then its bias + input_offset * B_ROWSUM. By hand, as STREAM4:
 * each CFU instruction placed where no load is in the memory or write-back stage. */
static void load_rows_fast(const int8_t *filter, const int32_t *bias, const fc_params_t *p, int n_out,
                           int groups, int ch_base) {
  const uint32_t offset = (uint32_t)p->input_offset, mult = (uint32_t)p->output_multiplier;
  const uint32_t shift = (uint32_t)p->output_shift;
  const uint32_t *w = __builtin_assume_aligned(filter, 4);
  uint32_t ch = (uint32_t)ch_base & (CFU_GEMM_CHANNELS - 1);
#ifdef CFU_SOFTWARE_DEFINED
  for (int o = 0; o < n_out; o++, ch = (ch + 1) & (CFU_GEMM_CHANNELS - 1)) {
    (void)cfu_gemm_ch_mult(ch, mult);
    (void)cfu_gemm_ch_shift(ch, shift);
    int g = groups;
    STREAM4(CFU_GEMM_OP_WRITE_B, w, g);
    (void)cfu_gemm_ch_bias(ch, (uint32_t)bias[o] + offset * cfu_gemm_get(CFU_GEMM_REG_B_ROWSUM));
  }
#else
  _Static_assert(CFU_GEMM_CHANNELS <= 2048, "the channel index wraps with andi");
  uint32_t t0, t1, t2, t3, t4, t5, t6, t7, b, g, rows = (uint32_t)n_out;
  const uint32_t rowsum_reg = CFU_GEMM_REG_B_ROWSUM;
  __asm__ volatile(
      "2:\n"
      "lw %[b], 0(%[bias])\n"
      "mv %[g], %[groups]\n"
      "addi %[bias], %[bias], 4\n"
      ".insn r 0x0B, 7, " CFU_STR(CFU_GEMM_OP_CH_MULT) ", x0, %[mult], %[ch]\n"
      ".insn r 0x0B, 7, " CFU_STR(CFU_GEMM_OP_CH_SHIFT) ", x0, %[shift], %[ch]\n"
      "1:\n"
      "lw %[t0], 0(%[w])\n lw %[t1], 4(%[w])\n lw %[t2], 8(%[w])\n lw %[t3], 12(%[w])\n"
      "lw %[t4], 16(%[w])\n lw %[t5], 20(%[w])\n lw %[t6], 24(%[w])\n lw %[t7], 28(%[w])\n"
      "addi %[w], %[w], 32\n addi %[g], %[g], -1\n"
      ".insn r 0x0B, 7, " CFU_STR(CFU_GEMM_OP_WRITE_B) ", x0, %[t0], %[t1]\n"
      ".insn r 0x0B, 7, " CFU_STR(CFU_GEMM_OP_WRITE_B) ", x0, %[t2], %[t3]\n"
      ".insn r 0x0B, 7, " CFU_STR(CFU_GEMM_OP_WRITE_B) ", x0, %[t4], %[t5]\n"
      ".insn r 0x0B, 7, " CFU_STR(CFU_GEMM_OP_WRITE_B) ", x0, %[t6], %[t7]\n"
      "bnez %[g], 1b\n"
      ".insn r 0x0B, 7, " CFU_STR(CFU_GEMM_OP_GGET) ", %[t0], %[rsreg], x0\n"
      "addi %[rows], %[rows], -1\n"
      "mul %[t0], %[t0], %[offset]\n"
      "add %[t0], %[t0], %[b]\n"
      ".insn r 0x0B, 7, " CFU_STR(CFU_GEMM_OP_CH_BIAS) ", x0, %[t0], %[ch]\n"
      "addi %[ch], %[ch], 1\n"
      "andi %[ch], %[ch], " CFU_STR(CFU_GEMM_CHANNELS) " - 1\n"
      "bnez %[rows], 2b\n"
      : [w] "+r"(w), [bias] "+r"(bias), [ch] "+r"(ch), [rows] "+r"(rows), [g] "=&r"(g), [b] "=&r"(b),
        [t0] "=&r"(t0), [t1] "=&r"(t1), [t2] "=&r"(t2), [t3] "=&r"(t3), [t4] "=&r"(t4), [t5] "=&r"(t5),
        [t6] "=&r"(t6), [t7] "=&r"(t7)
      : [groups] "r"(groups), [mult] "r"(mult), [shift] "r"(shift), [offset] "r"(offset), [rsreg] "r"(rowsum_reg)
      : "memory");
#endif
}

void fc_gemm_load(fc_gemm_layer_t *l, const fc_params_t *p, const int8_t *filter, const int32_t *bias,
                  const int32_t *multipliers, const int32_t *shifts, int n_in, int n_out, uint32_t b_base,
                  int ch_base) {
  const int stride = (n_in + 7) >> 3;
  l->n_in = n_in;
  l->n_out = n_out;
  l->stride = stride;
  l->b_base = b_base;
  l->ch_base = ch_base;
  cfu_gemm_set(CFU_GEMM_REG_B_STRIDE, stride);
  cfu_gemm_set(CFU_GEMM_REG_B_WADDR, b_base);
  cfu_gemm_set(CFU_GEMM_REG_B_WROW, 0);
  if ((((uintptr_t)filter & 3) | (n_in & 31)) == 0 && n_in > 0 && n_out > 0 && bias && !multipliers) {
    /* TFLM's per-tensor layers with rows of whole groups of four WRITEs */
    load_rows_fast(filter, bias, p, n_out, stride >> 2, ch_base);
    return;
  }
  load_rows_any(p, filter, bias, multipliers, shifts, n_in, n_out, ch_base);
}

void fc_gemm_start(const fc_gemm_layer_t *l, const int8_t *input, int batch, uint32_t a_base, uint32_t c_base) {
  write_inputs(input, batch, l->n_in, l->stride, a_base);
  issue(l, batch, a_base, c_base);
}

void fc_gemm_finish(const fc_gemm_layer_t *l, const fc_params_t *p, int batch, int8_t *output) {
  (void)cfu_gemm_wait();
  set_output_stage(p, l->ch_base);
  read_outputs(batch, l->n_out, output, l->n_out);
}

/* Rows too long for the engine's buffers: the MAC4 ops, one output at a time when per channel. */
static void fc_mac4(const fc_params_t *p, const int32_t *multipliers, const int32_t *shifts, const int8_t *input,
                    int batch, int n_in, const int8_t *filter, const int32_t *bias, int n_out, int8_t *output) {
  static const int32_t zero = 0;
  fc_params_t q = *p;
  for (int b = 0; b < batch; b++, input += n_in, output += n_out) {
    for (int o = 0; o < n_out; o++) {
      if (multipliers) {
        q.output_multiplier = multipliers[o];
        q.output_shift = shifts[o];
      }
      fc_int8_cfu(&q, input, n_in, filter + o * n_in, bias ? bias + o : &zero, 1, output + o);
    }
  }
}

INLINE int min_int(int a, int b) { return a < b ? a : b; }

void fc_int8_gemm_batch(const fc_params_t *p, const int32_t *multipliers, const int32_t *shifts,
                        const int8_t *input, int batch, int n_in, const int8_t *filter, const int32_t *bias,
                        int n_out, int8_t *output) {
  if (batch < 1 || n_in < 1 || n_out < 1) return;
  const int stride = (n_in + 7) >> 3;
  if (stride > OPERAND_HALF) {
    fc_mac4(p, multipliers, shifts, input, batch, n_in, filter, bias, n_out, output);
    return;
  }
  /* Weights: as many rows as fit the whole of B, the channel table, one result row of a C half and
   * N's 16 bits; a chunk that is not the last holds a multiple of 4 (its outputs start word-aligned). */
  int nb = min_int(min_int(2 * OPERAND_HALF / stride, CFU_GEMM_CHANNELS), min_int(CFU_GEMM_COLS * RESULT_HALF, 0xFFFF));
  if (nb < n_out && nb > 4) nb &= ~3;
  set_output_stage(p, 0);
  for (int o0 = 0; o0 < n_out;) {
    const int nn = min_int(nb, n_out - o0);
    fc_gemm_layer_t l;
    fc_gemm_load(&l, p, filter + o0 * n_in, bias ? bias + o0 : 0, multipliers ? multipliers + o0 : 0,
                 shifts ? shifts + o0 : 0, n_in, nn, 0, 0);
    /* Inputs: rows per GEMM such that they fit half of A and their results half of C. */
    const int tiles = (nn + CFU_GEMM_COLS - 1) >> CFU_GEMM_LOG2_COLS;
    const int mc = min_int(min_int(OPERAND_HALF / stride, RESULT_HALF / tiles), 0xFFFF);
    int8_t *out = output + o0;
    /* Chunk i uses half i mod 2 of A and of C. Its inputs are written while chunk i - 1 computes, and
     * chunk i - 1's outputs read while chunk i computes. */
    int m = min_int(mc, batch), half = 0;
    write_inputs(input, m, n_in, stride, 0);
    issue(&l, m, 0, 0);
    int prev_m = m, prev_half = 0;
    const int8_t *in = input + m * n_in;
    for (int b0 = m; b0 < batch; b0 += m, in += m * n_in) {
      m = min_int(mc, batch - b0);
      half ^= 1;
      write_inputs(in, m, n_in, stride, half ? OPERAND_HALF : 0);
      issue(&l, m, half ? OPERAND_HALF : 0, half ? RESULT_HALF : 0);
      point_at(prev_half ? RESULT_HALF : 0, prev_m, nn);
      read_outputs(prev_m, nn, out, n_out);
      out += prev_m * n_out;
      prev_m = m;
      prev_half = half;
    }
    (void)cfu_gemm_wait();
    point_at(prev_half ? RESULT_HALF : 0, prev_m, nn);
    read_outputs(prev_m, nn, out, n_out);
    o0 += nn;
  }
}

void fc_int8_gemm(const fc_params_t *p, const int8_t *input, int n_in, const int8_t *filter, const int32_t *bias,
                  int n_out, int8_t *output) {
  fc_int8_gemm_batch(p, 0, 0, input, 1, n_in, filter, bias, n_out, output);
}

void fc_int8_gemm_per_channel(const fc_params_t *p, const int32_t *multipliers, const int32_t *shifts,
                              const int8_t *input, int n_in, const int8_t *filter, const int32_t *bias,
                              int n_out, int8_t *output) {
  fc_int8_gemm_batch(p, multipliers, shifts, input, 1, n_in, filter, bias, n_out, output);
}
