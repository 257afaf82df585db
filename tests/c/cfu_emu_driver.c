/* Reads "function_id in0 in1" lines, prints software_cfu's response to each.
 * A function_id of 1024 or more (outside the 10-bit field) is a reset: cfu_emu_reset(), printed as 0. */
#include <stdio.h>
#include <stdint.h>

#include "cfu_ops.h"

int main(void) {
  unsigned long fid, in0, in1;
  while (scanf("%lu %lu %lu", &fid, &in0, &in1) == 3) {
    if (fid >= 1024) {
      cfu_emu_reset();
      printf("0\n");
      continue;
    }
    printf("%lu\n", (unsigned long)software_cfu((int)(fid & 7), (int)(fid >> 3), (uint32_t)in0, (uint32_t)in1));
  }
  return 0;
}
