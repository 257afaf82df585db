/* Logs every CFU op to stderr ("funct3 funct7 in0 in1") on its way to software_cfu(): compile the code
 * under test with -Dsoftware_cfu=traced_cfu and link this file. */
#include <stdint.h>
#include <stdio.h>

uint32_t software_cfu(int funct3, int funct7, uint32_t rs1, uint32_t rs2);

uint32_t traced_cfu(int funct3, int funct7, uint32_t rs1, uint32_t rs2) {
  fprintf(stderr, "%d %d %lu %lu\n", funct3, funct7, (unsigned long)rs1, (unsigned long)rs2);
  return software_cfu(funct3, funct7, rs1, rs2);
}
