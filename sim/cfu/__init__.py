"""cocotb testbench of the CFU: bus driver/monitor, scoreboard, stimulus, workloads."""
