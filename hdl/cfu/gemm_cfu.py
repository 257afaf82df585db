"""The GEMM CFU: :class:`GemmEngine` behind CFU Playground's port (``docs/cfu_gemm.md``).

* :class:`GemmCfuCore`: the GEMM ops (funct3 6 and 7, :mod:`reference.cfu_gemm_isa`)
  with ``lib.stream`` ``cmd``/``rsp`` (:data:`COMMAND`/:data:`RESPONSE`), in ``sync``.
* :class:`CombinedCfuCore`: :class:`CfuCore` (funct3 0-5) and :class:`GemmCfuCore`
  (6-7) behind one pair of streams, responses in command order.
* :class:`GemmCfu`: the combined core with CFU Playground's port list, its own
  ``clk`` and synchronous ``reset``, as :class:`hdl.cfu.core.Cfu` has: ``cfu.v``.

Timing of :class:`GemmCfuCore` (cycles from the accepting cycle to ``rsp.valid``;
the figures are :mod:`reference.cfu_gemm_isa`'s):

* All architectural state changes at the edge that ends the accepting cycle.
* Fast ops (GSET, WRITE_A/B, START, STATUS, CH_*, COUNTER, CLEAR, GGET,
  undefined) answer in ``GEMM_FAST_LATENCY`` = 1, one a cycle.
* START drives the engine's ``start`` in the accepting cycle t: the engine is
  busy in t+1 .. t+T.
* WAIT answers in the first cycle after acceptance in which the engine is idle
  (in cycle max(s, t+T) + 1 for a WAIT taken in s).
* READ32 answers in ``READ32_LATENCY`` = 2 (the word's read, then the
  response), READ8 in ``READ8_LATENCY`` = 4 (read; acc + bias << left; the
  products; rounding, offset and clamp). A READ taken while the engine is
  busy writing the half it reads waits, and reads in cycle t+T+1.
* While a WAIT or READ is pending, and while a response waits for
  ``rsp.ready``, ``cmd.ready`` is low.
* Reset (synchronous): registers, counters and the engine restart; the
  buffers and the channel parameters keep their contents.
"""

from amaranth.hdl import (
    Array,
    Cat,
    Const,
    Module,
    Mux,
    ResetSignal,
    Signal,
    signed,
)
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from reference import cfu_gemm_isa
from reference.cfu_gemm_isa import (
    DEFAULT_GEOMETRY,
    GOP,
    GSET,
    READ_ONLY_REGS,
    REG_RESET,
    ROWS,
    SHIFT_BITS,
    SIGNED_REGS,
    TRANSFER_OPS,
    Counter,
    GemmOp,
    GemmReg,
    info_word,
)
from reference.gemm import MODES, ROW_ENTRY, array_latency

from ..systolic.engine import GemmEngine
from .core import CFU_PORTS, COMMAND, RESPONSE, CfuCore, cfu_playground_ports
from .output_stage import INT32_MIN, offset_clamp, rounding_divide, shift_amounts, srdhm_high

__all__ = ["GemmCfuCore", "CombinedCfuCore", "GemmCfu", "READ8_LANES"]

#: Channels READ8 answers at once (int8 packed four to a word).
READ8_LANES = 4


def _lg(v):
    return v.bit_length() - 1


class GemmCfuCore(wiring.Component):
    """The GEMM ops as two streams, in the ``sync`` domain.

    Parameters
    ----------
    geometry : reference.cfu_gemm_isa.GemmCfuGeometry
        The engine's columns, buffer depths and channel entries.

    Attributes
    ----------
    cmd : In(stream.Signature(COMMAND))
        Commands; taken in a cycle with ``valid`` and ``ready`` high, the
        payload read only in that cycle. ``ready`` does not depend on the payload.
    rsp : Out(stream.Signature(RESPONSE))
        Responses, in command order; the payload holds until taken.
    """

    FAST_LATENCY = cfu_gemm_isa.GEMM_FAST_LATENCY
    WAIT_IDLE_LATENCY = cfu_gemm_isa.WAIT_IDLE_LATENCY
    READ32_LATENCY = cfu_gemm_isa.READ32_LATENCY
    READ8_LATENCY = cfu_gemm_isa.READ8_LATENCY

    def __init__(self, geometry=DEFAULT_GEOMETRY):
        self.geometry = geometry
        super().__init__({"cmd": In(stream.Signature(COMMAND)), "rsp": Out(stream.Signature(RESPONSE))})

    def elaborate(self, platform):
        m = Module()
        g, cmd, rsp = self.geometry, self.cmd, self.rsp
        C, lc = g.cols, _lg(g.cols)
        oab, rab, chb = g.operand_addr_bits, g.result_addr_bits, _lg(g.channels)
        m.submodules.engine = engine = GemmEngine(ROWS, C, g.operand_depth, g.result_depth)
        busy = engine.busy

        regs = {
            reg: Signal(
                signed(g.reg_bits(reg)) if reg in SIGNED_REGS else g.reg_bits(reg),
                name=f"reg_{reg.name.lower()}",
                init=REG_RESET.get(reg, 0),
            )
            for reg in GemmReg
            if reg != GemmReg.INFO
        }
        regs[GemmReg.INFO] = Const(info_word(g), 32)
        R = GemmReg

        # -- handshake ------------------------------------------------------
        out_valid, out_data = Signal(), Signal(32)
        pend = Signal()  # a WAIT or READ taken and not yet answered: take nothing else
        take = Signal()
        m.d.comb += [
            cmd.ready.eq(~(out_valid & ~rsp.ready) & ~pend & ~ResetSignal()),
            take.eq(cmd.valid & cmd.ready),
            rsp.valid.eq(out_valid & ~ResetSignal()),
            rsp.payload.outputs_0.eq(out_data),
        ]
        with m.If(out_valid & rsp.ready):
            m.d.sync += out_valid.eq(0)

        def answer(value):  # later in this function than the clear above, so it wins
            m.d.sync += [out_valid.eq(1), out_data.eq(value)]

        # -- decode ---------------------------------------------------------
        funct3, funct7 = cmd.payload.function_id.funct3, cmd.payload.function_id.funct7
        in0, in1 = cmd.payload.inputs_0, cmd.payload.inputs_1
        is_gset, is_gop = funct3 == GSET, funct3 == GOP

        def op(o):
            return is_gop & (funct7 == o)

        gset = take & is_gset

        # -- GSET and GGET --------------------------------------------------
        writable = [reg for reg in GemmReg if reg not in READ_ONLY_REGS]
        set_result = Signal(32)
        with m.Switch(funct7):
            for reg in writable:
                with m.Case(reg):
                    value = in0[: g.reg_bits(reg)]
                    m.d.comb += set_result.eq(value.as_signed() if reg in SIGNED_REGS else value)
            with m.Default():
                m.d.comb += set_result.eq(0)
        for reg in writable:
            with m.If(gset & (funct7 == reg)):
                m.d.sync += regs[reg].eq(in0[: g.reg_bits(reg)])
        get_result = Signal(32)
        with m.Switch(in0):
            for reg in GemmReg:
                with m.Case(reg):
                    m.d.comb += get_result.eq(regs[reg])  # sign- or zero-extended by its shape
            with m.Default():
                m.d.comb += get_result.eq(0)

        # The GEMM's tile count, ceil(K/R)·ceil(N/C), kept as K and N are set, so that
        # START computes the busy cycles T with one multiply.
        tiles = Signal(range(-(-0xFFFF // ROWS) * -(-0xFFFF // C) + 1))
        new_k = Mux(funct7 == R.K, in0[:16], regs[R.K])
        new_n = Mux(funct7 == R.N, in0[:16], regs[R.N])
        with m.If(gset & ((funct7 == R.K) | (funct7 == R.N))):
            m.d.sync += tiles.eq(((new_k + ROWS - 1) >> _lg(ROWS)) * ((new_n + C - 1) >> lc))

        # -- WRITE_A / WRITE_B ----------------------------------------------
        a_wcol, b_wcol = Signal(16), Signal(16)  # words written in the current stored row
        b_acc = Signal(signed(32))  # the sum of the current row of B so far
        with m.If(gset & ((funct7 == R.A_WADDR) | (funct7 == R.A_WROW))):
            m.d.sync += a_wcol.eq(0)
        with m.If(gset & ((funct7 == R.B_WADDR) | (funct7 == R.B_WROW))):
            m.d.sync += [b_wcol.eq(0), b_acc.eq(0)]

        is_write = op(GemmOp.WRITE_A) | op(GemmOp.WRITE_B)
        wb = funct7 == GemmOp.WRITE_B
        waddr = Mux(wb, regs[R.B_WADDR], regs[R.A_WADDR])
        wrow = Mux(wb, regs[R.B_WROW], regs[R.A_WROW])
        wcol_next = Signal(17)
        m.d.comb += wcol_next.eq(Mux(wb, b_wcol, a_wcol) + 1)
        row_end = wcol_next == Mux(wb, regs[R.B_STRIDE], regs[R.A_STRIDE])
        elements = data.ArrayLayout(signed(8), ROWS)(Cat(in0, in1))
        rot = wrow[: _lg(ROWS)]
        m.d.comb += [
            engine.write.en.eq(take & is_write),
            engine.write.sel.eq(wb),
            engine.write.both.eq(0),
            engine.write.half.eq(waddr[oab - 1]),
            engine.write.addr.eq(waddr[: oab - 1]),
        ]
        # Element j of the word goes to lane (row + j) mod 8: lane b holds element (b - row) mod 8.
        for b in range(ROWS):
            m.d.comb += engine.write.data[b].eq(elements[(b - rot)[: _lg(ROWS)]])
        row_sum = Signal(signed(32))
        m.d.comb += row_sum.eq(b_acc + sum(elements[j] for j in range(ROWS)))
        for o, addr_r, row_r, wcol in (
            (GemmOp.WRITE_A, R.A_WADDR, R.A_WROW, a_wcol),
            (GemmOp.WRITE_B, R.B_WADDR, R.B_WROW, b_wcol),
        ):
            with m.If(take & op(o)):
                m.d.sync += regs[addr_r].eq(regs[addr_r] + 1)
                with m.If(row_end):
                    m.d.sync += [wcol.eq(0), regs[row_r].eq(regs[row_r] + 1)]
                    if o == GemmOp.WRITE_B:
                        m.d.sync += [regs[R.B_ROWSUM].eq(row_sum), b_acc.eq(0)]
                with m.Else():
                    m.d.sync += wcol.eq(wcol_next)
                    if o == GemmOp.WRITE_B:
                        m.d.sync += b_acc.eq(row_sum)

        # -- START ----------------------------------------------------------
        gm, gk, gn = regs[R.M], regs[R.K], regs[R.N]
        start_ok = Signal()
        m.d.comb += start_ok.eq(~busy & (gm != 0) & (gk != 0) & (gn != 0) & (regs[R.MODE] < len(MODES)))
        cfg = engine.start.payload
        m.d.comb += [
            engine.start.valid.eq(take & op(GemmOp.START) & start_ok),
            cfg.m.eq(gm),
            cfg.k.eq(gk),
            cfg.n.eq(gn),
            cfg.mode.as_value().eq(regs[R.MODE]),
            cfg.a_stride.eq(regs[R.A_STRIDE]),
            cfg.b_stride.eq(regs[R.B_STRIDE]),
            cfg.a_base.eq(regs[R.A_BASE]),  # full addresses: the half is their top bit
            cfg.b_base.eq(regs[R.B_BASE]),
            cfg.result_base.eq(regs[R.C_BASE]),
            cfg.operand_half.eq(0),
            cfg.result_half.eq(0),
        ]
        # T = reference.gemm.gemm_cycles: the last tile's launch P, then its last row's exit.
        # P_T = max(P_{T-1} + I, P_{T-2} + F) from P_0 = 1 (TileLauncher) is
        # 1 + floor(T/2)·max(2I, F) + (T odd)·I, with I = max(M, C), F = M + R - 1.
        interval, bank_free = Signal(17), Signal(17)
        m.d.comb += [interval.eq(Mux(gm > C, gm, C)), bank_free.eq(gm + ROWS - 1)]
        pair = Mux((interval << 1) > bank_free, interval << 1, bank_free)
        t_last = Signal.like(tiles)  # tiles >= 1 when START is taken
        m.d.comb += t_last.eq(tiles - 1)
        busy_cycles = Signal(32)
        m.d.comb += busy_cycles.eq(
            1 + (t_last >> 1) * pair + Mux(t_last[0], interval, 0) + ROW_ENTRY + (gm - 1) + array_latency(ROWS, C)
        )
        last = Signal(32)  # the last GEMM's busy cycles: what WAIT and COUNTER LAST answer
        run_half = Signal()  # the result half the running (or last) GEMM writes
        with m.If(engine.start.valid):
            m.d.sync += [
                last.eq(busy_cycles),
                run_half.eq(regs[R.C_BASE][rab - 1]),
                regs[R.R_BASE].eq(regs[R.C_BASE]),
                regs[R.R_M].eq(gm),
                regs[R.R_N].eq(gn),
                regs[R.R_ROW].eq(0),
                regs[R.R_COL].eq(0),
            ]

        # -- READ32 / READ8 and WAIT: taken, held, read ----------------------
        rcol, rrow = regs[R.R_COL], regs[R.R_ROW]
        is_read8 = funct7 == GemmOp.READ8
        is_read = op(GemmOp.READ32) | op(GemmOp.READ8)
        is_wait = op(GemmOp.WAIT)
        # C[row, n] is lane n mod C of word R_BASE + (n div C)·R_M + row (n div C is the
        # same for READ8's n0 = R_COL & ~3, since 4 divides C).
        raddr = Signal(rab)
        m.d.comb += raddr.eq(regs[R.R_BASE] + (rcol >> lc)[:rab] * regs[R.R_M][:rab] + rrow[:rab])
        read_hold = Signal()  # the engine is writing the half this READ reads
        m.d.comb += read_hold.eq(busy & (raddr[rab - 1] == run_half))
        n0 = Mux(is_read8, Cat(Const(0, 2), rcol[2:]), rcol)
        col_next = Signal(17)
        m.d.comb += col_next.eq(Mux(is_read8, n0 + READ8_LANES, rcol + 1))
        wait_defer = busy & ~engine.done  # WAIT holds: the engine is busy after this cycle

        pend_wait, pend_hold, pend_read8 = Signal(), Signal(), Signal()
        p_addr, p_lane, p_mask, p_ch = Signal(rab), Signal(lc), Signal(READ8_LANES), Signal(chb)
        ch_now = Signal(chb)
        m.d.comb += ch_now.eq(regs[R.CH_BASE] + n0)
        with m.If(take & is_read):
            with m.If(col_next >= regs[R.R_N]):
                m.d.sync += [rcol.eq(0), rrow.eq(rrow + 1)]
            with m.Else():
                m.d.sync += rcol.eq(col_next)
            m.d.sync += [
                pend.eq(1),
                pend_wait.eq(0),
                pend_hold.eq(read_hold),
                pend_read8.eq(is_read8),
                p_addr.eq(raddr),
                p_lane.eq(n0[:lc]),
                p_mask.eq(Cat(*[n0 + i < regs[R.R_N] for i in range(READ8_LANES)])),
                p_ch.eq(ch_now),
            ]
        with m.If(take & is_wait & wait_defer):
            m.d.sync += [pend.eq(1), pend_wait.eq(1), pend_hold.eq(1)]
        with m.If(pend & pend_wait & ~wait_defer):
            answer(last)
            m.d.sync += [pend.eq(0), pend_wait.eq(0), pend_hold.eq(0)]

        # The result word and the four channels' parameters are read in the same cycle:
        # at acceptance, or in the first idle cycle for a READ that waited.
        issue_now = take & is_read & ~read_hold
        issue_late = pend & pend_hold & ~pend_wait & ~busy
        issue = issue_now | issue_late
        issue_addr = Mux(issue_now, raddr, p_addr)
        issue_ch = Mux(issue_now, ch_now, p_ch)
        with m.If(issue_late):
            m.d.sync += pend_hold.eq(0)
        m.d.comb += [
            engine.read.en.eq(issue),
            engine.read.half.eq(issue_addr[rab - 1]),
            engine.read.addr.eq(issue_addr[: rab - 1]),
        ]

        # -- per-channel parameters: 4 banks by channel mod 4 ----------------
        ch_ok = in1 < g.channels
        ch_bank, ch_row = in1[:2], in1[2:chb]
        params = {}
        for o, shape in (
            (GemmOp.CH_BIAS, signed(32)),
            (GemmOp.CH_MULT, signed(32)),
            (GemmOp.CH_SHIFT, signed(SHIFT_BITS)),
        ):
            ports = []
            for b in range(READ8_LANES):
                # (At least 2 entries: a 0-bit address port makes a [-1:0] range in the Verilog.)
                mem = memory.Memory(shape=shape, depth=max(g.channels // READ8_LANES, 2), init=[])
                m.submodules[f"{o.name.lower()}{b}"] = mem
                wp, rp = mem.write_port(), mem.read_port()
                # Bank b serves the one of the four channels first .. first+3 that is b mod 4.
                m.d.comb += [
                    wp.en.eq(take & op(o) & ch_ok & (ch_bank == b)),
                    wp.addr.eq(ch_row),
                    wp.data.eq(in0[: len(wp.data)]),
                    rp.en.eq(issue),
                    rp.addr.eq((issue_ch[2:] + ((b < issue_ch[:2]) if b < READ8_LANES - 1 else 0))[: chb - 2]),
                ]
                ports.append(rp.data)
            params[o] = Array(ports)

        # -- the read pipeline ----------------------------------------------
        word = engine.read.data
        v1, v2, v3 = Signal(), Signal(), Signal()  # the word is read; products; rounding
        m.d.sync += [v1.eq(issue), v2.eq(v1 & pend_read8), v3.eq(v2)]
        with m.If(v1 & ~pend_read8):
            answer(word[p_lane])
            m.d.sync += pend.eq(0)
        packed = []
        for i in range(READ8_LANES):
            bank = (p_ch[:2] + i)[:2]
            x = Signal(32, name=f"x{i}")
            m.d.comb += x.eq(word[Cat(Const(i, 2), p_lane[2:])] + params[GemmOp.CH_BIAS][bank])
            left, right = shift_amounts(params[GemmOp.CH_SHIFT][bank])
            a, b = Signal(signed(32), name=f"a{i}"), Signal(signed(32), name=f"b{i}")
            exp1, exp2 = Signal(5, name=f"exp1_{i}"), Signal(5, name=f"exp2_{i}")
            prod, overflow = Signal(signed(64), name=f"prod{i}"), Signal(name=f"overflow{i}")
            m.d.sync += [
                a.eq(x << left),
                b.eq(params[GemmOp.CH_MULT][bank]),
                exp1.eq(right),
                prod.eq(a * b),
                overflow.eq((a == INT32_MIN) & (b == INT32_MIN)),
                exp2.eq(exp1),
            ]
            high = srdhm_high(m, prod, overflow, name=f"srdhm{i}")
            y = offset_clamp(
                m,
                rounding_divide(m, high, exp2, prefix=f"lane{i}_"),
                regs[R.OUT_OFFSET],
                regs[R.ACT_MIN],
                regs[R.ACT_MAX],
                prefix=f"lane{i}_",
            )
            packed.append(Mux(p_mask[i], y[:8], 0))
        with m.If(v3):
            answer(Cat(*packed))
            m.d.sync += pend.eq(0)

        # -- counters -------------------------------------------------------
        busy_cnt, wait_cnt, transfers = Signal(32), Signal(32), Signal(32)
        holding = Signal()  # a WAIT, or a READ waiting for the engine, is held in this cycle
        m.d.comb += holding.eq((take & (is_wait | (is_read & read_hold))) | (pend & pend_hold))
        # A CH_* op naming no channel entry is bad input: it is not counted either.
        is_ch = op(GemmOp.CH_BIAS) | op(GemmOp.CH_MULT) | op(GemmOp.CH_SHIFT)
        is_transfer = is_gop & Cat(*[funct7 == o for o in TRANSFER_OPS]).any() & (ch_ok | ~is_ch)
        # CLEAR restarts the engine's own transfer count too (unused here; driven so that it is not a constant).
        m.d.comb += engine.cnt_clear.eq(take & op(GemmOp.CLEAR))
        with m.If(take & op(GemmOp.CLEAR)):
            m.d.sync += [busy_cnt.eq(0), wait_cnt.eq(0), transfers.eq(0)]
        with m.Else():
            with m.If(busy):
                m.d.sync += busy_cnt.eq(busy_cnt + 1)
            with m.If(busy & holding):
                m.d.sync += wait_cnt.eq(wait_cnt + 1)
            with m.If(take & is_transfer):
                m.d.sync += transfers.eq(transfers + 1)
        counter_result = Signal(32)
        with m.Switch(in0):
            with m.Case(Counter.BUSY):
                m.d.comb += counter_result.eq(busy_cnt)
            with m.Case(Counter.WAIT):
                m.d.comb += counter_result.eq(wait_cnt)
            with m.Case(Counter.OVERLAP):
                m.d.comb += counter_result.eq(busy_cnt - wait_cnt)
            with m.Case(Counter.TRANSFERS):
                m.d.comb += counter_result.eq(transfers)
            with m.Case(Counter.LAST):
                m.d.comb += counter_result.eq(last)
            with m.Default():
                m.d.comb += counter_result.eq(0)

        # -- fast answers ---------------------------------------------------
        fast_result = Signal(32)
        with m.Switch(Cat(funct7, funct3)):
            for reg in writable:
                with m.Case(GSET << 7 | reg):
                    m.d.comb += fast_result.eq(set_result)
            with m.Case(GOP << 7 | GemmOp.WRITE_A, GOP << 7 | GemmOp.WRITE_B):
                m.d.comb += fast_result.eq(waddr)
            with m.Case(GOP << 7 | GemmOp.START):
                m.d.comb += fast_result.eq(start_ok)
            with m.Case(GOP << 7 | GemmOp.WAIT):
                m.d.comb += fast_result.eq(last)
            with m.Case(GOP << 7 | GemmOp.STATUS):
                m.d.comb += fast_result.eq(busy)
            with m.Case(GOP << 7 | GemmOp.CH_BIAS, GOP << 7 | GemmOp.CH_MULT):
                m.d.comb += fast_result.eq(Mux(ch_ok, in0, 0))
            with m.Case(GOP << 7 | GemmOp.CH_SHIFT):
                m.d.comb += fast_result.eq(Mux(ch_ok, in0[:SHIFT_BITS].as_signed(), 0))
            with m.Case(GOP << 7 | GemmOp.COUNTER):
                m.d.comb += fast_result.eq(counter_result)
            with m.Case(GOP << 7 | GemmOp.GGET):
                m.d.comb += fast_result.eq(get_result)
            with m.Default():  # CLEAR, READs (not fast) and undefined ops
                m.d.comb += fast_result.eq(0)
        with m.If(take & ~is_read & ~(is_wait & wait_defer)):
            answer(fast_result)
        return m


class CombinedCfuCore(wiring.Component):
    """:class:`CfuCore` on funct3 0-5 and :class:`GemmCfuCore` on 6-7, behind one ``cmd``/``rsp`` pair.

    Responses stay in command order: a command for one side is taken only when
    the other side has nothing in flight (or its last response leaves in this
    cycle). With no GEMM op in flight, the MAC4 family's timing is
    :class:`CfuCore`'s, cycle for cycle; with no MAC4-family op in flight the
    GEMM ops' is :class:`GemmCfuCore`'s. ``cmd.ready`` depends on the payload's funct3.
    """

    FAST_LATENCY = CfuCore.FAST_LATENCY
    MAC_LATENCY = CfuCore.MAC_LATENCY
    SLOW_LATENCY = CfuCore.SLOW_LATENCY
    GEMM_FAST_LATENCY = GemmCfuCore.FAST_LATENCY
    WAIT_IDLE_LATENCY = GemmCfuCore.WAIT_IDLE_LATENCY
    READ32_LATENCY = GemmCfuCore.READ32_LATENCY
    READ8_LATENCY = GemmCfuCore.READ8_LATENCY

    def __init__(self, geometry=DEFAULT_GEOMETRY):
        self.geometry = geometry
        super().__init__({"cmd": In(stream.Signature(COMMAND)), "rsp": Out(stream.Signature(RESPONSE))})

    def elaborate(self, platform):
        m = Module()
        cmd, rsp = self.cmd, self.rsp
        m.submodules.mac = mac = CfuCore()
        m.submodules.gemm = gemm = GemmCfuCore(self.geometry)
        to_gemm = cmd.payload.function_id.funct3 >= GSET  # 6 and 7

        # Ops taken and not yet answered, per side. A side takes at most one op a cycle and
        # answers it within its longest pipelined latency (a held response stops it taking
        # more), so it holds at most that many: CfuCore's slow ops', more than READ8's.
        most_in_flight = max(CfuCore.SLOW_LATENCY, GemmCfuCore.READ8_LATENCY)
        idle = {}
        for side in (mac, gemm):
            count = Signal(range(most_in_flight + 1), name=f"{'mac' if side is mac else 'gemm'}_in_flight")
            taken, answered = side.cmd.valid & side.cmd.ready, side.rsp.valid & rsp.ready
            m.d.sync += count.eq(count + taken - answered)
            idle[side] = (count == 0) | ((count == 1) & answered)
        m.d.comb += [
            mac.cmd.payload.eq(cmd.payload),
            gemm.cmd.payload.eq(cmd.payload),
            mac.cmd.valid.eq(cmd.valid & ~to_gemm & idle[gemm]),
            gemm.cmd.valid.eq(cmd.valid & to_gemm & idle[mac]),
            cmd.ready.eq(Mux(to_gemm, gemm.cmd.ready & idle[mac], mac.cmd.ready & idle[gemm])),
            # At most one side has responses to give.
            rsp.valid.eq(mac.rsp.valid | gemm.rsp.valid),
            rsp.payload.eq(Mux(gemm.rsp.valid, gemm.rsp.payload, mac.rsp.payload)),
            mac.rsp.ready.eq(rsp.ready),
            gemm.rsp.ready.eq(rsp.ready),
        ]
        return m


class GemmCfu(wiring.Component):
    """:class:`CombinedCfuCore` with CFU Playground's port list, for ``cfu.v``: the MAC4
    family (funct3 0-5, :class:`hdl.cfu.core.Cfu`'s ISA and timing) and the GEMM ops (6-7).

    ``clk`` clocks the unit; ``reset`` is synchronous and active high. The
    other ports are the combined core's stream members under CFU Playground's
    names, with the same timing.
    """

    FAST_LATENCY = CombinedCfuCore.FAST_LATENCY
    MAC_LATENCY = CombinedCfuCore.MAC_LATENCY
    SLOW_LATENCY = CombinedCfuCore.SLOW_LATENCY
    GEMM_FAST_LATENCY = CombinedCfuCore.GEMM_FAST_LATENCY
    WAIT_IDLE_LATENCY = CombinedCfuCore.WAIT_IDLE_LATENCY
    READ32_LATENCY = CombinedCfuCore.READ32_LATENCY
    READ8_LATENCY = CombinedCfuCore.READ8_LATENCY

    def __init__(self, geometry=DEFAULT_GEOMETRY):
        self.geometry = geometry
        super().__init__({**CFU_PORTS, "reset": In(1), "clk": In(1)})

    def elaborate(self, platform):
        return cfu_playground_ports(self, CombinedCfuCore(self.geometry))
