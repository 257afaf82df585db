/* Reads "function_id in0 in1" lines, prints software_cfu's response to each. */
#include <stdio.h>
#include <stdint.h>

#include "cfu_ops.h"

int main(void) {
  unsigned long fid, in0, in1;
  while (scanf("%lu %lu %lu", &fid, &in0, &in1) == 3)
    printf("%lu\n", (unsigned long)software_cfu((int)(fid & 7), (int)(fid >> 3), (uint32_t)in0, (uint32_t)in1));
  return 0;
}
