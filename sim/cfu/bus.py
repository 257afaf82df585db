"""Drive and watch CFU Playground's cmd/rsp interface in cocotb.

:class:`CfuBus` presents commands (with random gaps), answers with random
back-pressure, can pulse ``reset`` mid-stream, and checks the handshake rules
every cycle. :class:`CfuScoreboard` holds the golden model and compares every
response bit for bit, raising on the first mismatch with the op, its inputs,
the expected and actual values and the cycles.

Every cycle the bus writes its inputs just after the rising edge and samples
at ``ReadOnly``, so a handshake seen in cycle ``t`` is the one the RTL
registers at the edge ending cycle ``t``, on any simulator.
"""
import random
import time
from collections import deque

from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from reference.cfu_isa import Funct3, Reg, split_function_id
from reference.cfu import CfuModel
from reference.fixedpoint import sx

__all__ = ["CfuBus", "CfuScoreboard", "describe_command"]


def describe_command(fid, in0, in1):
    funct3, funct7 = split_function_id(fid)
    try:
        name = Funct3(funct3).name
    except ValueError:
        name = f"funct3={funct3}"
    if funct3 in (Funct3.SET, Funct3.GET) and funct7 < len(Reg):
        name += f" {Reg(funct7).name.lower()}"
    else:
        name += f" funct7={funct7}"
    return f"{name} in0=0x{in0:08x} ({sx(in0, 32)}) in1=0x{in1:08x} ({sx(in1, 32)})"


class CfuScoreboard:
    """In-order checker: each accepted command must get exactly its golden response."""

    def __init__(self, model=None):
        self.model = model or CfuModel()
        self.outstanding = deque()   # (index, command, expected, accept_cycle)
        self.responses = []          # (index, value, latency)
        self.accepted = 0
        self.dropped = 0             # discarded in flight by a reset

    def accept(self, command, cycle):
        expected = self.model.step(*command)
        self.outstanding.append((self.accepted, command, expected, cycle))
        self.accepted += 1

    def respond(self, value, cycle):
        if not self.outstanding:
            raise AssertionError(f"cycle {cycle}: response 0x{value:08x} with no command outstanding")
        index, command, expected, accepted_at = self.outstanding.popleft()
        if value != expected:
            raise AssertionError(
                f"command #{index} {describe_command(*command)}: expected 0x{expected:08x} "
                f"({sx(expected, 32)}), got 0x{value:08x} ({sx(value, 32)}); "
                f"accepted in cycle {accepted_at}, answered in cycle {cycle}")
        self.responses.append((index, value, cycle - accepted_at))

    def reset(self):
        """A reset discards every op in flight and restores the registers."""
        self.dropped += len(self.outstanding)
        self.outstanding.clear()
        self.model.reset()


class CfuBus:
    """Cycle-level driver and monitor of a ``Cfu`` (CFU Playground ports)."""

    #: Cycles with an op outstanding, rsp_ready high and no response (or a
    #: command presented, nothing waiting and cmd_ready low) before the unit
    #: counts as hung.
    HANG_LIMIT = 64

    def __init__(self, dut, rng=None):
        self.dut = dut
        self.rng = rng or random.Random(0)
        self.cycle = 0
        self.scoreboard = CfuScoreboard()
        self._clock_started = False

    async def start(self, reset_cycles=2):
        """Start the clock and apply a reset."""
        if not self._clock_started:
            Clock(self.dut.clk, 10, unit="ns").start()
            self._clock_started = True
        dut = self.dut
        dut.cmd_valid.value = 0
        dut.rsp_ready.value = 0
        dut.cmd_payload_function_id.value = 0
        dut.cmd_payload_inputs_0.value = 0
        dut.cmd_payload_inputs_1.value = 0
        dut.reset.value = 1
        for _ in range(reset_cycles):
            await RisingEdge(dut.clk)
        dut.reset.value = 0
        self.scoreboard.reset()

    async def run(self, commands, *, gap=0.0, backpressure=0.0, reset_cycles=(), drain=True):
        """Stream ``commands`` ((function_id, in0, in1) tuples) through the unit.

        ``gap``: probability of an idle cycle before presenting a command.
        ``backpressure``: probability that ``rsp_ready`` is low in a cycle.
        ``reset_cycles``: cycles, counted from this call, in which ``reset`` is high.
        Returns a dict of counts and timings.
        """
        dut, rng, sb = self.dut, self.rng, self.scoreboard
        clk = dut.clk
        cmd_valid, cmd_ready = dut.cmd_valid, dut.cmd_ready
        fid_h, in0_h, in1_h = dut.cmd_payload_function_id, dut.cmd_payload_inputs_0, dut.cmd_payload_inputs_1
        rsp_valid, rsp_ready, rsp_data = dut.rsp_valid, dut.rsp_ready, dut.rsp_payload_outputs_0
        reset = dut.reset

        pending = deque(commands)
        resets = {c for c in reset_cycles}
        current = None
        shown = None                 # command whose payload is on the bus
        ready_shown = None           # rsp_ready as last written
        waiting = None               # payload of a response not taken last cycle
        idle = refused = 0
        start_cycle, start_time = self.cycle, time.perf_counter()
        first_accept = last_accept = last_response = None
        local = 0

        last_reset = max(resets, default=0)
        while pending or current is not None or (drain and sb.outstanding) or local < last_reset:
            await RisingEdge(clk)
            local += 1
            self.cycle += 1
            in_reset = local in resets
            if in_reset or (local - 1) in resets:
                reset.value = int(in_reset)
            if current is None and pending and (gap == 0.0 or rng.random() >= gap):
                current = pending.popleft()
            if current is not shown:
                if current is not None:
                    fid_h.value, in0_h.value, in1_h.value = current
                cmd_valid.value = int(current is not None)
                shown = current
            ready = backpressure == 0.0 or rng.random() >= backpressure
            if ready != ready_shown:
                rsp_ready.value = int(ready)
                ready_shown = ready

            await ReadOnly()
            c_ready, r_valid = int(cmd_ready.value), int(rsp_valid.value)
            if in_reset:
                assert not c_ready and not r_valid, \
                    f"cycle {self.cycle}: cmd_ready={c_ready} rsp_valid={r_valid} during reset"
                sb.reset()
                waiting = None
                continue
            r_data = int(rsp_data.value) if r_valid else None
            if waiting is not None:
                assert r_valid and r_data == waiting, \
                    f"cycle {self.cycle}: a waiting response changed (0x{waiting:08x} -> {r_data}) or was withdrawn"
            if r_valid and not ready:
                assert not c_ready, f"cycle {self.cycle}: cmd_ready high while a response waits"
            if current is not None and not c_ready and not (r_valid and not ready):
                refused += 1
                assert refused < self.HANG_LIMIT, \
                    f"cycle {self.cycle}: cmd_ready low for {refused} cycles with no response waiting"
            else:
                refused = 0
            if current is not None and c_ready:
                sb.accept(current, self.cycle)
                first_accept = first_accept or self.cycle
                last_accept = self.cycle
                current = None
            if r_valid and ready:
                sb.respond(r_data, self.cycle)
                last_response = self.cycle
                idle = 0
            elif sb.outstanding and ready:
                idle += 1
                assert idle < self.HANG_LIMIT, \
                    f"cycle {self.cycle}: no response for {idle} cycles with {len(sb.outstanding)} outstanding"
            waiting = r_data if r_valid and not ready else None

        await RisingEdge(clk)
        cmd_valid.value = 0
        rsp_ready.value = 0
        reset.value = 0
        wall = time.perf_counter() - start_time
        cycles = self.cycle - start_cycle
        busy = (last_response - first_accept + 1) if first_accept and last_response else 0
        accept_span = (last_accept - first_accept + 1) if first_accept else 0
        return {"commands": len(commands), "cycles": cycles, "busy_cycles": busy, "accept_span": accept_span,
                "wall_seconds": wall, "cycles_per_second": cycles / wall if wall else None}
