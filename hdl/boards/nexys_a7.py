"""The Nexys A7-100T (xc7a100t-csg324-1) self-test top, and its Vivado build plan.

At power-up, and again whenever the CPU RESET button is pressed (the
platform's default reset), :class:`hdl.selftest.GemmSelfTest` runs its GEMMs
on an 8×8 engine and shows:

* LD0: passed; LD1: failed; LD2: running; LD8..LD15: the mismatching-word
  count (saturated at 255);
* the eight-digit display: the GEMMs' total cycle count in hexadecimal.

``write_build_plan`` uses amaranth-boards' ``Nexys4DDRPlatform`` with
``do_build=False``: it writes the Verilog, XDC and Vivado Tcl/shell scripts
that a machine with Vivado runs; nothing here needs Vivado.
"""

from pathlib import Path

from amaranth.hdl import Array, Const, Elaboratable, Module, Mux, Signal
from amaranth.lib import io

from reference.selftest_vectors import default_vectors

from ..selftest import GemmSelfTest

__all__ = ["NexysA7SelfTest", "SEGMENTS", "write_build_plan"]

#: Segments (a..g, bit 0 = a) of each hexadecimal digit.
SEGMENTS = [0x3F, 0x06, 0x5B, 0x4F, 0x66, 0x6D, 0x7D, 0x07, 0x7F, 0x6F, 0x77, 0x7C, 0x39, 0x5E, 0x79, 0x71]


class NexysA7SelfTest(Elaboratable):
    def __init__(self, rows=8, cols=8, refresh_bits=17):
        self.rows, self.cols = rows, cols
        self.refresh_bits = refresh_bits  # 100 MHz / 2**17: each digit lit ~760 times a second

    def elaborate(self, platform):
        m = Module()
        m.submodules.bist = bist = GemmSelfTest(self.rows, self.cols, default_vectors(self.rows, self.cols))

        def output(port, name):
            m.submodules[name] = buf = io.Buffer("o", port)
            return buf.o

        leds = [output(platform.request("led", i, dir="-"), f"led_{i}") for i in range(16)]
        errors = Mux(bist.errors > 255, 255, bist.errors[:8])
        m.d.comb += [leds[0].eq(bist.passed), leds[1].eq(bist.failed), leds[2].eq(~bist.done)]
        for i in range(8):
            m.d.comb += leds[8 + i].eq(errors[i])

        # Eight digits, one lit at a time, scanned from a free-running counter.
        scan = Signal(self.refresh_bits + 3)
        m.d.sync += scan.eq(scan + 1)
        digit = scan[self.refresh_bits :]
        nibble = Array(bist.cycles[4 * d : 4 * d + 4] for d in range(8))[digit]
        pattern = Array(Const(p, 7) for p in SEGMENTS)[nibble]
        seg = platform.request("display_7seg", 0, dir="-")
        for bit, segment in enumerate("abcdefg"):
            m.d.comb += output(getattr(seg, segment), f"seg_{segment}").eq(pattern[bit])
        m.d.comb += [
            output(seg.dp, "seg_dp").eq(0),
            # the platform inverts: the anodes are active low
            output(platform.request("display_7seg_an", 0, dir="-"), "anodes").eq(1 << digit),
        ]
        return m


def write_build_plan(out_dir, rows=8, cols=8):
    """Write the Vivado build plan of the self-test top into ``out_dir``; return the files."""
    from amaranth_boards.nexys4ddr import Nexys4DDRPlatform

    out_dir = Path(out_dir)
    plan = Nexys4DDRPlatform().build(NexysA7SelfTest(rows, cols), name="nexys_a7_selftest", do_build=False)
    plan.extract(out_dir)
    return sorted(p for p in out_dir.iterdir() if p.is_file())
