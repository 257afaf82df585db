/*
 * Software emulation of the CFU: CFU Playground's software_cfu().
 *
 * Build firmware with -DCFU_SOFTWARE_DEFINED and link this file and
 * cfu_gemm_emu.c, and every cfu_op() in cfu_ops.h and cfu_gemm.h calls
 * software_cfu() instead of issuing a custom-0 instruction. The MAC4 family
 * (funct3 0-5) is here, written from gemmlowp fixedpoint.h and TFLite Micro
 * common.cc; all arithmetic wraps at 32 bits, as the RTL's does. The GEMM
 * ops (funct3 6 and 7) are in cfu_gemm_emu.c.
 */
#include <stdint.h>

#include "cfu_gemm.h"
#include "cfu_ops.h"

static const int reg_width[CFU_NUM_REGS] = CFU_REG_WIDTHS;
static const int32_t reg_reset[CFU_NUM_REGS] = CFU_REG_RESET_VALUES;
static int32_t regs[CFU_NUM_REGS] = CFU_REG_RESET_VALUES;

void cfu_emu_reset(void) {
  for (int i = 0; i < CFU_NUM_REGS; i++) regs[i] = reg_reset[i];
  cfu_gemm_emu_reset();
}

/* The low `bits` bits of v, sign-extended. */
static int32_t sign_extend(uint32_t v, int bits) {
  if (bits >= 32) return (int32_t)v;
  uint32_t sign = 1u << (bits - 1);
  v &= (1u << bits) - 1u;
  return (int32_t)((v ^ sign) - sign);
}

/* gemmlowp SaturatingRoundingDoublingHighMul. */
int32_t cfu_emu_srdhm(int32_t a, int32_t b) {
  int overflow = a == b && a == INT32_MIN;
  int64_t ab = (int64_t)a * (int64_t)b;
  int32_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
  int32_t high = (int32_t)((ab + nudge) / (1ll << 31));
  return overflow ? INT32_MAX : high;
}

/* gemmlowp RoundingDivideByPOT, 0 <= exponent <= 31. */
int32_t cfu_emu_rdbpot(int32_t x, int exponent) {
  int32_t mask = (int32_t)((1ll << exponent) - 1);
  int32_t remainder = x & mask;
  int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLM MultiplyByQuantizedMultiplier (double rounding); x << left wraps. */
int32_t cfu_emu_mbqm(int32_t x, int32_t multiplier, int shift) {
  int left = shift > 0 ? shift : 0;
  int right = shift < 0 ? -shift : 0;
  if (right > 31) right = 31;
  int32_t scaled = (int32_t)((uint32_t)x << left);
  return cfu_emu_rdbpot(cfu_emu_srdhm(scaled, multiplier), right);
}

uint32_t software_cfu(int funct3, int funct7, uint32_t rs1, uint32_t rs2) {
  switch (funct3) {
    case CFU_MAC4:
      if (funct7 == CFU_MAC4_ACCUMULATE || funct7 == CFU_MAC4_FIRST) {
        uint32_t acc = funct7 == CFU_MAC4_FIRST ? 0u : (uint32_t)regs[CFU_REG_ACC];
        for (int i = 0; i < 4; i++) {
          int32_t in = (int8_t)(rs1 >> (8 * i)), filter = (int8_t)(rs2 >> (8 * i));
          acc += (uint32_t)((in + regs[CFU_REG_INPUT_OFFSET]) * filter);
        }
        regs[CFU_REG_ACC] = (int32_t)acc;
        return acc;
      }
      break;
    case CFU_SET:
      if (funct7 < CFU_NUM_REGS) {
        regs[funct7] = sign_extend(rs1, reg_width[funct7]);
        return (uint32_t)regs[funct7];
      }
      break;
    case CFU_GET:
      if (funct7 < CFU_NUM_REGS) return (uint32_t)regs[funct7];
      break;
    case CFU_SRDHM:
      if (funct7 == 0) return (uint32_t)cfu_emu_srdhm((int32_t)rs1, (int32_t)rs2);
      break;
    case CFU_RDBPOT:
      if (funct7 == 0) return (uint32_t)cfu_emu_rdbpot((int32_t)rs1, (int)(rs2 & 31));
      break;
    case CFU_POST:
      if (funct7 == 0) {
        int32_t x = (int32_t)((uint32_t)regs[CFU_REG_ACC] + rs1);
        int32_t y = (int32_t)((uint32_t)cfu_emu_mbqm(x, regs[CFU_REG_OUTPUT_MULTIPLIER], regs[CFU_REG_OUTPUT_SHIFT]) +
                              (uint32_t)regs[CFU_REG_OUTPUT_OFFSET]);
        if (y < regs[CFU_REG_ACT_MIN]) y = regs[CFU_REG_ACT_MIN];
        if (y > regs[CFU_REG_ACT_MAX]) y = regs[CFU_REG_ACT_MAX];
        return (uint32_t)y;
      }
      break;
    case CFU_GSET:
    case CFU_GOP:
      return cfu_gemm_emu(funct3, funct7, rs1, rs2);
    default:
      break;
  }
  return 0; /* undefined function_id: no state change */
}
