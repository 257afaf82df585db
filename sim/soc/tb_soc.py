"""cocotb test of the VexRiscv + CFU SoC running the FC-layer firmware.

Python starts the clock, releases reset and waits for ``halted``: the CPU
runs at the simulator's own speed. Then it reads the firmware's outputs and
counters out of RAM through the debug port and compares every output with
the golden model (:func:`reference.tflm.fully_connected`).

Environment: ``SOC_SAMPLES`` (images), ``SOC_SYMBOLS`` (JSON: symbol -> address).
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
from sim.soc.firmware import firmware_layer


async def read_ram(dut, address, count):
    """``count`` 32-bit words of RAM from byte ``address`` on, through the debug port (a sync read)."""
    return await read_words(dut.clk, None, dut.dbg_addr, dut.dbg_data, range(address >> 2, (address >> 2) + count))


async def read_int8(dut, address, count):
    words = await read_ram(dut, address & ~3, (count + (address & 3) + 3) // 4)
    data = b"".join(w.to_bytes(4, "little") for w in words)[address & 3 :][:count]
    return np.frombuffer(data, dtype=np.int8).astype(np.int64)


@cocotb.test(timeout_time=2000, timeout_unit="ms")
async def firmware(dut):
    samples = env_int("SOC_SAMPLES", 2)
    symbols = json.loads(os.environ["SOC_SYMBOLS"])
    p, x = firmware_layer(samples)
    expected = fully_connected(x, p)
    n_out = p.filter.shape[0]

    start_clock(dut.clk)
    await reset(dut.clk, dut.rst, cycles=5, zero=(dut.dbg_addr,))
    start, t0 = cycle_now(), time.perf_counter()
    await RisingEdge(dut.halted)
    wall = time.perf_counter() - t0
    run_cycles = cycle_now() - start
    await edge(dut.clk)
    exit_code = int(dut.exit_code.value)

    out_sw = (await read_int8(dut, symbols["out_sw"], samples * n_out)).reshape(samples, n_out)
    out_cfu = (await read_int8(dut, symbols["out_cfu"], samples * n_out)).reshape(samples, n_out)
    sw_cycles, cfu_cycles, sw_instret, cfu_instret = await read_ram(dut, symbols["stats"], 4)
    mismatches = []
    for name, got in (("software", out_sw), ("cfu", out_cfu)):
        bad = np.argwhere(got != expected)
        if len(bad):
            s, o = bad[0]
            mismatches.append(
                f"{name} output [{s}, {o}]: expected {expected[s, o]}, got {got[s, o]} ({len(bad)} differ)"
            )
    record(
        soc={
            "samples": samples,
            "exit_code": exit_code,
            "bit_exact": not mismatches and exit_code == 0,
            "mismatches": mismatches,
            "software_cycles": sw_cycles,
            "cfu_cycles": cfu_cycles,
            "software_instructions": sw_instret,
            "cfu_instructions": cfu_instret,
            "run_cycles": run_cycles,
            "sim_cycles_per_second": run_cycles / wall if wall else None,
            "macs": int(samples * p.filter.size),
        }
    )
    if mismatches or exit_code:
        record_mismatch(
            "soc",
            f"firmware, {samples} samples",
            "; ".join(mismatches) or f"the firmware's own check failed: it exited with 0x{exit_code:08x}",
        )
