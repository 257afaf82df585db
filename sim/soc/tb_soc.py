"""cocotb test of the VexRiscv + CFU SoC running the digits-MLP firmware.

Python starts the clock, releases reset and waits for ``halted``: the CPU
runs at the simulator's own speed. Then it reads each way's hidden and
output activations and the firmware's ``stats`` out of RAM through the debug
port, and compares every activation with the golden model
(:func:`reference.tflm.fully_connected`, layer by layer).

Environment: ``SOC_IMAGES`` (the batch), ``SOC_COLD`` (1: the firmware was built to
time a first inference, weights not cached), ``SOC_SYMBOLS`` (JSON: symbol -> address).
"""

import json
import os
import time

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from reference.tflm import fully_connected
from sim.common import cycle_now, edge, read_words, reset, start_clock
from sim.results import env_int, record, record_mismatch
from sim.soc.firmware import STATS, WAYS, firmware_mlp


async def read_ram(dut, address, count):
    """``count`` 32-bit words of RAM from byte ``address`` on, through the debug port (a sync read)."""
    return await read_words(dut.clk, None, dut.dbg_addr, dut.dbg_data, range(address >> 2, (address >> 2) + count))


async def read_int8(dut, address, count):
    words = await read_ram(dut, address & ~3, (count + (address & 3) + 3) // 4)
    data = b"".join(w.to_bytes(4, "little") for w in words)[address & 3 :][:count]
    return np.frombuffer(data, dtype=np.int8).astype(np.int64)


@cocotb.test(timeout_time=4000, timeout_unit="ms")
async def firmware(dut):
    images = env_int("SOC_IMAGES", 8)
    symbols = json.loads(os.environ["SOC_SYMBOLS"])
    (p1, p2), x = firmware_mlp(images)
    hidden = fully_connected(x, p1)
    expected = {"hid": hidden, "out": fully_connected(hidden, p2)}

    start_clock(dut.clk)
    await reset(dut.clk, dut.rst, cycles=5, zero=(dut.dbg_addr,))
    start, t0 = cycle_now(), time.perf_counter()
    await RisingEdge(dut.halted)
    wall = time.perf_counter() - t0
    run_cycles = cycle_now() - start
    await edge(dut.clk)
    exit_code = int(dut.exit_code.value)

    mismatches = []
    for way in WAYS:
        for layer, want in expected.items():
            got = (await read_int8(dut, symbols[f"{layer}_{way}"], want.size)).reshape(want.shape)
            bad = np.argwhere(got != want)
            if len(bad):
                s, o = bad[0]
                mismatches.append(
                    f"{way} {'hidden' if layer == 'hid' else 'output'} [{s}, {o}]: expected {want[s, o]}, "
                    f"got {got[s, o]} ({len(bad)} differ)"
                )
    stats = dict(zip(STATS, await read_ram(dut, symbols["stats"], len(STATS))))
    record(
        soc={
            "images": images,
            "weights_cached": not env_int("SOC_COLD", 0),
            "exit_code": exit_code,
            "bit_exact": not mismatches and exit_code == 0,
            "mismatches": mismatches,
            **stats,
            "run_cycles": run_cycles,
            "sim_cycles_per_second": run_cycles / wall if wall else None,
            "macs": int(images * (p1.filter.size + p2.filter.size)),
            "shapes": [list(p1.filter.shape), list(p2.filter.shape)],
        }
    )
    if mismatches or exit_code:
        record_mismatch(
            "soc",
            f"firmware, {images} images",
            "; ".join(mismatches) or f"the firmware's own check failed: it exited with 0x{exit_code:08x}",
        )
