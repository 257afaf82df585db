"""``PerfCounters``: the GEMM engine's performance counters (:class:`GemmCounters`)."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .signatures import GemmCounters

__all__ = ["PerfCounters"]


class PerfCounters(wiring.Component):
    """Attributes
    ----------
    begin : In(1)
        A GEMM is taken this cycle: ``total``, ``active`` and ``weight_stall`` restart from 0.
    busy : In(1)
        A cycle of the GEMM: ``total`` counts it.
    active : In(1)
        An activation row enters the array: ``active`` counts it.
    waiting : In(1)
        Rows remain to be streamed: after the first row, a cycle with none entering is a ``weight_stall``.
    transfer : In(1)
        A host read or write: ``transfer`` counts it, from reset or ``clear``.
    clear : In(1)
        Restart ``transfer`` from 0.
    counters : Out(GemmCounters)
        The counts, updated at each clock edge.
    """

    def __init__(self):
        super().__init__(
            {
                "begin": In(1),
                "busy": In(1),
                "active": In(1),
                "waiting": In(1),
                "transfer": In(1),
                "clear": In(1),
                "counters": Out(GemmCounters),
            }
        )

    def elaborate(self, platform):
        m = Module()
        cnt = self.counters
        streaming_started = Signal()
        with m.If(self.begin):
            m.d.sync += [cnt.total.eq(0), cnt.active.eq(0), cnt.weight_stall.eq(0), streaming_started.eq(0)]
        with m.Elif(self.busy):
            m.d.sync += cnt.total.eq(cnt.total + 1)
            with m.If(self.active):
                m.d.sync += [cnt.active.eq(cnt.active + 1), streaming_started.eq(1)]
            with m.Elif(streaming_started & self.waiting):
                m.d.sync += cnt.weight_stall.eq(cnt.weight_stall + 1)
        with m.If(self.clear):
            m.d.sync += cnt.transfer.eq(0)
        with m.Elif(self.transfer):
            m.d.sync += cnt.transfer.eq(cnt.transfer + 1)
        return m
