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

The self-test does not run from the board's 100 MHz oscillator: no tool here
has checked it at 100 MHz. An MMCM makes :data:`SELFTEST_CLOCK_HZ` (50 MHz)
from it, and the XDC declares that clock on the self-test's domain, so
Vivado checks the design against the clock it runs at. ``make timing``
placed and routed the self-test at 105.8 MHz on an ECP5-85F (speed 8), with
8 xc7 LUT levels (docs/performance.md; 59.9 MHz before issue 13's
pipelining); the Artix-7 is the faster part, and 50 MHz leaves margin for
the board's own I/O logic, which that figure does not include.
"""

from pathlib import Path

from amaranth.hdl import Array, ClockDomain, Const, Elaboratable, Instance, Module, Mux, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

from reference.selftest_vectors import default_vectors

from ..selftest import GemmSelfTest

__all__ = ["NexysA7SelfTest", "SEGMENTS", "SELFTEST_CLOCK_HZ", "write_build_plan"]

#: The self-test's clock: the MMCM's CLKOUT0, 100 MHz x 10 / 20.
SELFTEST_CLOCK_HZ = 50_000_000
#: MMCME2_BASE settings: VCO = 100 MHz x CLKFBOUT_MULT_F = 1 GHz (the -1 grade allows 600 MHz..1.2 GHz).
MMCM_MULT, MMCM_DIVIDE = 10.0, 20.0

#: Segments (a..g, bit 0 = a) of each hexadecimal digit.
SEGMENTS = [0x3F, 0x06, 0x5B, 0x4F, 0x66, 0x6D, 0x7D, 0x07, 0x7F, 0x6F, 0x77, 0x7C, 0x39, 0x5E, 0x79, 0x71]


class NexysA7SelfTest(Elaboratable):
    def __init__(self, rows=8, cols=8, refresh_bits=16):
        self.rows, self.cols = rows, cols
        self.refresh_bits = refresh_bits  # 50 MHz / 2**16: each digit lit ~760 times a second

    def elaborate(self, platform):
        m = Module()
        self._clock(m, platform)
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

    def _clock(self, m, platform):
        """The ``sync`` domain: the MMCM's 50 MHz through a BUFG, held in reset until the MMCM locks."""
        clk100 = platform.request(platform.default_clk, dir="-")
        rst = platform.request(platform.default_rst, dir="-")
        m.submodules.clk100_buf = clk_in = io.Buffer("i", clk100)
        m.submodules.rst_buf = rst_in = io.Buffer("i", rst)  # the platform inverts: CPU RESET is active low
        m.domains.sync = sync = ClockDomain("sync")
        feedback, clkout0, locked = Signal(), Signal(), Signal()
        m.submodules.mmcm = Instance(
            "MMCME2_BASE",
            p_CLKIN1_PERIOD=1e9 / platform.default_clk_frequency,
            p_CLKFBOUT_MULT_F=MMCM_MULT,
            p_DIVCLK_DIVIDE=1,
            p_CLKOUT0_DIVIDE_F=MMCM_DIVIDE,
            i_CLKIN1=clk_in.i,
            i_CLKFBIN=feedback,
            o_CLKFBOUT=feedback,
            o_CLKOUT0=clkout0,
            o_LOCKED=locked,
            i_RST=rst_in.i,
            i_PWRDWN=0,
        )
        m.submodules.bufg = Instance("BUFG", i_I=clkout0, o_O=sync.clk)
        m.submodules.reset_sync = ResetSynchronizer(rst_in.i | ~locked, domain="sync")
        assert platform.default_clk_frequency * MMCM_MULT / MMCM_DIVIDE == SELFTEST_CLOCK_HZ
        platform.add_clock_constraint(sync.clk, SELFTEST_CLOCK_HZ)


def write_build_plan(out_dir, rows=8, cols=8):
    """Write the Vivado build plan of the self-test top into ``out_dir``; return the files."""
    from amaranth_boards.nexys4ddr import Nexys4DDRPlatform

    out_dir = Path(out_dir)
    plan = Nexys4DDRPlatform().build(NexysA7SelfTest(rows, cols), name="nexys_a7_selftest", do_build=False)
    plan.extract(out_dir)
    return sorted(p for p in out_dir.iterdir() if p.is_file())
