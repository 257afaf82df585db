"""The GEMM CFU: :class:`GemmEngine` behind CFU Playground's port (``docs/cfu_gemm.md``).

* :class:`GemmCfuCore`: the GEMM ops (funct3 6 and 7, :mod:`reference.cfu_gemm_isa`)
  with ``lib.stream`` ``cmd``/``rsp`` (:data:`COMMAND`/:data:`RESPONSE`), in ``sync``.
* :class:`CombinedCfuCore`: :class:`CfuCore` (funct3 0-5) and :class:`GemmCfuCore`
  (6-7) behind one pair of streams, responses in command order.
* :class:`GemmCfu`: the combined core with CFU Playground's port list, its own
  ``clk`` and synchronous ``reset``, as :class:`hdl.cfu.core.Cfu` has: ``cfu.v``.

Timing of :class:`GemmCfuCore` (cycles from the accepting cycle to ``rsp.valid``;
the figures are :mod:`reference.cfu_gemm_isa`'s):

* All architectural state changes at the edge that ends the accepting cycle
  (LAST: at the end of the third cycle after START's).
* Fast ops (GSET, WRITE_A/B, STATUS, CH_*, COUNTER, CLEAR, GGET, undefined)
  answer in ``GEMM_FAST_LATENCY`` = 1, one a cycle.
* START drives the engine's ``start`` in the accepting cycle t: the engine is
  busy in t+1 .. t+T. T is computed in t .. t+3 and START answers in
  ``START_LATENCY`` = 4.
* WAIT answers in the first cycle after acceptance in which the engine is idle
  (in cycle max(s, t+T) + 1 for a WAIT taken in s).
* A READ taken in s computes its word's address in s+1 and reads (the word
  and the four channels' parameters) in the first cycle from s+2 in which
  the engine is not writing the half it reads (``READ_ISSUE`` = 2). READ32
  answers in ``READ32_LATENCY`` = 5 (address; read; lane; response), READ8 in
  ``READ8_LATENCY`` = 12 (address; read; the seven stages of
  :mod:`hdl.cfu.output_stage`, as CfuCore's POST; the clamp in a stage of its
  own; the response).
* While a START, WAIT or READ is pending, and while a response waits for
  ``rsp.ready``, ``cmd.ready`` is low.
* Reset (synchronous): registers, counters and the engine restart; the
  buffers and the channel parameters keep their contents.
"""

import operator
from functools import reduce

from amaranth.hdl import (
    Array,
    Cat,
    Const,
    Module,
    Mux,
    ResetSignal,
    Signal,
    Value,
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
from .output_stage import (
    clamp,
    left_shift,
    partial_products,
    product_halves,
    round_offset,
    rounding_masks,
    rounding_split,
    shift_amounts,
    srdhm_sum,
)

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
    START_LATENCY = cfu_gemm_isa.START_LATENCY
    #: READ8's registered stages between the parameters' read and the response register.
    READ8_STAGES = 8

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

        answers = []  # (when, value): at most one is true in a cycle (one op pending, or one taken)

        def answer(when, value):
            answers.append((when, Value.cast(value)))

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

        # The GEMM's tile counts along K and N, ceil(K/R) and ceil(N/C), kept as K and N
        # are set, for START's count of the busy cycles T.
        k_tiles, n_tiles = Signal(range(-(-0xFFFF // ROWS) + 1)), Signal(range(-(-0xFFFF // C) + 1))
        with m.If(gset & (funct7 == R.K)):
            m.d.sync += k_tiles.eq((in0[:16] + ROWS - 1) >> _lg(ROWS))
        with m.If(gset & (funct7 == R.N)):
            m.d.sync += n_tiles.eq((in0[:16] + C - 1) >> lc)

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
        # T is computed in three stages, from registers that cannot change while START is
        # pending (the cycles after its acceptance): the tile count; T's terms; their
        # product; LAST, at the end of the third cycle after START's, which then answers.
        tiles = Signal(len(k_tiles) + len(n_tiles))
        m.d.sync += tiles.eq(k_tiles * n_tiles)  # >= 1 when START is taken
        interval, bank_free = Signal(17), Signal(17)
        m.d.comb += [interval.eq(Mux(gm > C, gm, C)), bank_free.eq(gm + ROWS - 1)]
        t_last = Signal.like(tiles)
        m.d.comb += t_last.eq(tiles - 1)
        st_half, st_pair, st_rest = Signal.like(tiles), Signal(18), Signal(32)
        m.d.sync += [
            st_half.eq(t_last >> 1),
            st_pair.eq(Mux((interval << 1) > bank_free, interval << 1, bank_free)),
            st_rest.eq(1 + Mux(t_last[0], interval, 0) + ROW_ENTRY + (gm - 1) + array_latency(ROWS, C)),
        ]
        st_prod, st_rest2 = Signal(32), Signal(32)
        m.d.sync += [st_prod.eq(st_half * st_pair), st_rest2.eq(st_rest)]
        last = Signal(32)  # the last GEMM's busy cycles: what WAIT and COUNTER LAST answer
        run_half = Signal()  # the result half the running (or last) GEMM writes
        pend_start, start_answer = Signal(), Signal()
        start_wait = Signal(range(self.START_LATENCY))  # cycles left before START answers
        with m.If(take & op(GemmOp.START)):
            m.d.sync += [
                pend.eq(1),
                pend_start.eq(1),
                start_answer.eq(start_ok),
                start_wait.eq(self.START_LATENCY - 2),
            ]
        with m.If(engine.start.valid):
            m.d.sync += [
                run_half.eq(regs[R.C_BASE][rab - 1]),
                regs[R.R_BASE].eq(regs[R.C_BASE]),
                regs[R.R_M].eq(gm),
                regs[R.R_N].eq(gn),
                regs[R.R_ROW].eq(0),
                regs[R.R_COL].eq(0),
            ]
        started = engine.start.valid  # then the third cycle after a START that started the engine
        for k in range(self.START_LATENCY - 1):
            started_k = Signal(name=f"started{k + 1}")
            m.d.sync += started_k.eq(started)
            started = started_k
        with m.If(started):
            m.d.sync += last.eq(st_prod + st_rest2)
        start_done = Signal()  # START answers (in the cycle LAST is written)
        m.d.comb += start_done.eq(pend_start & (start_wait == 0))
        with m.If(pend_start & (start_wait != 0)):
            m.d.sync += start_wait.eq(start_wait - 1)
        answer(start_done, start_answer)
        with m.If(start_done):
            m.d.sync += [pend.eq(0), pend_start.eq(0)]

        # -- READ32 / READ8 and WAIT: taken, addressed, issued, read ---------
        # A READ taken in cycle t computes its word's address in t+1 and is issued (the
        # result word and the four channels' parameters read) in the first cycle from t+2
        # in which the engine is not writing the half it reads.
        rcol, rrow = regs[R.R_COL], regs[R.R_ROW]
        is_read8 = funct7 == GemmOp.READ8
        is_read = op(GemmOp.READ32) | op(GemmOp.READ8)
        is_wait = op(GemmOp.WAIT)
        n0 = Mux(is_read8, Cat(Const(0, 2), rcol[2:]), rcol)
        col_next = Signal(17)
        m.d.comb += col_next.eq(Mux(is_read8, n0 + READ8_LANES, rcol + 1))
        wait_defer = busy & ~engine.done  # WAIT holds: the engine is busy after this cycle

        pend_wait, pend_hold, pend_read8, pend_addr = Signal(), Signal(), Signal(), Signal()
        p_tile, p_row, p_addr = Signal(rab), Signal(rab), Signal(rab)
        p_lane, p_mask = Signal(lc), Signal(READ8_LANES)
        # Bank b's entry for READ8's four channels CH_BASE + n0 .. +3 (n0 = R_COL & ~3):
        # the one of them that is b mod 4. From registers alone, so kept at acceptance.
        ch_first = Signal(chb)
        m.d.comb += ch_first.eq(regs[R.CH_BASE] + Cat(Const(0, 2), rcol[2:]))
        p_ch_lo = Signal(2)
        p_ch_row = [Signal(max(chb - 2, 1), name=f"p_ch_row{b}") for b in range(READ8_LANES)]
        with m.If(take & is_read):
            with m.If(col_next >= regs[R.R_N]):
                m.d.sync += [rcol.eq(0), rrow.eq(rrow + 1)]
            with m.Else():
                m.d.sync += rcol.eq(col_next)
            m.d.sync += [
                pend.eq(1),
                pend_wait.eq(0),
                pend_addr.eq(1),
                pend_read8.eq(is_read8),
                # C[row, n] is lane n mod C of word R_BASE + (n div C)·R_M + row (n div C is
                # the same for READ8's n0, since 4 divides C): computed in the next cycle.
                p_tile.eq((rcol >> lc)[:rab]),
                p_row.eq(regs[R.R_BASE] + rrow[:rab]),  # R_BASE + row, wrapping
                p_lane.eq(n0[:lc]),
                p_mask.eq(Cat(*[n0 + i < regs[R.R_N] for i in range(READ8_LANES)])),
                p_ch_lo.eq(ch_first[:2]),
            ]
            for b in range(READ8_LANES):
                bump = (b < ch_first[:2]) if b < READ8_LANES - 1 else 0
                m.d.sync += p_ch_row[b].eq((ch_first[2:] + bump)[: chb - 2])
        with m.If(pend_addr):
            m.d.sync += [
                p_addr.eq(p_row + p_tile * regs[R.R_M][:rab]),
                pend_addr.eq(0),
                pend_hold.eq(1),
            ]
        with m.If(take & is_wait & wait_defer):
            m.d.sync += [pend.eq(1), pend_wait.eq(1), pend_hold.eq(1)]
        answer(pend & pend_wait & ~wait_defer, last)
        with m.If(pend & pend_wait & ~wait_defer):
            m.d.sync += [pend.eq(0), pend_wait.eq(0), pend_hold.eq(0)]

        read_hold = Signal()  # the engine is writing the half this READ reads
        m.d.comb += read_hold.eq(busy & (p_addr[rab - 1] == run_half))
        issue = Signal()
        m.d.comb += issue.eq(pend & pend_hold & ~pend_wait & ~read_hold)
        with m.If(issue):
            m.d.sync += pend_hold.eq(0)
        m.d.comb += [
            engine.read.en.eq(issue),
            engine.read.half.eq(p_addr[rab - 1]),
            engine.read.addr.eq(p_addr[: rab - 1]),
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
                m.d.comb += [
                    wp.en.eq(take & op(o) & ch_ok & (ch_bank == b)),
                    wp.addr.eq(ch_row),
                    wp.data.eq(in0[: len(wp.data)]),
                    rp.en.eq(issue),
                    rp.addr.eq(p_ch_row[b]),
                ]
                ports.append(rp.data)
            params[o] = Array(ports)

        # -- the read pipeline ----------------------------------------------
        # READ32 answers the word read. READ8 passes output_stage's stages, as
        # CfuCore's POST does: acc + bias (with the shift's split and the multiplier);
        # the left shift and the rounding masks; the four 16x16 parts of each product;
        # their halves; SRDHM's sum; RoundingDivideByPOT's split; the offset; the clamp
        # (registered: the response's mux follows). Only one READ is in flight, so
        # nothing here stalls.
        word = engine.read.data
        read_valid = Signal()  # the word (and the parameters) are on the ports
        m.d.sync += read_valid.eq(issue)
        # READ32: the word's lane registered, then the response.
        r32_valid, r32_word = Signal(), Signal(32)
        m.d.sync += [r32_valid.eq(read_valid & ~pend_read8), r32_word.eq(word[p_lane])]
        answer(r32_valid, r32_word)
        with m.If(r32_valid):
            m.d.sync += pend.eq(0)
        offset, lo, hi = regs[R.OUT_OFFSET], regs[R.ACT_MIN], regs[R.ACT_MAX]  # fixed while a READ is pending
        inverted = Signal()
        m.d.sync += inverted.eq(lo > hi)
        valid = read_valid & pend_read8
        packed = []
        for i in range(READ8_LANES):
            bank = (p_ch_lo + i)[:2]

            def register(values, i=i):
                out = {}
                for name, value in values.items():
                    value = Value.cast(value)
                    out[name] = Signal(value.shape(), name=f"r8_{name}{i}")
                    m.d.sync += out[name].eq(value)
                return out

            left, right = shift_amounts(params[GemmOp.CH_SHIFT][bank])
            s1 = register(
                {
                    "pre": (word[Cat(Const(i, 2), p_lane[2:])] + params[GemmOp.CH_BIAS][bank])[:32].as_signed(),
                    "left": left,
                    "exp": right,
                    "b": params[GemmOp.CH_MULT][bank],
                }
            )
            s2 = register(
                {"a": left_shift(s1["pre"], s1["left"]), "b": s1["b"], "exp": s1["exp"], **rounding_masks(s1["exp"])}
            )
            s3 = register(
                {
                    **partial_products(s2["a"], s2["b"]),
                    "exp": s2["exp"],
                    "mask": s2["mask"],
                    "half": s2["half"],
                    "half1": s2["half"] + 1,
                }
            )
            s4 = register({**product_halves(s3), **{k: s3[k] for k in ("overflow", "exp", "mask", "half", "half1")}})
            s5 = register(
                {
                    "dividend": srdhm_sum(s4["lohi"], s4["cross"], s4["overflow"]),
                    **{k: s4[k] for k in ("exp", "mask", "half", "half1")},
                }
            )
            s6 = register(rounding_split(s5["dividend"], s5["exp"], s5["mask"], s5["half"], s5["half1"]))
            s7 = register({"v": round_offset(s6["shifted"], s6["up"], offset)})
            s8 = register({"y": clamp(m, s7["v"], lo, hi, inverted, prefix=f"lane{i}_")[:8]})
            packed.append(Mux(p_mask[i], s8["y"], 0))
        r8_valid = valid
        for k in range(1, self.READ8_STAGES + 1):
            nxt = Signal(name=f"r8_valid{k}")
            m.d.sync += nxt.eq(r8_valid)
            r8_valid = nxt
        answer(r8_valid, Cat(*packed))
        with m.If(r8_valid):
            m.d.sync += pend.eq(0)

        # -- counters -------------------------------------------------------
        busy_cnt, wait_cnt, transfers = Signal(32), Signal(32), Signal(32)
        holding = Signal()  # a WAIT, or a READ waiting for the engine, is held in this cycle
        m.d.comb += holding.eq((take & is_wait) | (pend & pend_hold & (pend_wait | read_hold)))
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
        answer(take & ~is_read & ~op(GemmOp.START) & ~(is_wait & wait_defer), fast_result)

        # The response register: the one answer of the cycle, or-ed in (no priority chain).
        with m.If(Cat(*[when for when, _ in answers]).any()):
            m.d.sync += [
                out_valid.eq(1),
                out_data.eq(reduce(operator.or_, [Mux(when, value, 0) for when, value in answers])),
            ]
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
    START_LATENCY = GemmCfuCore.START_LATENCY

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
    START_LATENCY = CombinedCfuCore.START_LATENCY

    def __init__(self, geometry=DEFAULT_GEOMETRY):
        self.geometry = geometry
        super().__init__({**CFU_PORTS, "reset": In(1), "clk": In(1)})

    def elaborate(self, platform):
        return cfu_playground_ports(self, CombinedCfuCore(self.geometry))
