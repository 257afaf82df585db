"""``CfuSoc``: VexRiscv_FullCfu, on-chip RAM, this project's CFU and an exit register.

* **CPU**: ``VexRiscv_FullCfu.v`` from PyPI's ``pythondata-cpu-vexriscv``,
  used as it ships, as an ``Instance``. Reset vector 0.
* **RAM** at 0x0000_0000: ``ram_words`` 32-bit words holding the firmware
  image, served to the instruction and data Wishbone buses (one beat every
  two cycles: the acknowledge is registered).
* **Exit register** at 0x8000_0000 (the CPU treats addresses with bit 31 set
  as I/O, uncached): a store there sets ``halted`` and ``exit_code``.
* **CFU** on the CPU's CFU bus: by default :class:`hdl.cfu.GemmCfu` (the MAC4
  family on funct3 0-5, bit for bit :class:`hdl.cfu.Cfu`'s, and the GEMM ops on
  6-7), so one SoC runs firmware in plain C, with MAC4 and with the GEMM engine;
  ``cfu="mac"`` puts :class:`hdl.cfu.Cfu` alone there.
* ``dbg_addr``/``dbg_data``: a read port into the RAM (word address, data
  the next cycle), so a testbench reads results after the run without the
  CPU.
* With ``loader``: ``dbg_we``/``dbg_wdata`` too, a write port (``dbg_wdata`` to
  word ``dbg_addr`` at the edge ending a cycle with ``dbg_we`` high, before the
  CPU's own write), so a testbench loads the firmware while it holds the CPU in
  reset and one build runs any image (``python -m sim infer --engine soc``).
"""

import importlib.util
from pathlib import Path

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, ResetSignal, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from reference.cfu_gemm_isa import DEFAULT_GEOMETRY, GemmCfuGeometry

from ..cfu import Cfu, GemmCfu

__all__ = ["CfuSoc", "vexriscv_verilog", "EXIT_ADDRESS", "CFU_CHOICES"]

EXIT_ADDRESS = 0x8000_0000


def vexriscv_verilog():
    """Path of ``VexRiscv_FullCfu.v`` in the installed pythondata-cpu-vexriscv."""
    spec = importlib.util.find_spec("pythondata_cpu_vexriscv")
    if spec is None:
        raise FileNotFoundError("pythondata-cpu-vexriscv is not installed: run `make install`")
    path = Path(spec.origin).parent / "verilog" / "VexRiscv_FullCfu.v"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from pythondata-cpu-vexriscv")
    return path


#: VexRiscv's Wishbone bus signals (instruction and data bus alike), with their widths.
_WISHBONE = [
    ("cyc", 1),
    ("stb", 1),
    ("ack", 1),
    ("we", 1),
    ("adr", 30),
    ("miso", 32),
    ("mosi", 32),
    ("sel", 4),
    ("cti", 3),
    ("bte", 2),
]


#: ``cfu`` choices of :class:`CfuSoc`.
CFU_CHOICES = ("gemm", "mac")


class CfuSoc(wiring.Component):
    """Parameters
    ----------
    firmware : path of a raw binary, or a list of 32-bit words
        The RAM's initial contents.
    ram_words : int
        RAM size in words.
    cfu : "gemm", "mac", a :class:`~reference.cfu_gemm_isa.GemmCfuGeometry` or a dict of its parameters
        "gemm" (default): :class:`~hdl.cfu.GemmCfu` of the default geometry; a geometry (or its
        parameters, as JSON design parameters carry them): a GemmCfu of that geometry; "mac":
        :class:`~hdl.cfu.Cfu`.
    loader : bool
        Add the debug write port (``dbg_we``, ``dbg_wdata``) that loads an image at run time.
    """

    def __init__(self, firmware, ram_words=16384, cfu="gemm", loader=False):
        if isinstance(cfu, dict):
            cfu = GemmCfuGeometry(**cfu)
        if not (isinstance(cfu, GemmCfuGeometry) or cfu in CFU_CHOICES):
            raise ValueError(f"cfu must be one of {', '.join(CFU_CHOICES)} or a GemmCfuGeometry, not {cfu!r}")
        self.cfu = DEFAULT_GEOMETRY if cfu == "gemm" else cfu
        if isinstance(firmware, (str, Path)):  # a raw binary image, little-endian words
            data = Path(firmware).read_bytes()
            data += bytes(-len(data) % 4)
            firmware = [int.from_bytes(data[i : i + 4], "little") for i in range(0, len(data), 4)]
        firmware = list(firmware)
        if len(firmware) > ram_words:
            raise ValueError(f"the firmware ({len(firmware)} words) does not fit in {ram_words} words of RAM")
        self.firmware, self.ram_words, self.loader = firmware, ram_words, bool(loader)
        ports = {
            "halted": Out(1),
            "exit_code": Out(32),
            "dbg_addr": In(range(ram_words)),
            "dbg_data": Out(32),
        }
        if self.loader:
            ports.update(dbg_we=In(1), dbg_wdata=In(32))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        abits = (self.ram_words - 1).bit_length()
        m.submodules.ram = ram = memory.Memory(shape=32, depth=self.ram_words, init=self.firmware)
        i_rd, d_rd, dbg_rd = ram.read_port(), ram.read_port(), ram.read_port()
        d_wr = ram.write_port(granularity=8)
        m.d.comb += [dbg_rd.addr.eq(self.dbg_addr), self.dbg_data.eq(dbg_rd.data)]

        ibus = {n: Signal(w, name=f"ibus_{n}") for n, w in _WISHBONE}
        dbus = {n: Signal(w, name=f"dbus_{n}") for n, w in _WISHBONE}

        m.submodules.cfu = cfu = Cfu() if self.cfu == "mac" else GemmCfu(self.cfu)
        m.d.comb += [cfu.clk.eq(ClockSignal()), cfu.reset.eq(ResetSignal())]

        def bus_ports(prefix, bus):
            return {
                f"o_{prefix}_CYC": bus["cyc"],
                f"o_{prefix}_STB": bus["stb"],
                f"i_{prefix}_ACK": bus["ack"],
                f"o_{prefix}_WE": bus["we"],
                f"o_{prefix}_ADR": bus["adr"],
                f"i_{prefix}_DAT_MISO": bus["miso"],
                f"o_{prefix}_DAT_MOSI": bus["mosi"],
                f"o_{prefix}_SEL": bus["sel"],
                f"i_{prefix}_ERR": Const(0),
                f"o_{prefix}_CTI": bus["cti"],
                f"o_{prefix}_BTE": bus["bte"],
            }

        m.submodules.cpu = Instance(
            "VexRiscv",
            i_clk=ClockSignal(),
            i_reset=ResetSignal(),
            i_externalResetVector=Const(0, 32),
            i_timerInterrupt=Const(0),
            i_softwareInterrupt=Const(0),
            i_externalInterruptArray=Const(0, 32),
            o_CfuPlugin_bus_cmd_valid=cfu.cmd_valid,
            i_CfuPlugin_bus_cmd_ready=cfu.cmd_ready,
            o_CfuPlugin_bus_cmd_payload_function_id=cfu.cmd_payload_function_id,
            o_CfuPlugin_bus_cmd_payload_inputs_0=cfu.cmd_payload_inputs_0,
            o_CfuPlugin_bus_cmd_payload_inputs_1=cfu.cmd_payload_inputs_1,
            i_CfuPlugin_bus_rsp_valid=cfu.rsp_valid,
            o_CfuPlugin_bus_rsp_ready=cfu.rsp_ready,
            i_CfuPlugin_bus_rsp_payload_outputs_0=cfu.rsp_payload_outputs_0,
            **bus_ports("iBusWishbone", ibus),
            **bus_ports("dBusWishbone", dbus),
        )

        # Instruction bus: RAM reads, acknowledged the cycle after the address.
        m.d.sync += ibus["ack"].eq(ibus["cyc"] & ibus["stb"] & ~ibus["ack"])
        m.d.comb += [i_rd.addr.eq(ibus["adr"][:abits]), ibus["miso"].eq(i_rd.data)]

        # Data bus: RAM reads and byte-enabled writes, or the exit register.
        is_io = dbus["adr"][29]
        request = dbus["cyc"] & dbus["stb"] & ~dbus["ack"]
        m.d.sync += dbus["ack"].eq(request)
        m.d.comb += [
            d_rd.addr.eq(dbus["adr"][:abits]),
            dbus["miso"].eq(d_rd.data),
            d_wr.addr.eq(dbus["adr"][:abits]),
            d_wr.data.eq(dbus["mosi"]),
            d_wr.en.eq(Cat(*[request & dbus["we"] & ~is_io & dbus["sel"][i] for i in range(4)])),
        ]
        if self.loader:
            with m.If(self.dbg_we):
                m.d.comb += [d_wr.addr.eq(self.dbg_addr), d_wr.data.eq(self.dbg_wdata), d_wr.en.eq(0b1111)]
        with m.If(request & dbus["we"] & is_io):
            m.d.sync += [self.halted.eq(1), self.exit_code.eq(dbus["mosi"])]
        return m
