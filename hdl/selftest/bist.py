"""``GemmSelfTest``: runs GEMMs from ROM through a :class:`GemmEngine` and
compares every result word with the golden model's, also from ROM.

For each vector: load A and B (one word a cycle), start the GEMM, wait for
it, read every result word and compare. After the last vector ``done`` rises
with ``passed`` or ``failed``; ``errors`` counts the result words that
differed and ``cycles`` sums the engine's ``counters.total`` over the vectors (a
deterministic number: the cycle model's). A reset runs it again.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import Out

from ..systolic import GemmConfig, GemmEngine, Mode

__all__ = ["GemmSelfTest"]


class GemmSelfTest(wiring.Component):
    """Parameters
    ----------
    rows, cols : int
        The engine's array.
    vectors : list of :class:`reference.selftest_vectors.Vector`
        The GEMMs and their golden results, computed outside the design
        (usually :func:`reference.selftest_vectors.default_vectors`).
    stuck_pe : (int, int) or None
        Fault injection into the engine's array (tests use it to prove that
        the self-test fails on a broken array).

    Attributes
    ----------
    done, passed, failed : out
        ``done`` once every vector has run; then exactly one of passed/failed.
    errors : out
        Result words that differed from the golden model.
    cycles : out
        Sum of the GEMMs' cycle counts.
    vector : out
        The vector running now.
    """

    def __init__(self, rows, cols, vectors, stuck_pe=None):
        self.rows, self.cols = rows, cols
        self.vectors = list(vectors)
        if not self.vectors:
            raise ValueError("a self-test needs at least one vector")
        self.stuck_pe = tuple(stuck_pe) if stuck_pe is not None else None

        def pow2(n):  # buffers just large enough for the largest vector
            return max(4, 1 << (n - 1).bit_length())

        self.operand_depth = pow2(max(max(len(v.a_words), len(v.b_words)) for v in self.vectors))
        self.result_depth = pow2(max(len(v.c_words) for v in self.vectors))
        super().__init__(
            {
                "done": Out(1),
                "passed": Out(1),
                "failed": Out(1),
                "errors": Out(16),
                "cycles": Out(32),
                "vector": Out(8),
            }
        )

    def expected_cycles(self):
        return sum(v.cycles(self.rows, self.cols) for v in self.vectors)

    def _rom_contents(self, op_word, res_word):
        """The ROMs' words (every vector's A then B words; every vector's expected
        results), each vector's :class:`GemmConfig`, and where each vector's A, B
        and C start and end in the ROMs. The engine computes from and into the
        start of its first halves, so every config's bases and halves are 0."""
        op_init, exp_init, configs = [], [], []
        rom = {name: {"base": [], "last": []} for name in "abc"}
        for v in self.vectors:
            for name, words, init, layout in (
                ("a", v.a_words, op_init, op_word),
                ("b", v.b_words, op_init, op_word),
                ("c", v.c_words, exp_init, res_word),
            ):
                rom[name]["base"].append(len(init))
                rom[name]["last"].append(len(words) - 1)
                init += [layout.const([int(x) for x in w]).as_bits() for w in words]
            shape = {"m": v.M, "k": v.K, "n": v.N, "mode": Mode[v.mode.upper()]}
            configs.append(GemmConfig.const({**shape, "a_stride": v.a_stride, "b_stride": v.b_stride}))
        return op_init, exp_init, configs, rom

    def elaborate(self, platform):
        m = Module()
        R, C = self.rows, self.cols
        vecs = self.vectors
        m.submodules.engine = eng = GemmEngine(
            R, C, operand_depth=self.operand_depth, result_depth=self.result_depth, stuck_pe=self.stuck_pe
        )
        op_word, res_word = eng.write.data.shape(), eng.read.data.shape()

        op_init, exp_init, configs, rom = self._rom_contents(op_word, res_word)
        m.submodules.op_rom = op_rom = memory.Memory(shape=unsigned(op_word.size), depth=len(op_init), init=op_init)
        m.submodules.exp_rom = exp_rom = memory.Memory(
            shape=unsigned(res_word.size), depth=len(exp_init), init=exp_init
        )
        op_rd = op_rom.read_port()
        exp_rd = exp_rom.read_port()

        idx = Signal(range(len(vecs) + 1))

        def table(values, width=16):
            """values[idx], as a chain of Muxes (no case statement to lint); a
            constant where every vector has the same value, so that synthesis sees it."""
            out = Const(int(values[0]), width)
            if len(set(values)) == 1:
                return out
            for k, x in enumerate(values[1:], 1):
                out = Mux(idx == k, Const(int(x), width), out)
            return out

        # The running vector's GemmConfig, field by field of its layout, so that a field
        # the same in every vector (the bases, the halves) is a constant.
        bits = [c.as_bits() for c in configs]
        fields = [(f.offset, Shape.cast(f.shape).width) for _, f in GemmConfig.as_shape()]
        m.d.comb += [
            eng.start.payload.eq(Cat(table([b >> o & ((1 << w) - 1) for b in bits], w) for o, w in fields)),
            self.vector.eq(idx),
        ]
        (a_base, a_last), (b_base, b_last), (c_base, c_last) = (
            (table(rom[name]["base"]), table(rom[name]["last"])) for name in "abc"
        )

        i = Signal(16)
        # Operand writes trail their ROM reads by one cycle; so do compares.
        wr_pending, wr_sel_d, wr_addr_d = Signal(), Signal(), Signal(16)
        cmp_pending = Signal()
        m.d.sync += [wr_pending.eq(0), cmp_pending.eq(0)]
        m.d.comb += [
            eng.write.en.eq(wr_pending),
            eng.write.sel.eq(wr_sel_d),
            eng.write.half.eq(0),
            eng.write.addr.eq(wr_addr_d),
            eng.write.data.eq(op_rd.data),
        ]
        # The two words are registered, compared a cycle later, and the mismatch counted a
        # cycle after that (FLUSH waits for the last one): the block RAMs' outputs, a 256-bit
        # compare and a count in one cycle were the design's slowest path.
        errors, mismatch, flush = Signal(16), Signal(), Signal()
        got, want, cmp_d = Signal.like(eng.read.data.as_value()), Signal.like(exp_rd.data), Signal()
        m.d.sync += [got.eq(eng.read.data.as_value()), want.eq(exp_rd.data), cmp_d.eq(cmp_pending)]
        m.d.sync += mismatch.eq(cmp_d & (got != want))
        with m.If(mismatch):
            m.d.sync += errors.eq(Mux(errors == 0xFFFF, errors, errors + 1))
        m.d.comb += [self.errors.eq(errors)]

        with m.FSM(init="LOAD_A"):
            with m.State("LOAD_A"):
                m.d.comb += op_rd.addr.eq(a_base + i)
                m.d.sync += [wr_pending.eq(1), wr_sel_d.eq(0), wr_addr_d.eq(i), i.eq(i + 1)]
                with m.If(i == a_last):
                    m.d.sync += i.eq(0)
                    m.next = "LOAD_B"
            with m.State("LOAD_B"):
                m.d.comb += op_rd.addr.eq(b_base + i)
                m.d.sync += [wr_pending.eq(1), wr_sel_d.eq(1), wr_addr_d.eq(i), i.eq(i + 1)]
                with m.If(i == b_last):
                    m.d.sync += i.eq(0)
                    m.next = "START"
            with m.State("START"):
                m.d.comb += [eng.start.valid.eq(1), eng.cnt_clear.eq(1)]
                with m.If(eng.start.ready):
                    m.next = "WAIT"
            with m.State("WAIT"):
                with m.If(eng.start.ready):  # busy has fallen: the counters are final
                    m.d.sync += self.cycles.eq(self.cycles + eng.counters.total)
                    m.next = "READ"
            with m.State("READ"):
                m.d.comb += [eng.read.en.eq(1), eng.read.addr.eq(i), exp_rd.addr.eq(c_base + i)]
                m.d.sync += [cmp_pending.eq(1), i.eq(i + 1)]
                with m.If(i == c_last):
                    m.d.sync += i.eq(0)
                    m.next = "NEXT"
            with m.State("NEXT"):
                m.d.sync += idx.eq(idx + 1)
                with m.If(idx == len(vecs) - 1):
                    m.next = "FLUSH"
                with m.Else():
                    m.next = "LOAD_A"
            with m.State("FLUSH"):  # the last compare's count lands two cycles on
                with m.If(flush):
                    m.next = "DONE"
                m.d.sync += flush.eq(~flush)
            with m.State("DONE"):
                m.d.comb += [self.done.eq(1), self.passed.eq(errors == 0), self.failed.eq(errors != 0)]
        return m
