"""The GEMM engine: a :class:`SystolicArray`, its operand and result buffers,
a tile sequencer and performance counters.

``C = A'·B'`` with ``A'`` M×K and ``B'`` K×N, where by ``mode``:

====  ==================  ==================
mode  A stored as         B stored as
====  ==================  ==================
nn    M×K (A' = A)        K×N (B' = B)
nt    M×K (A' = A)        N×K (B' = Bᵀ)
tn    K×M (A' = Aᵀ)       K×N (B' = B)
====  ==================  ==================

Operand buffers (A and B, each with two ping-pong halves) are banked
diagonally so that R consecutive elements of a stored row *or* of a stored
column are read in one cycle: element (r, c) of a stored matrix with ``cols``
columns lives in lane ``(r + c) mod R`` at word ``r·W + c div R``, with
``W = ceil(cols / R)``. That is how the transposed modes read their operands
in the natural layout. See ``docs/systolic.md`` for the host interface and
timing.

Schedule (cycles counted from the one in which ``start`` is taken): tiles
``(n_t, k_t)`` run n-major, k-minor. Tile T is *launched* in cycle ``P_T``:
its weight column j is read in cycle ``P_T + 1 + j`` and written into bank
``T mod 2`` in ``P_T + 2 + j``; its activation row m is read in
``P_T + 2 + m`` and enters the array in ``S_T + m``, ``S_T = P_T + 3``, so
column j's weights land one cycle before the tile's first row reaches it.
``P_0 = 1`` (the cycle after ``start``) and
``P_T = max(P_{T-1} + max(M, C), P_{T-2} + M + R - 1)``: one weight port (C
cycles a tile) and the bank that tile T-2 used must have drained. Row m of a
tile leaves the array ``R + C - 1`` cycles after it entered and is added into
(or, for k_t = 0, written to) the result buffer one cycle later.
"""
from types import SimpleNamespace

from amaranth.hdl import Signal, Module, Mux, Cat, Array, Const, signed
from amaranth.lib import wiring, data, memory
from amaranth.lib.wiring import In, Out

from reference.gemm import MODE_CODE, array_latency
from .array import SystolicArray

__all__ = ["GemmEngine"]

DIM_BITS = 16
COUNTER_BITS = 32
DEFAULT_OPERAND_DEPTH = 1024
DEFAULT_RESULT_DEPTH = 512


class GemmEngine(wiring.Component):
    """Parameters
    ----------
    rows, cols : int
        The array's R and C. R must be a power of two (the operand buffers
        bank by R).
    operand_depth : int
        Words (of R int8) in each half of each operand buffer.
    result_depth : int
        Words (of C int32) in each half of the result buffer.
    stuck_pe : (int, int) or None
        Fault injection (see :class:`SystolicArray`); None in real designs.
    operand_read : bool
        Add a host read port to the operand buffers (``op_rd_*``), for
        designs that keep tensors there (the training core).

    Attributes
    ----------
    start, ready : handshake
        ``start`` is taken in a cycle where ``ready`` (the engine is idle); the
        ``cfg_*`` inputs are read in that cycle.
    busy, done : out
        ``busy`` from the cycle after ``start`` to the cycle the last result is
        written; ``done`` pulses in that last cycle.
    cfg_a_base, cfg_b_base, cfg_result_base : in
        Where A, B and C start: word offsets added to every operand (result)
        address, within the selected half or past it (each buffer is one
        space of 2·depth words, the half bit its top address bit).
    wr_en, wr_sel, wr_both, wr_half, wr_addr, wr_data : in
        Host write of one operand word (``wr_sel`` 0: A, 1: B; ``wr_both``:
        the same word to both), lanes in bank order.
    rd_en, rd_half, rd_addr : in; rd_data : out
        Host read of one result word (C int32), ``rd_data`` valid the next cycle.
    cnt_total, cnt_active, cnt_weight_stall, cnt_transfer : out
        Cycles busy; cycles an activation row entered the array; cycles the
        array waited for a tile's weights between rows; host transfer cycles
        (reads and writes) since reset or ``cnt_clear``.
    active : out
        High in each cycle an activation row enters the array.
    op_rd_en, op_rd_sel, op_rd_addr : in; op_rd_data : out
        With ``operand_read``: host read of one stored operand word (lanes in
        bank order; ``op_rd_addr`` spans both halves), valid the next cycle.
    """

    def __init__(self, rows=8, cols=8, operand_depth=DEFAULT_OPERAND_DEPTH, result_depth=DEFAULT_RESULT_DEPTH,
                 stuck_pe=None, operand_read=False):
        if not (isinstance(rows, int) and rows >= 1 and rows & (rows - 1) == 0):
            raise ValueError(f"rows must be a power of two, not {rows!r}")
        if not (isinstance(cols, int) and cols >= 1):
            raise ValueError(f"cols must be a positive integer, not {cols!r}")
        for name, depth in (("operand_depth", operand_depth), ("result_depth", result_depth)):
            if not (isinstance(depth, int) and depth >= 2 and depth & (depth - 1) == 0):
                raise ValueError(f"{name} must be a power of two, not {depth!r}")
        self.rows, self.cols = rows, cols
        self.stuck_pe = stuck_pe
        self.operand_depth, self.result_depth = operand_depth, result_depth
        self.array_latency = array_latency(rows, cols)
        self.operand_read = operand_read
        op_space, res_space = range(2 * operand_depth), range(2 * result_depth)
        extra = {}
        if operand_read:
            extra = {"op_rd_en": In(1), "op_rd_sel": In(1), "op_rd_addr": In(op_space),
                     "op_rd_data": Out(data.ArrayLayout(signed(8), rows))}
        super().__init__({
            "start": In(1),
            "ready": Out(1),
            "cfg_m": In(DIM_BITS),
            "cfg_k": In(DIM_BITS),
            "cfg_n": In(DIM_BITS),
            "cfg_mode": In(2),
            "cfg_a_stride": In(DIM_BITS),     # W of A as stored
            "cfg_b_stride": In(DIM_BITS),     # W of B as stored
            "cfg_operand_half": In(1),
            "cfg_result_half": In(1),
            "cfg_a_base": In(op_space),
            "cfg_b_base": In(op_space),
            "cfg_result_base": In(res_space),
            "busy": Out(1),
            "done": Out(1),
            "wr_en": In(1),
            "wr_sel": In(1),
            "wr_both": In(1),
            "wr_half": In(1),
            "wr_addr": In(range(operand_depth)),
            "wr_data": In(data.ArrayLayout(signed(8), rows)),
            "rd_en": In(1),
            "rd_half": In(1),
            "rd_addr": In(range(result_depth)),
            "rd_data": Out(data.ArrayLayout(signed(32), cols)),
            "cnt_clear": In(1),
            "cnt_total": Out(COUNTER_BITS),
            "cnt_active": Out(COUNTER_BITS),
            "cnt_weight_stall": Out(COUNTER_BITS),
            "cnt_transfer": Out(COUNTER_BITS),
            "active": Out(1),
            **extra,
        })

    @staticmethod
    def geometry(rows=8, cols=8, operand_depth=DEFAULT_OPERAND_DEPTH, result_depth=DEFAULT_RESULT_DEPTH,
                 stuck_pe=None):
        """The sizes an engine built with these parameters has, without building one."""
        return SimpleNamespace(rows=rows, cols=cols, operand_depth=operand_depth, result_depth=result_depth,
                               array_latency=array_latency(rows, cols))

    def elaborate(self, platform):
        m = Module()
        R, C = self.rows, self.cols
        lg = R.bit_length() - 1
        D = self.array_latency
        op_abits = (self.operand_depth - 1).bit_length()

        m.submodules.array = array = SystolicArray(R, C, stuck_pe=self.stuck_pe)

        # -- configuration, latched at start --------------------------------
        cfg = {name: Signal(getattr(self, f"cfg_{name}").shape(), name=f"r_{name}")
               for name in ("m", "k", "n", "mode", "a_stride", "b_stride", "operand_half", "result_half",
                            "a_base", "b_base", "result_base")}
        interval = Signal(DIM_BITS + 1)     # max(M, C): one weight port
        bank_free = Signal(DIM_BITS + 1)    # M + R - 1: tile T-2 has drained its bank

        busy = Signal()
        m.d.comb += [self.busy.eq(busy), self.ready.eq(~busy)]
        take = self.start & ~busy

        # -- tile launcher ---------------------------------------------------
        n_t = Signal(DIM_BITS)              # next tile to launch
        k_t = Signal(DIM_BITS)
        n0 = Signal(DIM_BITS)               # n_t * C
        k0 = Signal(DIM_BITS)               # k_t * R
        c_base = Signal(2 * DIM_BITS)       # n_t * M: result word of row 0
        tiles_left = Signal()
        bank = Signal()                     # bank of the next tile
        since_last = Signal(DIM_BITS + 2)
        since_prev = Signal(DIM_BITS + 2)
        first = Signal()                    # no tile launched yet
        sat = (1 << (DIM_BITS + 2)) - 1

        launch = Signal()
        m.d.comb += launch.eq(busy & tiles_left &
                              (first | ((since_last >= interval) & (since_prev >= bank_free))))

        # The B stream (weight columns) and the A stream (activation rows).
        b_act, b_j, b_n0, b_k0, b_bank = Signal(), Signal(range(C + 1)), Signal(DIM_BITS), Signal(DIM_BITS), Signal()
        a_act, a_m = Signal(), Signal(DIM_BITS)
        a_k0, a_cbase, a_first_k, a_last, a_bank = (Signal(DIM_BITS), Signal(2 * DIM_BITS), Signal(),
                                                    Signal(), Signal())
        a_pending = Signal()                # launched last cycle: A starts now
        pend = {name: Signal(sig.shape(), name=f"pend_{name}")
                for name, sig in (("k0", a_k0), ("cbase", a_cbase), ("first_k", a_first_k),
                                  ("last", a_last), ("bank", a_bank))}

        last_k = Signal()
        last_n = Signal()
        m.d.comb += [last_k.eq(k0 + R >= cfg["k"]), last_n.eq(n0 + C >= cfg["n"])]

        with m.If(take):
            m.d.sync += [
                cfg["m"].eq(self.cfg_m), cfg["k"].eq(self.cfg_k), cfg["n"].eq(self.cfg_n),
                cfg["mode"].eq(self.cfg_mode), cfg["a_stride"].eq(self.cfg_a_stride),
                cfg["b_stride"].eq(self.cfg_b_stride), cfg["operand_half"].eq(self.cfg_operand_half),
                cfg["result_half"].eq(self.cfg_result_half),
                cfg["a_base"].eq(self.cfg_a_base), cfg["b_base"].eq(self.cfg_b_base),
                cfg["result_base"].eq(self.cfg_result_base),
                interval.eq(Mux(self.cfg_m > C, self.cfg_m, C)),
                bank_free.eq(self.cfg_m + R - 1),
                busy.eq(1),
                n_t.eq(0), k_t.eq(0), n0.eq(0), k0.eq(0), c_base.eq(0), bank.eq(0), first.eq(1),
                # A GEMM with an empty dimension has no tiles: it ends at once.
                tiles_left.eq((self.cfg_m != 0) & (self.cfg_k != 0) & (self.cfg_n != 0)),
                # No earlier tiles: nothing to wait for.
                since_last.eq(sat), since_prev.eq(sat),
            ]
        with m.Elif(launch):
            m.d.sync += [
                first.eq(0), bank.eq(~bank),
                since_last.eq(1), since_prev.eq(Mux(since_last == sat, sat, since_last + 1)),
                b_act.eq(1), b_j.eq(0), b_n0.eq(n0), b_k0.eq(k0), b_bank.eq(bank),
                a_pending.eq(1),
                pend["k0"].eq(k0), pend["cbase"].eq(c_base), pend["first_k"].eq(k_t == 0),
                pend["last"].eq(last_k & last_n), pend["bank"].eq(bank),
            ]
            with m.If(last_k):
                m.d.sync += [k_t.eq(0), k0.eq(0), n_t.eq(n_t + 1), n0.eq(n0 + C),
                             c_base.eq(c_base + cfg["m"])]
                with m.If(last_n):
                    m.d.sync += tiles_left.eq(0)
            with m.Else():
                m.d.sync += [k_t.eq(k_t + 1), k0.eq(k0 + R)]
        with m.Else():
            m.d.sync += [since_last.eq(Mux(since_last == sat, sat, since_last + 1)),
                         since_prev.eq(Mux(since_prev == sat, sat, since_prev + 1))]

        with m.If(~launch):
            m.d.sync += a_pending.eq(0)

        # B stream: one weight column a cycle.
        b_issue = Signal()
        m.d.comb += b_issue.eq(b_act)
        with m.If(b_act & ~launch):
            m.d.sync += b_j.eq(b_j + 1)
            with m.If(b_j == C - 1):
                m.d.sync += b_act.eq(0)

        # A stream: one activation row a cycle, from the cycle after launch.
        with m.If(a_pending):
            m.d.sync += [a_act.eq(1), a_m.eq(0), a_k0.eq(pend["k0"]), a_cbase.eq(pend["cbase"]),
                         a_first_k.eq(pend["first_k"]), a_last.eq(pend["last"]), a_bank.eq(pend["bank"])]
        a_issue = Signal()
        m.d.comb += a_issue.eq(a_act & (a_m < cfg["m"]))
        with m.If(a_act & ~a_pending):
            m.d.sync += a_m.eq(a_m + 1)
            with m.If(a_m + 1 >= cfg["m"]):
                m.d.sync += a_act.eq(0)

        # -- operand buffers -------------------------------------------------
        is_nt = cfg["mode"] == MODE_CODE["nt"]
        is_tn = cfg["mode"] == MODE_CODE["tn"]

        def operand_buffer(name, sel, read_en, col_dir, r, c, stride, mask, region):
            """R lanes of int8 memory; returns the read vector, in element order,
            valid (and masked) one cycle after ``read_en``."""
            lanes, host_lanes = [], []
            rot = Signal(lg or 1, name=f"{name}_rot")
            m.d.comb += rot.eq(Mux(col_dir, c, r)[:lg] if lg else 0)
            base = Signal(2 * DIM_BITS, name=f"{name}_base")
            # The operand's first word: its region's base in the selected half.
            m.d.comb += base.eq(r * stride + (c >> lg) + region + Cat(Const(0, op_abits), cfg["operand_half"]))
            # x * stride for x < R, by shifts and adds (no multiplier): lane b of
            # a column read is row r + ((b - c) mod R).
            multiples = []
            for x in range(R):
                v = Signal(2 * DIM_BITS, name=f"{name}_stride_x{x}")
                m.d.comb += v.eq(sum((stride << i for i in range(x.bit_length()) if x >> i & 1), Const(0)))
                multiples.append(v)
            multiples = Array(multiples)
            for b in range(R):
                mem = memory.Memory(shape=signed(8), depth=2 * self.operand_depth, init=[])
                m.submodules[f"{name}_lane{b}"] = mem
                wp = mem.write_port()
                rp = mem.read_port()
                m.d.comb += [
                    wp.en.eq(self.wr_en & ((self.wr_sel == sel) | self.wr_both)),
                    wp.addr.eq(Cat(self.wr_addr, self.wr_half)),
                    wp.data.eq(self.wr_data[b]),
                ]
                offset = Signal(2 * DIM_BITS, name=f"{name}_off{b}")
                # Column vector: lane b holds element t = (b - c) mod R, row r + t.
                m.d.comb += offset.eq(Mux(col_dir, multiples[(b - rot)[:lg] if lg else 0], 0))
                m.d.comb += [rp.en.eq(read_en),
                             rp.addr.eq((base + offset)[:op_abits + 1])]
                lanes.append(rp.data)
                if self.operand_read:
                    hp = mem.read_port()
                    m.d.comb += [hp.en.eq(self.op_rd_en & (self.op_rd_sel == sel)), hp.addr.eq(self.op_rd_addr)]
                    host_lanes.append(hp.data)
            rot_d = Signal.like(rot, name=f"{name}_rot_d")
            mask_d = Signal(R, name=f"{name}_mask_d")
            m.d.sync += [rot_d.eq(rot), mask_d.eq(mask)]
            lane_array = Array(lanes)
            out = Signal(data.ArrayLayout(signed(8), R), name=f"{name}_vector")
            for t in range(R):
                m.d.comb += out[t].eq(Mux(mask_d[t], lane_array[(t + rot_d)[:lg] if lg else 0], 0))
            return out, host_lanes

        def k_mask(k_start, extra=1):
            return Cat(*[(k_start + t < cfg["k"]) & extra for t in range(R)])

        # A: rows of A' (m, k0..k0+R-1); tn reads a column of the stored K×M.
        a_vec, a_host = operand_buffer("a", 0, a_issue, is_tn,
                                       Mux(is_tn, a_k0, a_m), Mux(is_tn, a_m, a_k0),
                                       cfg["a_stride"], k_mask(a_k0), cfg["a_base"])
        # B: column n of B' (k0..k0+R-1, n); nt reads a row of the stored N×K.
        b_n = Signal(DIM_BITS)
        m.d.comb += b_n.eq(b_n0 + b_j)
        b_vec, b_host = operand_buffer("b", 1, b_issue, ~is_nt,
                                       Mux(is_nt, b_n, b_k0), Mux(is_nt, b_k0, b_n),
                                       cfg["b_stride"], k_mask(b_k0, b_n < cfg["n"]), cfg["b_base"])
        if self.operand_read:
            # Host read of one stored word (lanes in bank order), valid the next cycle.
            sel_d = Signal()
            m.d.sync += sel_d.eq(self.op_rd_sel)
            for b in range(R):
                m.d.comb += self.op_rd_data[b].eq(Mux(sel_d, b_host[b], a_host[b]))

        # Weight write one cycle after the read; activations enter one cycle after theirs.
        b_issue_d, b_j_d, b_bank_d = Signal(), Signal(range(C + 1)), Signal()
        m.d.sync += [b_issue_d.eq(b_issue), b_j_d.eq(b_j), b_bank_d.eq(b_bank)]
        a_issue_d, a_bank_d = Signal(), Signal()
        m.d.sync += [a_issue_d.eq(a_issue), a_bank_d.eq(a_bank)]
        m.d.comb += [
            array.w_en.eq(b_issue_d), array.w_bank.eq(b_bank_d), array.w_col.eq(b_j_d),
            array.w_data.eq(b_vec),
            array.a_valid.eq(a_issue_d), array.a_bank.eq(a_bank_d), array.a_data.eq(a_vec),
        ]

        # -- result buffer: accumulate over K --------------------------------
        # Row metadata travels beside the array: read the old sum D cycles
        # after the row entered, write the new one the cycle after.
        res_abits = (self.result_depth - 1).bit_length()
        meta_layout = data.StructLayout({"valid": 1, "addr": 2 * DIM_BITS, "first_k": 1, "last": 1})
        meta = Signal(meta_layout)
        m.d.comb += [meta.valid.eq(a_issue),
                     meta.addr.eq(a_cbase + a_m + cfg["result_base"] + Cat(Const(0, res_abits), cfg["result_half"])),
                     meta.first_k.eq(a_first_k),
                     meta.last.eq(a_issue & a_last & (a_m + 1 == cfg["m"]))]
        pipe = [meta]
        for s in range(D + 1):
            nxt = Signal(meta_layout, name=f"meta_{s}")
            m.d.sync += nxt.eq(pipe[-1])
            pipe.append(nxt)
        acc_read, acc_write = pipe[D], pipe[D + 1]     # rows leave the array in cycle 1 + D after issue

        for j in range(C):
            mem = memory.Memory(shape=signed(32), depth=2 * self.result_depth, init=[])
            m.submodules[f"result_lane{j}"] = mem
            wp = mem.write_port()
            rp_acc = mem.read_port(transparent_for=(wp,))
            rp_host = mem.read_port()
            m.d.comb += [
                rp_acc.en.eq(acc_read.valid),
                rp_acc.addr.eq(acc_read.addr[:res_abits + 1]),
                wp.en.eq(acc_write.valid),
                wp.addr.eq(acc_write.addr[:res_abits + 1]),
                wp.data.eq(Mux(acc_write.first_k, 0, rp_acc.data) + array.out_data[j]),
                rp_host.en.eq(self.rd_en),
                rp_host.addr.eq(Cat(self.rd_addr, self.rd_half)),
                self.rd_data[j].eq(rp_host.data),
            ]

        # -- completion and counters -----------------------------------------
        finish = Signal()
        m.d.comb += finish.eq(busy & ((acc_write.valid & acc_write.last) |
                                      (~tiles_left & first & ~take)))   # empty GEMM
        m.d.comb += [self.done.eq(finish), self.active.eq(array.a_valid)]
        with m.If(finish):
            m.d.sync += busy.eq(0)

        streaming_started = Signal()
        with m.If(take):
            m.d.sync += [self.cnt_total.eq(0), self.cnt_active.eq(0), self.cnt_weight_stall.eq(0),
                         streaming_started.eq(0)]
        with m.Elif(busy):
            m.d.sync += self.cnt_total.eq(self.cnt_total + 1)
            with m.If(array.a_valid):
                m.d.sync += [self.cnt_active.eq(self.cnt_active + 1), streaming_started.eq(1)]
            # Between the first and the last row, a cycle without a row is a wait for weights.
            with m.Elif(streaming_started & (tiles_left | a_act | a_pending)):
                m.d.sync += self.cnt_weight_stall.eq(self.cnt_weight_stall + 1)
        with m.If(self.cnt_clear):
            m.d.sync += self.cnt_transfer.eq(0)
        with m.Elif(self.wr_en | self.rd_en):
            m.d.sync += self.cnt_transfer.eq(self.cnt_transfer + 1)
        return m
