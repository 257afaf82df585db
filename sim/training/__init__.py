"""cocotb tests of the training datapath units."""
