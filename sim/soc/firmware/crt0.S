/* Start-up: trap vector, CFU enable, stack, zeroed .bss, main(), then main's
 * return value to the exit register. A trap (an illegal instruction, say)
 * ends the run too, with exit code 0x7A900000 | mcause, so a broken build
 * never spins forever. */
  .equ EXIT, 0x80000000
  .equ TRAP_EXIT, 0x7A900000

  .section .text.start
  .global _start
_start:
  la t0, trap
  csrw mtvec, t0
  /* VexRiscv's CfuPlugin executes CFU instructions only with bit 31 of
     CSR 0xBC0 set; after reset they are illegal. */
  li t0, 0x80000000
  csrw 0xbc0, t0
  la sp, _stack_top
  la t0, _bss_start
  la t1, _bss_end
1:
  bgeu t0, t1, 2f
  sw zero, 0(t0)
  addi t0, t0, 4
  j 1b
2:
  call main
  li t0, EXIT
  sw a0, 0(t0)
3:
  j 3b

  .align 2
trap:
  csrr a0, mcause
  li t0, TRAP_EXIT
  or a0, a0, t0
  li t0, EXIT
  sw a0, 0(t0)
4:
  j 4b
