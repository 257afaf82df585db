"""``TrainCore``: a GEMM engine, the post-processing datapath around it and a
sequencer that runs a training step's program (:mod:`.program`).

Per minibatch the host writes the inputs (operand buffer A) and the labels,
sets ``lr`` and pulses ``start``; the sequencer runs the forward pass, the
loss error, the backward pass and the update over all layers, and drops
``busy``. Weights, biases and momenta stay on chip across steps. Every
formula below is :mod:`reference.training`'s, named as there.

Post-processing (FWD, DX, UPDATE) walks an output matrix row by row, one
word of R lanes a cycle, in two stages: stage 0 reads the result word and
whatever else the op needs (bias, y for the mask, master, momentum); stage 1
computes and writes. Operand words are written rotated into the engine's
diagonal banking (lane e of row r goes to bank (r + e) mod R).

Host port (honoured only while the core is idle): ``wr_*`` writes one word
to ``wr_target`` (:data:`.program.TARGET`; lanes are cut to the memory's
width; labels go R to a word, sample i in lane i mod R of word i div R),
``rd_*`` reads one, sign-extended, the next
cycle. ``prog_wr_*`` writes one op.
"""
from amaranth.hdl import Signal, Module, Mux, Const, Array, signed, unsigned
from amaranth.lib import wiring, data, memory
from amaranth.lib.wiring import In, Out

from reference.training_numerics import Numerics, LFSR_SEED, LFSR_TAPS
from ..systolic.engine import GemmEngine, COUNTER_BITS
from .loss_unit import LossUnit
from .program import OP_LAYOUT, KIND, ACT, DST, TARGET, PHASE, CoreGeometry

__all__ = ["TrainCore"]



def _sat(v, bits):
    hi, lo = (1 << (bits - 1)) - 1, -(1 << (bits - 1))
    return Mux(v > hi, hi, Mux(v < lo, lo, v))


def _lfsr_next(s):
    return Mux(s[0], (s >> 1) ^ LFSR_TAPS, s >> 1)


class TrainCore(wiring.Component):
    def __init__(self, numerics=Numerics(), **geometry):
        self.geometry = g = CoreGeometry(**geometry)
        self.numerics = numerics
        R = g.rows
        if not (R >= 1 and R & (R - 1) == 0):
            raise ValueError(f"rows must be a power of two, not {R}")
        self.wide = data.ArrayLayout(signed(32), R)
        super().__init__({
            "start": In(1), "busy": Out(1), "done": Out(1), "error": Out(1),
            "lr": In(16),
            "prog_wr_en": In(1), "prog_wr_addr": In(range(g.program_depth)), "prog_wr_data": In(OP_LAYOUT),
            "wr_en": In(1), "wr_target": In(3), "wr_addr": In(16), "wr_data": In(self.wide),
            "rd_en": In(1), "rd_target": In(3), "rd_addr": In(16), "rd_data": Out(self.wide),
            "cnt_cycles": Out(data.ArrayLayout(COUNTER_BITS, len(PHASE))),
            "cnt_gemm": Out(data.ArrayLayout(COUNTER_BITS, len(PHASE))),
            "cnt_active": Out(data.ArrayLayout(COUNTER_BITS, len(PHASE))),
            "lfsr": Out(16),
        })

    def elaborate(self, platform):
        m = Module()
        g, nm = self.geometry, self.numerics
        R = g.rows
        lg = R.bit_length() - 1
        op_abits = (g.operand_depth - 1).bit_length()
        res_abits = (g.result_depth - 1).bit_length()

        m.submodules.engine = eng = GemmEngine(R, R, g.operand_depth, g.result_depth, operand_read=True)
        m.submodules.loss = lu = LossUnit(g.classes, R, nm)

        def mem(name, shape, depth):
            mm = memory.Memory(shape=data.ArrayLayout(shape, R), depth=depth, init=[])
            m.submodules[name] = mm
            return mm, mm.write_port(), mm.read_port()
        vmem, v_wr, v_rd = mem("vmem", signed(8), g.vmem_depth)
        wmem, w_wr, w_rd = mem("wmem", signed(16), g.wmem_depth)
        bmem, b_wr, b_rd = mem("bmem", signed(32), g.bmem_depth)
        mmem, q_wr, q_rd = mem("mmem", signed(32), g.mmem_depth)
        # Labels: R to a word, as the host writes them.
        m.submodules.labels = labels = memory.Memory(shape=data.ArrayLayout(range(g.classes), R),
                                                     depth=-(-g.label_depth // R), init=[])
        l_wr, l_rd = labels.write_port(), labels.read_port()
        m.submodules.program = program = memory.Memory(shape=OP_LAYOUT, depth=g.program_depth, init=[])
        p_wr, p_rd = program.write_port(), program.read_port()

        busy = Signal()
        m.d.comb += self.busy.eq(busy)
        lr = Signal(16)
        lfsr = Signal(16, init=LFSR_SEED)
        m.d.comb += self.lfsr.eq(lfsr)

        # ------------------------------------------------------------------
        # Sequencer
        # ------------------------------------------------------------------
        pc = Signal(range(g.program_depth + 1))
        op = Signal(OP_LAYOUT)
        post_start, post_done = Signal(), Signal()
        loss_start, loss_done = Signal(), Signal()
        m.d.comb += [p_wr.en.eq(self.prog_wr_en & ~busy), p_wr.addr.eq(self.prog_wr_addr),
                     p_wr.data.eq(self.prog_wr_data), p_rd.addr.eq(pc)]
        m.d.comb += [
            eng.cfg_m.eq(op.m), eng.cfg_k.eq(op.k), eng.cfg_n.eq(op.n), eng.cfg_mode.eq(op.mode),
            eng.cfg_a_stride.eq(op.a_stride), eng.cfg_b_stride.eq(op.b_stride),
            eng.cfg_a_base.eq(op.a_base), eng.cfg_b_base.eq(op.b_base), eng.cfg_result_base.eq(op.r_base),
        ]
        error = Signal()
        m.d.comb += self.error.eq(error)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [busy.eq(1), pc.eq(0), lr.eq(self.lr), error.eq(0),
                                 op.phase.eq(PHASE["forward"])]
                    m.next = "FETCH"
            with m.State("FETCH"):          # the program memory answers next cycle
                m.next = "DECODE"
            with m.State("DECODE"):
                m.d.sync += op.eq(p_rd.data)
                with m.Switch(p_rd.data.kind):
                    with m.Case(KIND["end"]):
                        m.d.comb += self.done.eq(1)
                        m.d.sync += busy.eq(0)
                        m.next = "IDLE"
                    with m.Case(KIND["gemm"]):
                        m.next = "GEMM_START"
                    with m.Case(KIND["fwd"], KIND["dx"], KIND["update"]):
                        m.next = "POST_START"
                    with m.Case(KIND["loss"]):
                        with m.If((p_rd.data.m == 0) | (p_rd.data.n == 0) | (p_rd.data.n > g.classes) |
                                  (p_rd.data.k != (p_rd.data.n + R - 1) // R)):
                            m.d.comb += self.done.eq(1)      # a row the loss unit cannot take
                            m.d.sync += [busy.eq(0), error.eq(1)]
                            m.next = "IDLE"
                        with m.Else():
                            m.next = "LOSS_START"
                    with m.Default():       # an unknown op: stop, and say so
                        m.d.comb += self.done.eq(1)
                        m.d.sync += [busy.eq(0), error.eq(1)]
                        m.next = "IDLE"
            # Each unit: one cycle to start it, then wait for it to finish.
            for unit, go, finished in (("GEMM", eng.start, eng.done), ("POST", post_start, post_done),
                                       ("LOSS", loss_start, loss_done)):
                with m.State(f"{unit}_START"):
                    m.d.comb += go.eq(1)
                    m.next = f"{unit}_WAIT"
                with m.State(f"{unit}_WAIT"):
                    with m.If(finished):
                        m.d.sync += pc.eq(pc + 1)
                        m.next = "FETCH"

        # Per-phase counters, cleared by start.
        for p in range(len(PHASE)):
            with m.If(self.start & ~busy):
                m.d.sync += [self.cnt_cycles[p].eq(0), self.cnt_gemm[p].eq(0), self.cnt_active[p].eq(0)]
            with m.Elif(busy & (op.phase == p)):
                m.d.sync += self.cnt_cycles[p].eq(self.cnt_cycles[p] + 1)
                with m.If(eng.busy):
                    m.d.sync += self.cnt_gemm[p].eq(self.cnt_gemm[p] + 1)
                with m.If(eng.active):
                    m.d.sync += self.cnt_active[p].eq(self.cnt_active[p] + 1)

        # ------------------------------------------------------------------
        # Operand writes: post-processing, the loss unit or the host
        # ------------------------------------------------------------------
        dst_en, dst_addr = Signal(), Signal(16)
        dst_word = Signal(data.ArrayLayout(signed(8), R))     # element order
        dst_row = Signal(16)                                  # for the rotation
        rot = dst_row[:lg] if lg else Const(0, 1)
        rotated = Signal(data.ArrayLayout(signed(8), R))
        elements = Array(dst_word[e] for e in range(R))
        for b in range(R):        # bank b holds element (b - row) mod R
            m.d.comb += rotated[b].eq(elements[(Const(b, lg) - rot)[:lg]] if lg else dst_word[0])
        host_wr = self.wr_en & ~busy
        with m.If(busy):
            m.d.comb += [eng.wr_en.eq(dst_en & (op.dst != DST["none"])),
                         eng.wr_sel.eq(op.dst == DST["b"]), eng.wr_both.eq(op.dst == DST["both"]),
                         eng.wr_addr.eq(dst_addr[:op_abits]), eng.wr_half.eq(dst_addr[op_abits]),
                         eng.wr_data.eq(rotated)]
        with m.Else():
            m.d.comb += [eng.wr_en.eq(host_wr & (self.wr_target <= TARGET["b"])),
                         eng.wr_sel.eq(self.wr_target == TARGET["b"]),
                         eng.wr_addr.eq(self.wr_addr[:op_abits]), eng.wr_half.eq(self.wr_addr[op_abits])]
            for b in range(R):
                m.d.comb += eng.wr_data[b].eq(self.wr_data[b])

        # ------------------------------------------------------------------
        # Post-processing: FWD, DX, UPDATE
        # ------------------------------------------------------------------
        run = Signal()
        pm, pt = Signal(16), Signal(16)                 # stage 0: row, word
        s1 = Signal()                                   # stage 1 valid
        s1_m, s1_t, s1_last_row = Signal(16), Signal(16), Signal()
        with m.If(post_start):
            m.d.sync += [run.eq((op.m != 0) & (op.k != 0)), pm.eq(0), pt.eq(0)]
        issue = run
        with m.If(run):
            with m.If(pt + 1 >= op.k):
                m.d.sync += [pt.eq(0), pm.eq(pm + 1)]
                with m.If(pm + 1 >= op.m):
                    m.d.sync += run.eq(0)
            with m.Else():
                m.d.sync += pt.eq(pt + 1)
        m.d.sync += [s1.eq(issue), s1_m.eq(pm), s1_t.eq(pt), s1_last_row.eq(pm + 1 == op.m)]
        m.d.comb += post_done.eq(~run & ~s1)          # the last word has been written

        row_words = Signal(32)
        m.d.comb += row_words.eq(pm * op.k + pt)
        res_addr = Signal(32)
        m.d.comb += res_addr.eq(op.r_base + pt * op.m + pm)
        is_fwd, is_dx, is_upd = (op.kind == KIND["fwd"]), (op.kind == KIND["dx"]), (op.kind == KIND["update"])

        # Stage 0 reads (the host reads when idle; see below).
        with m.If(busy):
            m.d.comb += [
                eng.rd_en.eq(issue), eng.rd_addr.eq(res_addr[:res_abits]), eng.rd_half.eq(res_addr[res_abits]),
                v_rd.addr.eq(op.vr_base + pm * op.vr_stride + pt),
                w_rd.addr.eq(op.p_base + row_words),
                b_rd.addr.eq(op.bb_base + pt),
                q_rd.addr.eq(op.q_base + row_words),
            ]

        # Stage 1: per lane.
        col0 = Signal(16)
        m.d.comb += col0.eq(s1_t << lg)
        y_word = Signal(data.ArrayLayout(signed(8), R))
        dx_word = Signal(data.ArrayLayout(signed(8), R))
        fwd_out = Signal(data.ArrayLayout(signed(8), R))
        dx_out = Signal(data.ArrayLayout(signed(8), R))
        w_new = Signal(data.ArrayLayout(signed(16), R))
        w8_new = Signal(data.ArrayLayout(signed(8), R))
        b_new = Signal(data.ArrayLayout(signed(32), R))
        q_new = Signal(data.ArrayLayout(signed(32), R))

        def rhu(v, s, width):
            """Round half up: ``(v + 2^(s-1)) >> s`` (``v`` for s = 0)."""
            if isinstance(s, int):
                return (v + ((1 << s) >> 1)) >> s
            half = Signal(unsigned(width))
            m.d.comb += half.eq((Const(1, width + 1) << s)[1:])
            return (v + half) >> s

        # LFSR draws for this word: lane e takes the state after e + 1 steps.
        states = [lfsr]
        for e in range(R):
            nxt = Signal(16, name=f"lfsr_{e + 1}")
            m.d.comb += nxt.eq(_lfsr_next(states[-1]))
            states.append(nxt)
        valid_lanes = Signal(range(R + 1))
        remaining = Signal(signed(18))
        m.d.comb += remaining.eq(op.n - col0)
        m.d.comb += valid_lanes.eq(Mux(remaining >= R, R, Mux(remaining < 0, 0, remaining)))

        # The update's shift s: s > 16 floors s - 16 bits first; s <= 0 is an
        # exact left shift that draws nothing from the LFSR.
        s_raw = Signal(signed(7))
        m.d.comb += s_raw.eq(Mux(s1_last_row, op.shift1, op.shift0))
        s_left = Signal(range(16))
        m.d.comb += s_left.eq(Mux(s_raw < 0, -s_raw, 0))
        s_eff = Signal(6)
        pre_shift = Signal(6)
        m.d.comb += [s_eff.eq(Mux(s_raw > 16, 16, Mux(s_raw < 0, 0, s_raw))),
                     pre_shift.eq(Mux(s_raw > 16, s_raw - 16, 0))]
        frac_mask = Signal(17)
        m.d.comb += frac_mask.eq((Const(1, 17) << s_eff) - 1)
        draws = Signal(range(R + 1))
        m.d.comb += draws.eq(Mux(s_raw > 0, valid_lanes, 0))

        post_shift = Signal(6)           # FWD and DX requantize by a right shift (the plan checks >= 0)
        m.d.comb += post_shift.eq(op.shift0.as_unsigned()[:6])

        for e in range(R):
            col = col0 + e
            in_range = col < op.n
            acc = eng.rd_data[e]
            # FWD: y = sat8(rhu(acc + bias)); the bias is the master's top, rounded.
            bias = Signal(signed(32), name=f"bias{e}")
            m.d.comb += bias.eq(_sat(rhu(b_rd.data[e], nm.master_extra, 34), 32))
            y = Signal(signed(8), name=f"y{e}")
            m.d.comb += y.eq(_sat(rhu(acc + bias, post_shift, 40), 8))
            act = Mux(y > 0, y, Mux(op.act == ACT["leaky"], y >> nm.leaky_shift, 0))
            m.d.comb += [
                y_word[e].eq(Mux(in_range, y, 0)),
                fwd_out[e].eq(Mux(in_range, Mux(op.act == ACT["none"], y, act),
                                  Mux(op.ones & (col == op.n), 1, 0))),
            ]
            # DX: dx = sat8(rhu(acc)); the layer below's dY is dx under its mask.
            dx = Signal(signed(8), name=f"dx{e}")
            m.d.comb += dx.eq(_sat(rhu(acc, post_shift, 34), 8))
            y_prev = v_rd.data[e]
            masked = Mux(y_prev > 0, dx, Mux(op.act == ACT["leaky"], dx >> nm.leaky_shift, 0))
            m.d.comb += [dx_word[e].eq(Mux(in_range, dx, 0)), dx_out[e].eq(Mux(in_range, masked, 0))]
            # UPDATE: momentum, then master -= stochastic_round(g · lr / 2^s).
            q = Signal(signed(32), name=f"mom{e}")
            m.d.comb += q.eq(q_rd.data[e] + ((acc - q_rd.data[e]) >> nm.momentum_shift))
            grad = Mux(op.momentum, q, acc)
            prod = Signal(signed(50), name=f"prod{e}")
            m.d.comb += prod.eq(grad * lr)
            pre = Signal(signed(50), name=f"pre{e}")
            m.d.comb += pre.eq(prod >> pre_shift)
            rand = states[e + 1] & frac_mask
            frac = pre.as_unsigned()[:17] & frac_mask
            step = Signal(signed(66), name=f"sr{e}")
            m.d.comb += step.eq(Mux(s_raw > 0, (pre >> s_eff) + (frac > rand), prod << s_left))
            m.d.comb += [
                w_new[e].eq(Mux(in_range, _sat(w_rd.data[e] - step, 16), w_rd.data[e])),
                b_new[e].eq(Mux(in_range, _sat(b_rd.data[e] - step, 32), b_rd.data[e])),
                q_new[e].eq(Mux(in_range, q, q_rd.data[e])),
                w8_new[e].eq(Mux(in_range, _sat(rhu(w_new[e], nm.master_extra, 18), 8), 0)),
            ]

        # Stage-1 addresses (from the stage-1 row and word).
        s1_words = Signal(32)
        m.d.comb += s1_words.eq(s1_m * op.k + s1_t)
        post_dst_en = Signal()
        post_dst_addr = Signal(16)
        post_dst_word = Signal(data.ArrayLayout(signed(8), R))
        m.d.comb += post_dst_addr.eq(op.dst_base + s1_m * op.dst_stride + s1_t)
        with m.If(s1 & busy):
            with m.If(is_fwd):
                m.d.comb += [v_wr.en.eq(1), v_wr.addr.eq(op.vw_base + s1_m * op.vw_stride + s1_t),
                             v_wr.data.eq(y_word), post_dst_en.eq(1), post_dst_word.eq(fwd_out)]
            with m.Elif(is_dx):
                m.d.comb += [v_wr.en.eq(1), v_wr.addr.eq(op.vw_base + s1_m * op.vw_stride + s1_t),
                             v_wr.data.eq(dx_word), post_dst_en.eq(1), post_dst_word.eq(dx_out)]
            with m.Elif(is_upd):
                m.d.comb += [
                    q_wr.en.eq(op.momentum), q_wr.addr.eq(op.q_base + s1_words), q_wr.data.eq(q_new),
                    w_wr.en.eq(~s1_last_row), w_wr.addr.eq(op.p_base + s1_words), w_wr.data.eq(w_new),
                    b_wr.en.eq(s1_last_row), b_wr.addr.eq(op.bb_base + s1_t), b_wr.data.eq(b_new),
                    post_dst_en.eq(~s1_last_row), post_dst_word.eq(w8_new),
                ]
                m.d.sync += lfsr.eq(Array(states)[draws])

        # ------------------------------------------------------------------
        # LOSS: each row's logit words through the loss unit, its error words out
        # ------------------------------------------------------------------
        lrow = Signal(16)
        lk = Signal(16)                 # next word to read
        feeding, fed_valid = Signal(), Signal()
        fed_k = Signal(16)
        lout = Signal(16)               # error words taken in this row
        loss_dst_en = Signal()
        loss_dst_addr = Signal(16)
        m.d.comb += [lu.loss.eq(op.loss), lu.count.eq(op.n), l_rd.addr.eq(lrow >> lg),
                     lu.label.eq(Array(l_rd.data[e] for e in range(R))[lrow[:lg] if lg else 0])]
        with m.If(loss_start):
            m.d.sync += [lrow.eq(0), lk.eq(0), feeding.eq(1), lout.eq(0)]
        with m.If(busy & (op.kind == KIND["loss"])):
            m.d.comb += v_rd.addr.eq(op.vr_base + lrow * op.vr_stride + lk)
        read_now = feeding & (lk < op.k)
        m.d.sync += [fed_valid.eq(read_now), fed_k.eq(lk)]
        with m.If(read_now):
            m.d.sync += lk.eq(lk + 1)
            with m.If(lk + 1 >= op.k):
                m.d.sync += feeding.eq(0)
        m.d.comb += [lu.in_valid.eq(fed_valid), lu.in_data.eq(v_rd.data),
                     lu.in_last.eq(fed_valid & (fed_k + 1 >= op.k)),
                     lu.out_ready.eq(busy & (op.kind == KIND["loss"]))]
        with m.If(lu.out_valid & lu.out_ready):
            m.d.comb += [loss_dst_addr.eq(op.dst_base + lrow * op.dst_stride + lout), loss_dst_en.eq(1)]
            m.d.sync += lout.eq(lout + 1)
            with m.If(lu.out_last):
                m.d.sync += [lrow.eq(lrow + 1), lout.eq(0), lk.eq(0), feeding.eq(lrow + 1 < op.m)]
                m.d.comb += loss_done.eq(lrow + 1 >= op.m)

        with m.If(op.kind == KIND["loss"]):
            m.d.comb += [dst_en.eq(loss_dst_en), dst_addr.eq(loss_dst_addr), dst_word.eq(lu.out_data),
                         dst_row.eq(lrow)]
        with m.Else():
            m.d.comb += [dst_en.eq(post_dst_en & (op.dst != DST["none"])), dst_addr.eq(post_dst_addr),
                         dst_word.eq(post_dst_word), dst_row.eq(s1_m)]

        # ------------------------------------------------------------------
        # Host port
        # ------------------------------------------------------------------
        with m.If(~busy):
            m.d.comb += [
                w_wr.en.eq(host_wr & (self.wr_target == TARGET["wmem"])), w_wr.addr.eq(self.wr_addr),
                b_wr.en.eq(host_wr & (self.wr_target == TARGET["bmem"])), b_wr.addr.eq(self.wr_addr),
                q_wr.en.eq(host_wr & (self.wr_target == TARGET["mmem"])), q_wr.addr.eq(self.wr_addr),
                l_wr.en.eq(host_wr & (self.wr_target == TARGET["labels"])), l_wr.addr.eq(self.wr_addr),
                v_wr.en.eq(host_wr & (self.wr_target == TARGET["vmem"])), v_wr.addr.eq(self.wr_addr),
                w_rd.addr.eq(self.rd_addr), b_rd.addr.eq(self.rd_addr), q_rd.addr.eq(self.rd_addr),
                v_rd.addr.eq(self.rd_addr),
                eng.rd_en.eq(self.rd_en & (self.rd_target == TARGET["results"])),
                eng.rd_addr.eq(self.rd_addr[:res_abits]), eng.rd_half.eq(self.rd_addr[res_abits]),
                eng.op_rd_en.eq(self.rd_en & (self.rd_target <= TARGET["b"])),
                eng.op_rd_sel.eq(self.rd_target == TARGET["b"]), eng.op_rd_addr.eq(self.rd_addr),
            ]
            for e in range(R):
                m.d.comb += [w_wr.data[e].eq(self.wr_data[e]), b_wr.data[e].eq(self.wr_data[e]),
                             l_wr.data[e].eq(self.wr_data[e]),
                             q_wr.data[e].eq(self.wr_data[e]), v_wr.data[e].eq(self.wr_data[e])]
        rd_target_d = Signal(3)
        m.d.sync += rd_target_d.eq(self.rd_target)
        with m.Switch(rd_target_d):
            for target, lanes in ((TARGET["a"], eng.op_rd_data), (TARGET["b"], eng.op_rd_data),
                                  (TARGET["wmem"], w_rd.data), (TARGET["bmem"], b_rd.data),
                                  (TARGET["mmem"], q_rd.data), (TARGET["results"], eng.rd_data),
                                  (TARGET["vmem"], v_rd.data)):
                with m.Case(target):
                    m.d.comb += [self.rd_data[e].eq(lanes[e]) for e in range(R)]
        return m
