"""``HostPort``: the host's reads and writes of every memory of the training core."""

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from . import ports
from .program import Target

__all__ = ["HostPort", "host_signature"]


def host_signature(rows):
    """The host's side (as the host drives it): ``wr_*`` writes one word of R
    int32 lanes to ``wr_target`` at the rising edge of a cycle where
    ``wr_en`` is high (lanes cut to the memory's width; labels go R to a
    word); ``rd_*`` presents an address and ``rd_data`` has the word,
    sign-extended, the next cycle."""
    wide = data.ArrayLayout(signed(32), rows)
    return wiring.Signature(
        {
            "wr_en": Out(1),
            "wr_target": Out(Target),
            "wr_addr": Out(16),
            "wr_data": Out(wide),
            "rd_en": Out(1),
            "rd_target": Out(Target),
            "rd_addr": Out(16),
            "rd_data": In(wide),
        }
    )


class HostPort(wiring.Component):
    """Decodes the host's requests (``host``) into one request per memory:
    ``<mem>_wr`` and ``operand_wr`` write, ``<mem>_rd``, ``results`` and
    ``operands`` read (their addresses always follow ``rd_addr``), and
    returns the word of the target read the cycle before. Its outputs are
    meant for an idle core: the core routes them only while not busy."""

    def __init__(self, geometry):
        self.geometry = g = geometry
        lanes = lambda shape: data.ArrayLayout(shape, g.rows)
        self.mems = {
            "vmem": (g.vmem_depth, lanes(signed(8))),
            "wmem": (g.wmem_depth, lanes(signed(16))),
            "bmem": (g.bmem_depth, lanes(signed(32))),
            "mmem": (g.mmem_depth, lanes(signed(32))),
        }
        members = {f"{name}_wr": Out(ports.mem_write(*mem)) for name, mem in self.mems.items()}
        members.update({f"{name}_rd": Out(ports.mem_read(*mem)) for name, mem in self.mems.items()})
        super().__init__(
            {
                "host": In(host_signature(g.rows)),
                **members,
                "labels_wr": Out(ports.mem_write(-(-g.label_depth // g.rows), lanes(range(g.classes)))),
                "operand_wr": Out(ports.operand_write(g.rows, 2 * g.operand_depth)),
                "results": Out(ports.mem_read(2 * g.result_depth, lanes(signed(32)), en=True)),
                "operands": Out(ports.operand_read(g.rows, 2 * g.operand_depth)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        R, h = self.geometry.rows, self.host
        writes = {
            Target.VMEM: self.vmem_wr,
            Target.WMEM: self.wmem_wr,
            Target.BMEM: self.bmem_wr,
            Target.MMEM: self.mmem_wr,
            Target.LABELS: self.labels_wr,
        }
        for target, port in writes.items():
            m.d.comb += [port.en.eq(h.wr_en & (h.wr_target == target)), port.addr.eq(h.wr_addr)]
            m.d.comb += [port.data[e].eq(h.wr_data[e]) for e in range(R)]
        ow = self.operand_wr
        m.d.comb += [
            ow.en.eq(h.wr_en & ((h.wr_target == Target.A) | (h.wr_target == Target.B))),
            ow.sel.eq(h.wr_target == Target.B),
            ow.addr.eq(h.wr_addr),
        ]
        m.d.comb += [ow.data[e].eq(h.wr_data[e]) for e in range(R)]

        reads = {
            Target.A: self.operands,
            Target.B: self.operands,
            Target.WMEM: self.wmem_rd,
            Target.BMEM: self.bmem_rd,
            Target.MMEM: self.mmem_rd,
            Target.RESULTS: self.results,
            Target.VMEM: self.vmem_rd,
        }
        m.d.comb += [port.addr.eq(h.rd_addr) for port in dict.fromkeys(reads.values())]
        m.d.comb += [
            self.results.en.eq(h.rd_en & (h.rd_target == Target.RESULTS)),
            self.operands.en.eq(h.rd_en & ((h.rd_target == Target.A) | (h.rd_target == Target.B))),
            self.operands.sel.eq(h.rd_target == Target.B),
        ]
        rd_target = Signal(Target)  # the target of the word arriving now
        m.d.sync += rd_target.eq(h.rd_target)
        with m.Switch(rd_target):
            for target, port in reads.items():
                with m.Case(target):
                    m.d.comb += [h.rd_data[e].eq(port.data[e]) for e in range(R)]
        return m
