"""The RTL engines of ``infer``, inside cocotb: each runs one accelerated layer
(:class:`reference.tflite_model.kernels.GemmLayer`) on its design and returns
the int8 outputs with what it measured.

* :class:`CfuEngine`: the layer as MAC4/POST instructions
  (:func:`sim.cfu.workload.layer_commands`) through ``Cfu``, on
  :class:`sim.cfu.bus.CfuBus`, whose scoreboard also checks every response
  against the CFU's golden model as it arrives.
* :class:`GemmArrayEngine`: the layer's ``A·Wᵀ`` on ``GemmEngine`` (mode nt:
  the filter is stored as TFLM lays it out), tiled to fit the buffers, through
  :class:`sim.systolic.driver.GemmDriver`; the output stage in NumPy as TFLM
  defines it. Each tile's busy cycles are checked against the cycle model.
"""

import time

import numpy as np

from reference.gemm import gemm_cycles
from reference.gemm_layout import operand_words, result_words
from sim.cfu.bus import CfuBus
from sim.cfu.workload import layer_commands
from sim.systolic.driver import GemmDriver, GemmJob

__all__ = ["CfuEngine", "GemmArrayEngine", "gemm_tiles", "make_engine"]


class CfuEngine:
    name = "cfu"
    macs_per_cycle = 4

    def __init__(self, dut):
        self.bus = CfuBus(dut)

    async def start(self):
        await self.bus.start()

    async def gemm(self, layer):
        commands, post_indices = layer_commands(layer)
        done = len(self.bus.scoreboard.responses)
        t0 = time.perf_counter()
        stats = await self.bus.run(commands)
        values = {i - done: v for i, v, _ in self.bus.scoreboard.responses[done:]}
        y = np.array([[values[i] for i in row] for row in post_indices], dtype=np.int64).reshape(post_indices.shape)
        y = np.where(y >= 1 << 31, y - (1 << 32), y)
        cycles = stats["busy_cycles"]
        return y, {
            "engine": self.name,
            "cycles": cycles,
            "utilization": layer.macs / (self.macs_per_cycle * cycles) if cycles else None,
            "instructions": len(commands),
            "wall_seconds": time.perf_counter() - t0,
        }


def gemm_tiles(M, K, N, geometry):
    """``[(m0, m1), (k0, k1), (n0, n1)]`` blocks of an M×K by K×N (mode nt) GEMM that each fit one
    half of the engine's buffers (and its 16-bit dimensions); K blocks are summed by the host."""
    R, C = geometry.rows, geometry.cols
    depth, rdepth = geometry.operand_depth, geometry.result_depth
    kc = min(K, R * depth, 65535)
    kw = -(-kc // R)
    nc = min(N, depth // kw, C * rdepth, 65535)
    mc = min(M, depth // kw, rdepth // -(-nc // C), 65535)
    return [
        ((m0, min(m0 + mc, M)), (k0, min(k0 + kc, K)), (n0, min(n0 + nc, N)))
        for k0 in range(0, K, kc)
        for n0 in range(0, N, nc)
        for m0 in range(0, M, mc)
    ]


class GemmArrayEngine:
    name = "gemm"

    def __init__(self, dut, geometry):
        self.geometry = geometry
        self.macs_per_cycle = geometry.rows * geometry.cols
        self.drv = GemmDriver(dut, geometry)

    async def start(self):
        await self.drv.start()

    async def gemm(self, layer):
        g, drv = self.geometry, self.drv
        M, K, N = layer.shape
        raw = np.zeros((M, N), dtype=np.int64)
        cycles = model = transfers = 0
        tiles = gemm_tiles(M, K, N, g)
        t0 = time.perf_counter()
        for (m0, m1), (k0, k1), (n0, n1) in tiles:
            job = GemmJob(layer.a[m0:m1, k0:k1], layer.filter[n0:n1, k0:k1], "nt", 0)
            await drv.load(job)
            await drv.issue(job)
            counters = await drv.wait_done()
            raw[m0:m1, n0:n1] += await drv.read_results(job)
            expected = gemm_cycles(g.rows, g.cols, job.M, job.K, job.N, "nt")
            assert counters["cycles"] == expected, (
                f"operator {layer.op.index}: tile {job.M}x{job.K}x{job.N} took {counters['cycles']} cycles, "
                f"the cycle model says {expected}"
            )
            cycles += counters["cycles"]
            model += expected
            transfers += (
                operand_words(*job.a.shape, g.rows)
                + operand_words(*job.b.shape, g.rows)
                + result_words(job.M, job.N, g.cols)
            )
        y = layer.output_stage(layer.accumulators(raw))
        return y, {
            "engine": self.name,
            "cycles": cycles,
            "model_cycles": model,
            "utilization": layer.macs / (self.macs_per_cycle * cycles) if cycles else None,
            "tiles": len(tiles),
            "transfer_words": transfers,
            "wall_seconds": time.perf_counter() - t0,
        }


def make_engine(name, dut, params):
    if name == "cfu":
        return CfuEngine(dut)
    if name == "gemm":
        from hdl.systolic import GemmEngine

        return GemmArrayEngine(dut, GemmEngine.geometry(**params))
    raise ValueError(f"no RTL engine {name!r}")
