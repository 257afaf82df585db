"""The GEMM engine: a :class:`SystolicArray` between two operand buffers and
a result buffer, driven by a tile launcher and its streamer.

``C = A'·B'`` with ``A'`` M×K and ``B'`` K×N, where by ``mode``:

====  ==================  ==================
mode  A stored as         B stored as
====  ==================  ==================
nn    M×K (A' = A)        K×N (B' = B)
nt    M×K (A' = A)        N×K (B' = Bᵀ)
tn    K×M (A' = Aᵀ)       K×N (B' = B)
====  ==================  ==================

The components, one file each, each stating its ports' timing:

* :class:`.TileLauncher` takes ``start`` and launches the weight tiles on
  the schedule of :func:`reference.gemm.tile_launches`; it ends the GEMM;
* :class:`.TileStreamer` turns each tile into a weight-column stream and an
  activation-row stream of reads, in the operands' stored coordinates;
* two :class:`.OperandBuffer` (A, B), banked diagonally so that a row or a
  column of a stored matrix is read in one cycle: that is how the
  transposed modes read their operands as stored;
* the :class:`.SystolicArray`;
* :class:`.ResultBuffer` sums the array's rows over K;
* the performance counters (:class:`GemmCounters`), in the engine itself.

See ``docs/systolic.md`` for the host interface and the timing.
"""

from types import SimpleNamespace

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from reference.gemm import array_latency

from .array import SystolicArray
from .launcher import TileLauncher
from .operand_buffer import OperandBuffer
from .result_buffer import ResultBuffer
from .signatures import CounterPorts, OperandRead, OperandWrite, ResultRead, start_signature
from .streamer import TileStreamer

__all__ = ["GemmEngine"]

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
        Add ``operand_read``, a host read port of the operand buffers, for
        designs that keep tensors there (the training core).
    dsp_pairs : bool
        Two PEs of a row share one multiplier (:class:`SystolicArray`): half the
        DSP48E1s on a Xilinx part, the same sums and cycles.
    chain : bool
        Take the next GEMM while the last one drains: ``start.ready`` rises in
        the cycle after the running GEMM's last tile launch, and its tiles
        follow on as a GEMM's own would (:func:`reference.gemm.chain_launches`).
        At most two GEMMs are in flight. Results are written in the order the
        GEMMs were taken, as if one ran after the other.

    Attributes
    ----------
    start : In(stream of GemmConfig)
        Taken in a cycle with ``start.valid`` and ``start.ready`` (idle)
        high; the payload is read in that cycle.
    busy, done : Out(1)
        ``busy`` from the cycle after ``start`` to the cycle the last result
        is written; ``done`` in that last cycle. With ``chain``: of the last GEMM in flight.
    queued : Out(1), with ``chain``
        A second GEMM is in flight (:class:`.TileLauncher`): ``finished`` writes
        are the first one's.
    active : Out(1)
        High in each cycle an activation row enters the array.
    finished : Out(1), finished_addr : Out(range(2·result_depth))
        A row of final sums (its column block's last K tile) is written this
        cycle, to result word ``finished_addr`` (over both halves). A GEMM writes
        them in its result layout's order: word ``(n div C)·M + m``, rising.
    write : In(OperandWrite)
        Host write of one operand word, lanes in bank order.
    read : In(ResultRead)
        Host read of one result word, valid the next cycle.
    operand_read : In(OperandRead), with ``operand_read``
        Host read of one stored operand word, valid the next cycle.
    counters : Out(CounterPorts)
        Cycles busy, rows entered and weight stalls in the last GEMM; host
        transfer cycles since reset or ``cnt_clear``.
    cnt_clear : In(1)
        Restart ``counters.transfer``.
    """

    def __init__(
        self,
        rows=8,
        cols=8,
        operand_depth=DEFAULT_OPERAND_DEPTH,
        result_depth=DEFAULT_RESULT_DEPTH,
        stuck_pe=None,
        operand_read=False,
        dsp_pairs=False,
        chain=False,
    ):
        if not (isinstance(rows, int) and rows >= 1 and rows & (rows - 1) == 0):
            raise ValueError(f"rows must be a power of two, not {rows!r}")
        if not (isinstance(cols, int) and cols >= 1):
            raise ValueError(f"cols must be a positive integer, not {cols!r}")
        for name, depth in (("operand_depth", operand_depth), ("result_depth", result_depth)):
            if not (isinstance(depth, int) and depth >= 2 and depth & (depth - 1) == 0):
                raise ValueError(f"{name} must be a power of two, not {depth!r}")
        self.rows, self.cols = rows, cols
        self.stuck_pe = stuck_pe
        self.dsp_pairs, self.chain = dsp_pairs, chain
        self.operand_depth, self.result_depth = operand_depth, result_depth
        self.array_latency = array_latency(rows, cols)
        self.has_operand_read = operand_read
        ports = {
            "start": In(start_signature()),
            "busy": Out(1),
            "done": Out(1),
            "active": Out(1),
            "finished": Out(1),
            "finished_addr": Out(range(2 * result_depth)),
            "write": In(OperandWrite(rows, operand_depth)),
            "read": In(ResultRead(cols, result_depth)),
            "counters": Out(CounterPorts()),
            "cnt_clear": In(1),
        }
        if operand_read:
            ports["operand_read"] = In(OperandRead(rows, operand_depth))
        if chain:
            ports["queued"] = Out(1)
        super().__init__(ports)

    @staticmethod
    def geometry(
        rows=8,
        cols=8,
        operand_depth=DEFAULT_OPERAND_DEPTH,
        result_depth=DEFAULT_RESULT_DEPTH,
        stuck_pe=None,
        dsp_pairs=False,
    ):
        """The sizes an engine built with these parameters has, without building one;
        ``operand_word`` and ``result_word`` are the layouts of its write and read ports' data."""
        return SimpleNamespace(
            rows=rows,
            cols=cols,
            operand_depth=operand_depth,
            result_depth=result_depth,
            array_latency=array_latency(rows, cols),
            operand_word=OperandWrite(rows, operand_depth).members["data"].shape,
            result_word=ResultRead(cols, result_depth).members["data"].shape,
        )

    def elaborate(self, platform):
        m = Module()
        R, C = self.rows, self.cols
        depths = (self.operand_depth, self.result_depth)
        m.submodules.launcher = launcher = TileLauncher(R, C, *depths, chain=self.chain)
        m.submodules.streamer = streamer = TileStreamer(R, C, *depths, chain=self.chain)
        # A is not masked past K: there it meets weights that B's mask has made 0 (docs/systolic.md).
        m.submodules.a = a_buf = OperandBuffer(R, self.operand_depth, 0, self.has_operand_read, masked=False)
        m.submodules.b = b_buf = OperandBuffer(R, self.operand_depth, 1, self.has_operand_read)
        m.submodules.array = array = SystolicArray(R, C, stuck_pe=self.stuck_pe, dsp_pairs=self.dsp_pairs)
        m.submodules.results = results = ResultBuffer(C, self.result_depth, self.array_latency)

        wiring.connect(m, wiring.flipped(self.start), launcher.start)
        wiring.connect(m, launcher.launch, streamer.launch)
        wiring.connect(m, streamer.a_read, a_buf.read)
        wiring.connect(m, streamer.b_read, b_buf.read)
        wiring.connect(m, streamer.row, results.row)
        wiring.connect(m, wiring.flipped(self.write), a_buf.write, b_buf.write)
        wiring.connect(m, wiring.flipped(self.read), results.read)
        m.d.comb += [
            streamer.config.eq(launcher.config),
            streamer.a_origin.eq(launcher.a_origin),
            streamer.b_origin.eq(launcher.b_origin),
            array.w_en.eq(streamer.w_en),
            array.w_bank.eq(streamer.w_bank),
            array.w_col.eq(streamer.w_col),
            array.w_data.eq(b_buf.vector),
            array.a_valid.eq(streamer.a_valid),
            array.a_bank.eq(streamer.a_bank),
            array.a_data.eq(a_buf.vector),
            results.sums.eq(array.out_data),
            launcher.last_written.eq(results.last_written),
            self.busy.eq(launcher.busy),
            self.done.eq(launcher.done),
            self.active.eq(streamer.a_valid),
            self.finished.eq(results.finished),
            self.finished_addr.eq(results.finished_addr),
        ]
        if self.chain:
            m.d.comb += self.queued.eq(launcher.queued)

        self._count(m, launcher, streamer)

        if self.has_operand_read:
            # One read port serves both buffers; the word comes from the one selected a cycle ago.
            host, sel_d = self.operand_read, Signal()
            for buf in (a_buf, b_buf):
                m.d.comb += [buf.host.en.eq(host.en), buf.host.sel.eq(host.sel), buf.host.addr.eq(host.addr)]
            m.d.sync += sel_d.eq(host.sel)
            m.d.comb += host.data.eq(Mux(sel_d, b_buf.host.data, a_buf.host.data))
        return m

    def _count(self, m, launcher, streamer):
        """The counters (:class:`GemmCounters`). They live in this module, not a
        component of their own, so that a design that reads only some of them
        (the self-test reads ``total``) loses the others in synthesis."""
        cnt, streaming_started = self.counters, Signal()
        with m.If(self.start.valid & self.start.ready):
            m.d.sync += [cnt.total.eq(0), cnt.active.eq(0), cnt.weight_stall.eq(0), streaming_started.eq(0)]
        with m.Elif(launcher.busy):
            m.d.sync += cnt.total.eq(cnt.total + 1)
            with m.If(streamer.a_valid):
                m.d.sync += [cnt.active.eq(cnt.active + 1), streaming_started.eq(1)]
            # Between the first and the last row, a cycle without a row is a wait for weights.
            with m.Elif(streaming_started & (launcher.pending | streamer.streaming)):
                m.d.sync += cnt.weight_stall.eq(cnt.weight_stall + 1)
        with m.If(self.cnt_clear):
            m.d.sync += cnt.transfer.eq(0)
        with m.Elif(self.write.en | self.read.en):
            m.d.sync += cnt.transfer.eq(cnt.transfer + 1)
