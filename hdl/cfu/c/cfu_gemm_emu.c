/*
 * Software emulation of the GEMM CFU's ops (funct3 6 and 7), without time.
 *
 * software_cfu() in cfu_emu.c calls cfu_gemm_emu() for funct3 6 and 7, so a
 * firmware built with -DCFU_SOFTWARE_DEFINED and linked with cfu_emu.c and
 * this file runs every op of cfu_ops.h and cfu_gemm.h in C. Written from the
 * ISA (docs/cfu_gemm.md, reference/cfu_gemm_isa.py) and the engine's buffer
 * layouts (reference/gemm_layout.py); the tests check it bit for bit against
 * the golden model (reference/cfu_gemm.py) with cycle=None.
 *
 * There is no time: START computes the whole GEMM at once. So the engine is
 * never busy (STATUS answers 0, START is refused only for a zero size or mode
 * 3, a READ never waits), WAIT answers the cycle count the RTL's GEMM takes,
 * and the BUSY, WAIT and OVERLAP counters read 0.
 */
#include <stdint.h>

#include "cfu_gemm.h"

/* TFLM's MultiplyByQuantizedMultiplier, from cfu_emu.c (POST's output stage). */
int32_t cfu_emu_mbqm(int32_t x, int32_t multiplier, int shift);

#define R CFU_GEMM_ROWS
#define C CFU_GEMM_COLS
#define OPERAND_WORDS (2 * CFU_GEMM_OPERAND_DEPTH) /* both halves: addresses wrap modulo this */
#define RESULT_WORDS (2 * CFU_GEMM_RESULT_DEPTH)

static const int reg_bits[CFU_GEMM_NUM_REGS] = CFU_GEMM_REG_BITS;
static const uint8_t reg_signed[CFU_GEMM_NUM_REGS] = CFU_GEMM_REG_SIGNED;
static const uint8_t reg_read_only[CFU_GEMM_NUM_REGS] = CFU_GEMM_REG_READ_ONLY;
static const uint32_t reg_reset[CFU_GEMM_NUM_REGS] = CFU_GEMM_REG_RESET_VALUES;

/* Architectural state. Registers hold their value as read back (truncated, sign-extended where signed). */
static uint32_t regs[CFU_GEMM_NUM_REGS] = CFU_GEMM_REG_RESET_VALUES;
static uint32_t col_a, col_b;   /* words written into the current stored row of A / B */
static uint32_t b_row_sum;      /* sum of the current row of B so far (wraps as B_ROWSUM does) */
static uint32_t last_cycles;    /* the last GEMM's busy cycles */
static uint32_t transfers;      /* the TRANSFERS counter */
/* Buffers and channel parameters: reset keeps them. */
static int8_t buf_a[OPERAND_WORDS][R], buf_b[OPERAND_WORDS][R];
static int32_t buf_c[RESULT_WORDS][C];
static int32_t ch_bias[CFU_GEMM_CHANNELS], ch_mult[CFU_GEMM_CHANNELS];
static int8_t ch_shift[CFU_GEMM_CHANNELS];

void cfu_gemm_emu_reset(void) {
  for (int i = 0; i < CFU_GEMM_NUM_REGS; i++) regs[i] = reg_reset[i];
  col_a = col_b = b_row_sum = last_cycles = transfers = 0;
}

/* v truncated to `bits` bits, sign-extended if `is_signed`: what a register of that width holds. */
static uint32_t fit(uint32_t v, int bits, int is_signed) {
  if (bits >= 32) return v;
  uint32_t mask = (1u << bits) - 1u, sign = 1u << (bits - 1);
  v &= mask;
  return is_signed ? (v ^ sign) - sign : v;
}

static uint32_t set_reg(int reg, uint32_t v) {
  regs[reg] = fit(v, reg_bits[reg], reg_signed[reg]);
  return regs[reg];
}

/* Element (r, c) of a matrix stored at `base`, `stride` words a row: lane (r + c) mod 8 of word
 * base + r*stride + c/8. The space is a power of two words, so wrapping in 32 bits then masking is exact. */
static int32_t element(int8_t (*buf)[R], uint32_t base, uint32_t stride, uint32_t r, uint32_t c) {
  return buf[(base + r * stride + (c >> 3)) & (OPERAND_WORDS - 1)][(r + c) & (R - 1)];
}

/* WRITE_A / WRITE_B: element j of the 8 (in0's bytes, then in1's) is element 8q + j of the stored row
 * WROW, which lives in lane (WROW + j) mod 8. After STRIDE words the row is complete: WROW advances
 * (and for B, B_ROWSUM takes the row's sum). Answers the word address written. */
static uint32_t write_operand(int is_b, uint32_t in0, uint32_t in1) {
  int8_t (*buf)[R] = is_b ? buf_b : buf_a;
  int addr_reg = is_b ? CFU_GEMM_REG_B_WADDR : CFU_GEMM_REG_A_WADDR;
  int row_reg = is_b ? CFU_GEMM_REG_B_WROW : CFU_GEMM_REG_A_WROW;
  uint32_t stride = regs[is_b ? CFU_GEMM_REG_B_STRIDE : CFU_GEMM_REG_A_STRIDE];
  uint32_t *col = is_b ? &col_b : &col_a;
  uint32_t addr = regs[addr_reg], row = regs[row_reg];
  uint32_t sum = b_row_sum;
  for (int j = 0; j < R; j++) {
    int8_t v = (int8_t)((j < 4 ? in0 : in1) >> (8 * (j & 3)));
    buf[addr][(row + (uint32_t)j) & (R - 1)] = v;
    sum += (uint32_t)(int32_t)v;
  }
  uint32_t next_col = *col + 1; /* a 17-bit count: a stride of 0 is never reached */
  if (next_col == stride) {
    next_col = 0;
    set_reg(row_reg, row + 1);
    if (is_b) {
      set_reg(CFU_GEMM_REG_B_ROWSUM, sum);
      sum = 0;
    }
  }
  if (is_b) b_row_sum = sum;
  *col = next_col & 0xFFFF;
  set_reg(addr_reg, addr + 1);
  return addr;
}

/* reference/gemm.py's gemm_cycles(8, C, M, K, N): tile t of T = ceil(K/8)*ceil(N/C) launches in
 * P_t = max(P_{t-1} + a, P_{t-2} + b), P_0 = 1, a = max(M, C), b = M + 7. If b <= 2a the first term
 * always wins (P_{t-1} >= P_{t-2} + a), so P_t = 1 + t*a; otherwise P_t = 1 + (t/2)*b + (t%2)*a (the
 * two terms tie at odd t). The last row of the last tile leaves 4 + (M - 1) + (8 + C) cycles later:
 * its first row enters 4 cycles after its launch (ROW_ENTRY), and the array takes R + C (array_latency). */
static uint64_t gemm_cycles(uint32_t M, uint32_t K, uint32_t N) {
  uint64_t a = M > C ? M : C, b = (uint64_t)M + R - 1;
  uint64_t t = (uint64_t)((K + R - 1) / R) * ((N + C - 1) / C) - 1;
  uint64_t launch = 1 + (b <= 2 * a ? t * a : (t / 2) * b + (t % 2) * a);
  return launch + 4 + (M - 1) + (R + C);
}

/* START: C = A'.B' (M x K by K x N, int32 wrapping) from the stored operands in MODE; C[m, n] is lane
 * n mod C of result word C_BASE + (n / C)*M + m, lanes past N are 0. The read registers then name
 * the new result. Refused (answers 0, changes nothing) for a zero size or MODE 3. */
static uint32_t start(void) {
  uint32_t M = regs[CFU_GEMM_REG_M], K = regs[CFU_GEMM_REG_K], N = regs[CFU_GEMM_REG_N];
  uint32_t mode = regs[CFU_GEMM_REG_MODE];
  if (M == 0 || K == 0 || N == 0 || mode > CFU_GEMM_MODE_TN) return 0;
  uint32_t a_base = regs[CFU_GEMM_REG_A_BASE], a_stride = regs[CFU_GEMM_REG_A_STRIDE];
  uint32_t b_base = regs[CFU_GEMM_REG_B_BASE], b_stride = regs[CFU_GEMM_REG_B_STRIDE];
  uint32_t c_base = regs[CFU_GEMM_REG_C_BASE];
  uint32_t tiles = (N + C - 1) / C;
  for (uint32_t t = 0; t < tiles; t++) {
    for (uint32_t m = 0; m < M; m++) {
      int32_t *word = buf_c[(c_base + t * M + m) & (RESULT_WORDS - 1)];
      for (uint32_t lane = 0; lane < C; lane++) {
        uint32_t n = t * C + lane, acc = 0;
        if (n < N) {
          for (uint32_t k = 0; k < K; k++) {
            /* A' = A (stored M x K) or, in tn, its transpose (stored K x M); B' = B (K x N) or, in nt, B^T. */
            int32_t x = mode == CFU_GEMM_MODE_TN ? element(buf_a, a_base, a_stride, k, m)
                                                 : element(buf_a, a_base, a_stride, m, k);
            int32_t w = mode == CFU_GEMM_MODE_NT ? element(buf_b, b_base, b_stride, n, k)
                                                 : element(buf_b, b_base, b_stride, k, n);
            acc += (uint32_t)(x * w);
          }
        }
        word[lane] = (int32_t)acc;
      }
    }
  }
  last_cycles = (uint32_t)gemm_cycles(M, K, N);
  set_reg(CFU_GEMM_REG_R_BASE, c_base);
  set_reg(CFU_GEMM_REG_R_M, M);
  set_reg(CFU_GEMM_REG_R_N, N);
  set_reg(CFU_GEMM_REG_R_ROW, 0);
  set_reg(CFU_GEMM_REG_R_COL, 0);
  return 1;
}

/* TFLM's output stage of x = acc + bias with channel ch's multiplier and shift. */
static int32_t output_stage(int32_t acc, int ch) {
  int32_t x = (int32_t)((uint32_t)acc + (uint32_t)ch_bias[ch]);
  int32_t y = (int32_t)((uint32_t)cfu_emu_mbqm(x, ch_mult[ch], ch_shift[ch]) + regs[CFU_GEMM_REG_OUT_OFFSET]);
  int32_t lo = (int32_t)regs[CFU_GEMM_REG_ACT_MIN], hi = (int32_t)regs[CFU_GEMM_REG_ACT_MAX];
  if (y < lo) y = lo;
  if (y > hi) y = hi; /* max, then min: hi wins if lo > hi, as TFLM's clamp */
  return y;
}

/* READ32 (C[R_ROW, R_COL]; R_COL += 1) and READ8 (columns n0..n0+3, n0 = R_COL & ~3, through the output
 * stage; R_COL = n0 + 4). Past the row's last column (R_N) the pointer moves to column 0 of the next row. */
static uint32_t read_result(int eight) {
  uint32_t row = regs[CFU_GEMM_REG_R_ROW], col = regs[CFU_GEMM_REG_R_COL], n_cols = regs[CFU_GEMM_REG_R_N];
  uint32_t n0 = eight ? col & ~3u : col;
  const int32_t *word =
      buf_c[(regs[CFU_GEMM_REG_R_BASE] + (n0 >> CFU_GEMM_LOG2_COLS) * regs[CFU_GEMM_REG_R_M] + row) &
            (RESULT_WORDS - 1)];
  uint32_t result = 0, next;
  if (!eight) {
    result = (uint32_t)word[n0 & (C - 1)];
    next = col + 1;
  } else {
    for (uint32_t i = 0; i < 4; i++) {
      uint32_t n = n0 + i;
      if (n >= n_cols) continue;
      int ch = (int)((regs[CFU_GEMM_REG_CH_BASE] + n) & (CFU_GEMM_CHANNELS - 1));
      result |= ((uint32_t)output_stage(word[n & (C - 1)], ch) & 0xFFu) << (8 * i);
    }
    next = n0 + 4;
  }
  if (next >= n_cols) {
    set_reg(CFU_GEMM_REG_R_COL, 0);
    set_reg(CFU_GEMM_REG_R_ROW, row + 1);
  } else {
    set_reg(CFU_GEMM_REG_R_COL, next);
  }
  return result;
}

uint32_t cfu_gemm_emu(int funct3, int funct7, uint32_t in0, uint32_t in1) {
  if (funct3 == CFU_GSET) {
    if (funct7 < 0 || funct7 >= CFU_GEMM_NUM_REGS || reg_read_only[funct7]) return 0;
    uint32_t v = set_reg(funct7, in0);
    /* A new write position starts a new row. */
    if (funct7 == CFU_GEMM_REG_A_WADDR || funct7 == CFU_GEMM_REG_A_WROW) col_a = 0;
    if (funct7 == CFU_GEMM_REG_B_WADDR || funct7 == CFU_GEMM_REG_B_WROW) col_b = b_row_sum = 0;
    return v;
  }
  if (funct3 != CFU_GOP) return 0;
  switch (funct7) {
    case CFU_GEMM_OP_WRITE_A:
    case CFU_GEMM_OP_WRITE_B:
      transfers++;
      return write_operand(funct7 == CFU_GEMM_OP_WRITE_B, in0, in1);
    case CFU_GEMM_OP_START:
      return start();
    case CFU_GEMM_OP_WAIT:
      return last_cycles;
    case CFU_GEMM_OP_STATUS:
      return 0; /* never busy */
    case CFU_GEMM_OP_READ32:
    case CFU_GEMM_OP_READ8:
      transfers++;
      return read_result(funct7 == CFU_GEMM_OP_READ8);
    case CFU_GEMM_OP_CH_BIAS:
    case CFU_GEMM_OP_CH_MULT:
    case CFU_GEMM_OP_CH_SHIFT:
      if (in1 >= CFU_GEMM_CHANNELS) return 0; /* no such entry: no effect, not even on TRANSFERS */
      transfers++;
      if (funct7 == CFU_GEMM_OP_CH_BIAS) {
        ch_bias[in1] = (int32_t)in0;
        return in0;
      }
      if (funct7 == CFU_GEMM_OP_CH_MULT) {
        ch_mult[in1] = (int32_t)in0;
        return in0;
      }
      ch_shift[in1] = (int8_t)fit(in0, CFU_GEMM_SHIFT_BITS, 1);
      return (uint32_t)(int32_t)ch_shift[in1];
    case CFU_GEMM_OP_COUNTER:
      if (in0 == CFU_GEMM_CNT_LAST) return last_cycles;
      if (in0 == CFU_GEMM_CNT_TRANSFERS) return transfers;
      return 0; /* BUSY, WAIT, OVERLAP: nothing is ever busy; other numbers: no counter */
    case CFU_GEMM_OP_CLEAR:
      transfers = 0;
      return 0;
    case CFU_GEMM_OP_GGET:
      return in0 < CFU_GEMM_NUM_REGS ? regs[in0] : 0;
    default:
      return 0; /* unknown sub-op: no state change */
  }
}
