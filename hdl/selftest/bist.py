"""``GemmSelfTest``: runs GEMMs from ROM through a :class:`GemmEngine` and
compares every result word with the golden model's, also from ROM.

For each vector: load A and B (one word a cycle), start the GEMM, wait for
it, read every result word and compare. After the last vector ``done`` rises
with ``passed`` or ``failed``; ``errors`` counts the result words that
differed and ``cycles`` sums the engine's ``cnt_total`` over the vectors (a
deterministic number: the cycle model's). A reset runs it again.
"""
from amaranth.hdl import Signal, Module, Mux, Const, unsigned
from amaranth.lib import wiring, memory
from amaranth.lib.wiring import Out

from reference.gemm_layout import lanes_to_int
from ..systolic import GemmEngine

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
        def pow2(n):                 # buffers just large enough for the largest vector
            return max(4, 1 << (n - 1).bit_length())
        self.operand_depth = pow2(max(max(len(v.a_words), len(v.b_words)) for v in self.vectors))
        self.result_depth = pow2(max(len(v.c_words) for v in self.vectors))
        super().__init__({
            "done": Out(1), "passed": Out(1), "failed": Out(1),
            "errors": Out(16), "cycles": Out(32), "vector": Out(8),
        })

    def expected_cycles(self):
        return sum(v.cycles(self.rows, self.cols) for v in self.vectors)

    def elaborate(self, platform):
        m = Module()
        R, C = self.rows, self.cols
        vecs = self.vectors
        m.submodules.engine = eng = GemmEngine(R, C, operand_depth=self.operand_depth,
                                               result_depth=self.result_depth, stuck_pe=self.stuck_pe)

        # ROMs: every vector's A then B words; every vector's expected results.
        op_init, exp_init, a_base, b_base, c_base = [], [], [], [], []
        for v in vecs:
            a_base.append(len(op_init))
            op_init += [lanes_to_int(w, 8) for w in v.a_words]
            b_base.append(len(op_init))
            op_init += [lanes_to_int(w, 8) for w in v.b_words]
            c_base.append(len(exp_init))
            exp_init += [lanes_to_int(w, 32) for w in v.c_words]
        m.submodules.op_rom = op_rom = memory.Memory(shape=unsigned(8 * R), depth=len(op_init), init=op_init)
        m.submodules.exp_rom = exp_rom = memory.Memory(shape=unsigned(32 * C), depth=len(exp_init),
                                                       init=exp_init)
        op_rd = op_rom.read_port()
        exp_rd = exp_rom.read_port()

        idx = Signal(range(len(vecs) + 1))

        def table(values, width=16):
            """values[idx], as a chain of Muxes (no case statement to lint)."""
            out = Const(int(values[0]), width)
            for k, x in enumerate(values[1:], 1):
                out = Mux(idx == k, Const(int(x), width), out)
            return out

        field = {name: table(vals) for name, vals in {
            "m": [v.M for v in vecs], "k": [v.K for v in vecs], "n": [v.N for v in vecs],
            "mode": [v.mode_code for v in vecs], "a_stride": [v.a_stride for v in vecs],
            "b_stride": [v.b_stride for v in vecs], "a_base": a_base, "b_base": b_base, "c_base": c_base,
            "a_last": [len(v.a_words) - 1 for v in vecs], "b_last": [len(v.b_words) - 1 for v in vecs],
            "c_last": [len(v.c_words) - 1 for v in vecs]}.items()}

        i = Signal(16)
        # Operand writes trail their ROM reads by one cycle; so do compares.
        wr_pending, wr_sel_d, wr_addr_d = Signal(), Signal(), Signal(16)
        cmp_pending = Signal()
        m.d.sync += [wr_pending.eq(0), cmp_pending.eq(0)]
        m.d.comb += [
            eng.wr_en.eq(wr_pending), eng.wr_sel.eq(wr_sel_d), eng.wr_half.eq(0),
            eng.wr_addr.eq(wr_addr_d), eng.wr_data.eq(op_rd.data),
            eng.cfg_m.eq(field["m"]), eng.cfg_k.eq(field["k"]), eng.cfg_n.eq(field["n"]),
            eng.cfg_mode.eq(field["mode"]), eng.cfg_a_stride.eq(field["a_stride"]),
            eng.cfg_b_stride.eq(field["b_stride"]), eng.cfg_operand_half.eq(0), eng.cfg_result_half.eq(0),
            self.vector.eq(idx),
        ]
        errors = Signal(16)
        with m.If(cmp_pending & (eng.rd_data.as_value() != exp_rd.data)):
            m.d.sync += errors.eq(Mux(errors == 0xFFFF, errors, errors + 1))
        m.d.comb += [self.errors.eq(errors)]

        # The sequencer. (A plain state switch with a default, rather than
        # m.FSM(), so that the Verilog has no incomplete case statements.)
        LOAD_A, LOAD_B, START, WAIT, READ, NEXT, DONE = range(7)
        state = Signal(range(7), init=LOAD_A)
        with m.Switch(state):
            with m.Case(LOAD_A):
                m.d.comb += op_rd.addr.eq(field["a_base"] + i)
                m.d.sync += [wr_pending.eq(1), wr_sel_d.eq(0), wr_addr_d.eq(i), i.eq(i + 1)]
                with m.If(i == field["a_last"]):
                    m.d.sync += [i.eq(0), state.eq(LOAD_B)]
            with m.Case(LOAD_B):
                m.d.comb += op_rd.addr.eq(field["b_base"] + i)
                m.d.sync += [wr_pending.eq(1), wr_sel_d.eq(1), wr_addr_d.eq(i), i.eq(i + 1)]
                with m.If(i == field["b_last"]):
                    m.d.sync += [i.eq(0), state.eq(START)]
            with m.Case(START):
                m.d.comb += [eng.start.eq(1), eng.cnt_clear.eq(1)]
                with m.If(eng.ready):
                    m.d.sync += state.eq(WAIT)
            with m.Case(WAIT):
                with m.If(eng.ready):        # busy has fallen: cnt_total is final
                    m.d.sync += [self.cycles.eq(self.cycles + eng.cnt_total), state.eq(READ)]
            with m.Case(READ):
                m.d.comb += [eng.rd_en.eq(1), eng.rd_addr.eq(i), exp_rd.addr.eq(field["c_base"] + i)]
                m.d.sync += [cmp_pending.eq(1), i.eq(i + 1)]
                with m.If(i == field["c_last"]):
                    m.d.sync += [i.eq(0), state.eq(NEXT)]
            with m.Case(NEXT):
                m.d.sync += [idx.eq(idx + 1), state.eq(Mux(idx == len(vecs) - 1, DONE, LOAD_A))]
            with m.Default():                # DONE
                m.d.comb += [self.done.eq(1), self.passed.eq(errors == 0), self.failed.eq(errors != 0)]
        return m
