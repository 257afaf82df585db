"""Formal proofs of the handshakes (issue 15, part 4): harnesses in this package, run by SymbiYosys."""
