"""Host side of ``TrainCore`` in cocotb: load the program and the initial
state once, then per step write the inputs and labels, start, wait, and read
back what is checked. Python acts only while data moves; the step itself
runs at the simulator's speed."""
import numpy as np
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from hdl.training.program import TARGET, PHASE, pack_op
from reference.gemm_layout import pack_operand, unpack_operand, unpack_results, int_to_lanes

__all__ = ["TrainDriver", "Mismatch"]


class Mismatch(AssertionError):
    """The RTL and the golden model disagree: the first differing element."""


class TrainDriver:
    def __init__(self, dut, plan):
        self.dut, self.plan = dut, plan
        self.R = plan.geometry.rows

    @property
    def cycle(self):
        """The current clock cycle of the run (the clock period is 10 ns)."""
        return int(get_sim_time("ns")) // 10

    async def start(self):
        dut = self.dut
        Clock(dut.clk, 10, unit="ns").start()
        for name in ("start", "lr", "prog_wr_en", "prog_wr_addr", "prog_wr_data", "wr_en", "wr_target", "wr_addr",
                     "wr_data", "rd_en", "rd_target", "rd_addr"):
            getattr(dut, name).value = 0
        await RisingEdge(dut.clk)
        dut.rst.value = 1
        await RisingEdge(dut.clk)
        await RisingEdge(dut.clk)
        dut.rst.value = 0

    # Transfers change the inputs at falling edges and sample the outputs
    # there too: one trigger a cycle, and nothing races the rising edge.

    async def load_program(self, ops=None):
        dut = self.dut
        for addr, op in enumerate(self.plan.ops if ops is None else ops):
            await FallingEdge(dut.clk)
            dut.prog_wr_en.value, dut.prog_wr_addr.value, dut.prog_wr_data.value = 1, addr, pack_op(op)
        await FallingEdge(dut.clk)
        dut.prog_wr_en.value = 0

    def _pack(self, words):
        """Words (rows of R lane values) as the integers ``wr_data`` takes, lane 0 lowest."""
        words = np.asarray(words, dtype=np.int64).reshape(-1, self.R) & 0xFFFFFFFF
        return [sum(int(v) << (32 * e) for e, v in enumerate(row)) for row in words.tolist()]

    async def write_words(self, target, base, words, addrs=None):
        """Words to consecutive addresses from ``base`` (or to ``addrs``), one a cycle."""
        dut = self.dut
        edge = FallingEdge(dut.clk)
        values = self._pack(words)
        addrs = range(base, base + len(values)) if addrs is None else addrs
        await edge
        dut.wr_en.value, dut.wr_target.value = 1, TARGET[target]
        addr, data = dut.wr_addr, dut.wr_data
        for i, (a, value) in enumerate(zip(addrs, values)):
            if i:
                await edge
            addr.value = a
            data.value = value
        await edge
        dut.wr_en.value = 0

    async def read_words(self, target, base, count):
        dut = self.dut
        edge = FallingEdge(dut.clk)
        raw = []
        await edge
        dut.rd_en.value, dut.rd_target.value = 1, TARGET[target]
        addr, data = dut.rd_addr, dut.rd_data
        for i in range(count + 1):
            if i:
                await edge
                raw.append(int(data.value))
            if i < count:
                addr.value = base + i
        dut.rd_en.value = 0
        return np.array([int_to_lanes(v, self.R, 32) for v in raw], dtype=np.int64).reshape(count, self.R)

    # -- tensors, by the plan's regions ------------------------------------

    def _region(self, name):
        return self.plan.regions[name]

    async def write_matrix(self, name, mat):
        """A matrix into its region: operand layout for A/B, row-major words elsewhere."""
        reg = self._region(name)
        mat = np.asarray(mat, dtype=np.int64)
        if reg.space in ("a", "b"):
            words, stride = pack_operand(mat, self.R)
            assert stride == reg.stride
        else:
            padded = np.pad(mat, ((0, 0), (0, reg.stride * self.R - mat.shape[1])))
            words = padded.reshape(-1, self.R)
        await self.write_words(reg.space, reg.base, words)

    async def read_matrix(self, name, rows=None, cols=None):
        reg = self._region(name)
        rows, cols = rows or reg.rows, cols or reg.cols
        words = await self.read_words(reg.space, reg.base, reg.rows * reg.stride)
        if reg.space in ("a", "b"):
            return unpack_operand(words, reg.rows, reg.cols, self.R)[:rows, :cols]
        if reg.space == "results":
            return unpack_results(words, reg.rows, reg.cols, self.R)[:rows, :cols]
        return words.reshape(reg.rows, reg.stride * self.R)[:rows, :cols]

    async def load_state(self, state):
        """The initial masters, zero momenta and biases, and the int8 weights the first GEMMs read."""
        for l in range(len(state.w_master)):
            await self.write_matrix(f"w{l}_master", state.w_master[l])
            await self.write_matrix(f"b{l}_master", state.b_master[l][None, :])
            reg = self._region(f"m{l}")
            await self.write_words("mmem", reg.base, np.zeros((reg.rows * reg.stride, self.R), dtype=np.int64))
            await self.write_matrix(f"w{l}", state.weights8(l))
        reg = self._region("x0")
        await self.write_inputs(np.zeros((reg.rows, reg.cols - 1), dtype=np.int64), ones_too=True)

    async def write_labels(self, labels):
        """The batch's labels, R to a word."""
        labels = np.asarray(labels, dtype=np.int64)
        await self.write_words("labels", 0, np.pad(labels, (0, (-len(labels)) % self.R)).reshape(-1, self.R))

    async def write_inputs(self, x8, ones_too=False):
        """A batch's pixels into region x0. The ones column's own word (when the
        pixels fill whole words) never changes: it is written only with ``ones_too``."""
        reg = self._region("x0")
        x = np.hstack([np.asarray(x8, dtype=np.int64), np.ones((len(x8), 1), dtype=np.int64)])
        words, _ = pack_operand(x, self.R)
        keep = [r * reg.stride + w for r in range(len(x)) for w in range(reg.stride)
                if ones_too or w * self.R < x.shape[1] - 1]
        await self.write_words("a", 0, words[keep], addrs=[reg.base + i for i in keep])

    async def begin_step(self, x8, labels, lr_q):
        """Load a batch and start a step; returns in the cycle after ``start``."""
        dut = self.dut
        await self.write_inputs(x8)
        await self.write_labels(labels)
        await FallingEdge(dut.clk)
        dut.lr.value, dut.start.value = lr_q, 1
        await FallingEdge(dut.clk)
        dut.start.value = 0

    async def step(self, x8, labels, lr_q):
        """One training step; returns its cycle counters."""
        dut = self.dut
        await self.begin_step(x8, labels, lr_q)
        await FallingEdge(dut.busy)
        await ReadOnly()
        if int(dut.error.value):
            raise Mismatch("the training core stopped on an op it cannot run (error is set)")
        lanes = lambda sig: int_to_lanes(int(sig.value), len(PHASE), 32)
        to_u = lambda v: v & 0xFFFFFFFF
        return {"cycles": [to_u(v) for v in lanes(dut.cnt_cycles)],
                "gemm": [to_u(v) for v in lanes(dut.cnt_gemm)],
                "active": [to_u(v) for v in lanes(dut.cnt_active)]}

    async def check(self, step_no, golden, full=False):
        """Compare the RTL's state (and with ``full`` every kept tensor) with the golden step."""
        L = len(self.plan.layers) - 1
        checks = []
        for l in range(L):
            checks += [(l, "w_new", f"w{l}_master", golden["w_new"][l]),
                       (l, "b_new", f"b{l}_master", golden["b_new"][l])]
        if full:
            for l in range(L):
                checks += [(l, "x", f"x{l}", golden["x"][l]), (l, "y", f"y{l}", golden["y"][l]),
                           (l, "dy", f"dy{l}", golden["dy"][l]), (l, "dw", f"dw{l}", golden["dw"][l]),
                           (l, "db", f"dw{l}", golden["db"][l]), (l, "w_new (int8)", f"w{l}", golden["w_new8"][l]),
                           (l, "momentum", f"m{l}", golden["momentum_new"][l])]
                if l:
                    checks.append((l, "dx", f"dx{l}", golden["dx"][l]))
        for l, tensor, region, want in checks:
            want = np.asarray(want, dtype=np.int64)
            if want.ndim == 1:            # a bias: the last row of its region
                got = (await self.read_matrix(region))[-1, :want.shape[0]]
            else:
                got = await self.read_matrix(region, *want.shape)
            if not np.array_equal(got, want):
                idx = tuple(int(i) for i in np.argwhere(got != want)[0])
                raise Mismatch(f"step {step_no}, layer {l}, tensor {tensor}, index {idx}: "
                               f"expected {int(want[idx])}, got {int(got[idx])}")
