"""Host side of ``TrainCore`` in cocotb: load the program and the initial
state once, then per step write the inputs and labels, start, wait, and read
back what is checked. Python acts only while data moves; the step itself
runs at the simulator's speed."""

import os

import numpy as np
from amaranth.lib.wiring import In
from cocotb.triggers import FallingEdge, ReadOnly, SimTimeoutError, with_timeout  # FallingEdge(busy): the step's end

from hdl.training.core import TrainCore
from hdl.training.program import Target, pack_op, step_cycles
from reference.gemm_layout import pack_operand, unpack_operand, unpack_results
from sim.common import (
    PERIOD_NS,
    Mismatch,
    cycle_now,
    edge,
    pack_value,
    pack_words,
    read_words,
    reset,
    start_clock,
    unpack_words,
    write_words,
)

__all__ = ["TrainDriver", "Mismatch"]


class TrainDriver:
    def __init__(self, dut, plan):
        self.dut, self.plan = dut, plan
        self.R = plan.geometry.rows
        # The lanes of the host port and the counters, and which ports are inputs, as the core declares them.
        members = TrainCore(**plan.geometry.params).signature.members
        self.ports = {name: member.shape for name, member in members.items() if member.is_port}
        self.inputs = [name for name, member in members.items() if member.is_port and member.flow == In]
        # In sim/runner.py's clocked top the clock runs by itself and every input reaches the core a cycle later.
        self.clocked_top = bool(os.environ.get("SIM_CLOCKED_TOP"))

    @property
    def cycle(self):
        """The current clock cycle of the run."""
        return cycle_now()

    async def start(self):
        dut = self.dut
        if not self.clocked_top:
            start_clock(dut.clk)
        # The harness's own host inputs too (a request left in ``go`` would run again after the reset).
        extra = [getattr(dut, name) for name in ("go", "ld_en") if hasattr(dut, name)]
        await reset(dut.clk, dut.rst, zero=[getattr(dut, name) for name in self.inputs] + extra)

    # Transfers change the inputs at falling edges and sample the outputs
    # there too (sim.common's convention): one trigger a cycle.

    async def load_program(self, ops=None):
        """The plan's program (or ``ops``: op dicts, or already packed words) into the program memory."""
        ops = self.plan.ops if ops is None else ops
        dut = self.dut
        await write_words(
            dut.clk,
            dut.prog_wr_en,
            dut.prog_wr_addr,
            dut.prog_wr_data,
            [op if isinstance(op, int) else pack_op(op) for op in ops],
            range(len(ops)),
        )

    async def write_words(self, target, base, words, addrs=None):
        """Words (rows of R lane values) to consecutive addresses from ``base`` (or to ``addrs``), one a cycle."""
        dut = self.dut
        values = pack_words(self.ports["wr_data"], words)
        addrs = range(base, base + len(values)) if addrs is None else addrs
        await write_words(
            dut.clk,
            dut.wr_en,
            dut.wr_addr,
            dut.wr_data,
            values,
            addrs,
            setup=[(dut.wr_target, Target[target.upper()].value)],
        )

    async def read_words(self, target, base, count):
        """``count`` words from ``base`` as rows of R lane values, one a cycle."""
        dut = self.dut
        raw = await read_words(
            dut.clk,
            dut.rd_en,
            dut.rd_addr,
            dut.rd_data,
            range(base, base + count),
            setup=[(dut.rd_target, Target[target.upper()].value)],
            latency=2 if self.clocked_top else 1,
        )
        return unpack_words(self.ports["rd_data"], raw)

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
        keep = [
            r * reg.stride + w
            for r in range(len(x))
            for w in range(reg.stride)
            if ones_too or w * self.R < x.shape[1] - 1
        ]
        await self.write_words("a", 0, words[keep], addrs=[reg.base + i for i in keep])

    async def begin_step(self, x8, labels, lr_q):
        """Load a batch and start a step; returns in the cycle after ``start``."""
        await self.write_inputs(x8)
        await self.write_labels(labels)
        await self.start_step(lr_q)

    async def start_step(self, lr_q):
        """Start a step on what the memories hold; returns in the cycle after ``start``."""
        dut = self.dut
        await edge(dut.clk)
        dut.lr.value, dut.start.value = lr_q, 1
        await edge(dut.clk)
        dut.start.value = 0

    async def step(self, x8, labels, lr_q):
        """One training step; returns its cycle counters."""
        dut = self.dut
        await self.begin_step(x8, labels, lr_q)
        await FallingEdge(dut.busy)
        await ReadOnly()
        self.check_error()
        counters = self.counters()
        # They count busy cycles only: idle, they hold (read again in the next cycle).
        await FallingEdge(dut.clk)  # still this cycle: busy fell at its rising edge
        await FallingEdge(dut.clk)
        again = self.counters()
        if again != counters:
            key = next(k for k in counters if counters[k] != again[k])
            raise Mismatch(
                design="train",
                tensor=f"cnt_{key} a cycle after the step (idle counters hold)",
                expected=counters[key],
                got=again[key],
                cycle=self.cycle,
            )
        return counters

    def check_error(self):
        """Raise if the core stopped its step on an op it cannot run (``error``)."""
        if int(self.dut.error.value):
            raise Mismatch(
                design="train",
                tensor="error (the core stopped on an op it cannot run)",
                expected=0,
                got=1,
                cycle=self.cycle,
            )

    def counters(self):
        """The per-phase counters as the core shows them now: ``{"cycles" | "gemm" | "active": [by phase]}``."""
        dut = self.dut
        return {
            key: [int(v) for v in unpack_words(self.ports[f"cnt_{key}"], [int(getattr(dut, f"cnt_{key}").value)])[0]]
            for key in ("cycles", "gemm", "active")
        }

    async def check(self, step_no, golden, full=False):
        """Compare the RTL's state (and with ``full`` every kept tensor) with the golden step."""
        L = len(self.plan.layers) - 1
        checks = []
        for l in range(L):
            checks += [
                (l, "w_new", f"w{l}_master", golden["w_new"][l]),
                (l, "b_new", f"b{l}_master", golden["b_new"][l]),
            ]
        if full:
            for l in range(L):
                checks += [
                    (l, "x", f"x{l}", golden["x"][l]),
                    (l, "y", f"y{l}", golden["y"][l]),
                    (l, "dy", f"dy{l}", golden["dy"][l]),
                    (l, "dw", f"dw{l}", golden["dw"][l]),
                    (l, "db", f"dw{l}", golden["db"][l]),
                    (l, "w_new (int8)", f"w{l}", golden["w_new8"][l]),
                    (l, "momentum", f"m{l}", golden["momentum_new"][l]),
                ]
                if l:
                    checks.append((l, "dx", f"dx{l}", golden["dx"][l]))
        for l, tensor, region, want in checks:
            want = np.asarray(want, dtype=np.int64)
            if want.ndim == 1:  # a bias: the last row of its region
                got = (await self.read_matrix(region))[-1, : want.shape[0]]
            else:
                got = await self.read_matrix(region, *want.shape)
            if not np.array_equal(got, want):
                idx = tuple(int(i) for i in np.argwhere(got != want)[0])
                raise Mismatch(
                    design="train",
                    step=step_no,
                    layer=l,
                    tensor=tensor,
                    index=idx,
                    expected=int(want[idx]),
                    got=int(got[idx]),
                    cycle=self.cycle,
                )


#: The golden tensor a checked region's first letter names.
CHECKED = {"w": "w_new", "b": "b_new"}


class HarnessHost:
    """The host :class:`hdl.training.harness.TrainHarness` has in hardware, driven from here: the data
    set loaded once, then per step the batch's sample numbers, ``go``, and the wait for ``taken``; the
    state the step leaves comes back as one signature (:mod:`reference.signature`) of the masters'
    words, which :func:`sim.training.golden_worker.expected_signature` computes from the golden step
    over :meth:`spec`'s regions."""

    def __init__(self, drv, checked):
        """``checked``: the regions whose words the signature folds, in order."""
        from amaranth.lib import data

        from hdl.training.harness import PIXELS, RANGE, sample_layout

        self.drv, self.dut, self.R = drv, drv.dut, drv.R
        self.regions = [(name, drv.plan.regions[name]) for name in checked]
        self.seq = 0
        # A step's cycles at most: the step's own (exact, docs/training.md), the batch moved in a sample at a
        # time, the words read back; four times that before the bench gives up on a harness that hangs.
        plan = drv.plan
        moved = plan.batch * (PIXELS // self.R + 2) + sum(reg.rows * reg.stride + 1 for _, reg in self.regions)
        self.budget = 4 * (step_cycles(plan) + moved) + 100
        ranges = [
            {"target": Target[reg.space.upper()], "base": reg.base, "count": reg.rows * reg.stride}
            for _, reg in self.regions
        ]
        n = len(self.dut.ranges.value) // RANGE.size
        if len(ranges) > n:
            raise ValueError(f"the harness reads back at most {n} ranges, not {len(ranges)}")
        empty = {"target": Target.A, "base": 0, "count": 0}
        self._ranges = pack_value(data.ArrayLayout(RANGE, n), ranges + [empty] * (n - len(ranges)))
        self._label_at = sample_layout(plan.geometry.classes)["label"].offset

    async def load(self, x8, labels):
        """The data set: sample i's 64 int8 pixels and its label at word i."""
        dut = self.dut
        x8 = np.asarray(x8, dtype=np.int64)
        if len(x8) > 1 << len(dut.ld_addr.value):
            raise ValueError(f"the harness holds {1 << len(dut.ld_addr.value)} samples, not {len(x8)}")
        pixels = (x8 & 0xFF).astype(np.uint8)
        at = self._label_at  # sample_layout: the pixels in the low bits, pixel j in bits 8j..8j+7
        values = [int.from_bytes(p.tobytes(), "little") | int(y) << at for p, y in zip(pixels, labels)]
        await write_words(dut.clk, dut.ld_en, dut.ld_addr, dut.ld_data, values, range(len(values)))
        reg = self.drv.plan.regions["x0"]
        dut.x_base.value, dut.x_stride.value = reg.base, reg.stride
        dut.n_ranges.value, dut.ranges.value = len(self.regions), self._ranges

    async def step(self, idx, lr_q):
        """One step on the samples ``idx`` (moved in by the harness); returns the core's counters."""
        dut = self.dut
        width = len(dut.ld_addr.value)
        dut.indices.value = sum(int(s) << (width * i) for i, s in enumerate(idx))
        dut.batch.value = len(idx)
        dut.lr.value = lr_q
        self.seq = (self.seq + 1) & 0xFF
        dut.go.value = self.seq
        deadline = cycle_now() + self.budget
        while int(dut.taken.value) != self.seq:
            try:
                await with_timeout(dut.taken.value_change, max(1, deadline - cycle_now()) * PERIOD_NS, "ns")
            except SimTimeoutError:
                raise Mismatch(
                    design="train",
                    tensor=f"taken (the harness had not finished the step after {self.budget} cycles)",
                    expected=self.seq,
                    got=int(dut.taken.value),
                    cycle=self.drv.cycle,
                ) from None
        self.drv.check_error()
        return self.drv.counters()

    def signature(self):
        """The signature the harness folded over the checked regions after the last step."""
        return int(self.dut.misr.value)

    def spec(self):
        """The checked regions for :mod:`sim.training.golden_worker`: ``(tensor, layer, rows, stride)``."""
        return [(CHECKED[name[0]], int(name[1:].split("_")[0]), reg.rows, reg.stride) for name, reg in self.regions]
