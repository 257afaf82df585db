"""Drive and watch CFU Playground's cmd/rsp interface in cocotb.

:class:`CfuBus` is built on :mod:`sim.common`: the command side is a
:class:`~sim.common.StreamSource` (random gaps), the response side a
:class:`~sim.common.StreamSink` (random back-pressure), and
:class:`CfuScoreboard` an :class:`~sim.common.InOrderScoreboard` holding the
golden model, which compares every response bit for bit and raises
:class:`~sim.common.Mismatch` on the first difference, naming the op, its
inputs, the expected and actual values and the cycles. The bus can pulse
``reset`` mid-stream and checks the handshake rules every cycle.

Sampling follows :mod:`sim.common`: inputs change at the falling edge and
the handshakes are sampled at ``ReadOnly`` after it (``cmd_ready`` depends on
this cycle's ``rsp_ready``), so a handshake seen in cycle ``t`` is the one
the RTL registers at the rising edge ending cycle ``t``, on any simulator.
"""

import functools
import itertools
import random
import time

from cocotb.triggers import ReadOnly

from reference.cfu import CfuModel
from reference.cfu_isa import Funct3, Reg, split_function_id
from reference.fixedpoint import sx
from sim.common import InOrderScoreboard, StreamSink, StreamSource, cycle_now, edge, pauses, reset, start_clock

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


def _word(value):
    return f"0x{value:08x} ({sx(value, 32)})"


def _where(index, command, accepted_at):
    return f"command #{index} {describe_command(*command)}, accepted in cycle {accepted_at}, answered"


class CfuScoreboard(InOrderScoreboard):
    """In-order checker: each accepted command must get exactly its golden response.

    ``responses`` lists ``(index, value, latency)`` of every checked
    response, ``index`` counting accepted commands; ``dropped`` counts ops a
    reset discarded in flight."""

    def __init__(self, model=None):
        super().__init__("cfu", describe=_word)
        self.model = model or CfuModel()
        self.responses = []
        self.accepted = 0

    def accept(self, command, cycle):
        expected = self.model.step(*command)
        # The op is named only if it mismatches: formatting every command would slow the bench.
        self.expect(expected, where=functools.partial(_where, self.accepted, command, cycle), cycle=cycle)
        self.accepted += 1

    def respond(self, value, cycle):
        index = self.checked + self.dropped  # a reset drops every op in flight, so this is the oldest
        self.observe(value, cycle)
        self.responses.append((index, value, self.latencies[-1]))

    def reset(self, cycle=None):
        """A reset (high in ``cycle``) discards every op in flight and restores the registers."""
        self.flush()
        self.model.reset()


def _pattern(p, rng):
    """Pauses drawn with probability ``p``, or the booleans of a list and then none."""
    if isinstance(p, (int, float)):
        return pauses(p, rng)
    return itertools.chain(p, itertools.repeat(False))


class CfuBus:
    """Cycle-level driver and monitor of a ``Cfu`` (CFU Playground ports)."""

    #: Cycles with an op outstanding, rsp_ready high and no response (or a
    #: command presented, nothing waiting and cmd_ready low) before the unit
    #: counts as hung.
    HANG_LIMIT = 64

    def __init__(self, dut, rng=None, scoreboard=None, coverage=None):
        """``coverage``: a :class:`sim.cfu.coverage.CfuCoverage` to sample, or None."""
        self.dut = dut
        self.coverage = coverage
        # Gaps and back-pressure draw from this one stream, in that order, each cycle.
        self.rng = rng or random.Random(0)
        self.cycle = 0
        self.scoreboard = scoreboard or CfuScoreboard()
        self._clock_started = False
        self.source = self.sink = None

    async def start(self, reset_cycles=2):
        """Start the clock and apply a reset; returns at a falling edge."""
        dut = self.dut
        if not self._clock_started:
            start_clock(dut.clk)
            self._clock_started = True
        payload = (dut.cmd_payload_function_id, dut.cmd_payload_inputs_0, dut.cmd_payload_inputs_1)
        await reset(dut.clk, dut.reset, reset_cycles, zero=(dut.cmd_valid, dut.rsp_ready) + payload)
        # Fresh ones: what they last drove is what the reset zeroed.
        self.source = StreamSource(dut.cmd_valid, dut.cmd_ready, payload)
        self.sink = StreamSink(dut.rsp_valid, dut.rsp_ready, dut.rsp_payload_outputs_0, name="response")
        self.cycle = cycle_now()
        self.scoreboard.reset(self.cycle)
        if self.coverage:
            self.coverage.clear()

    async def run(self, commands, *, gap=0.0, backpressure=0.0, reset_cycles=(), drain=True):
        """Stream ``commands`` ((function_id, in0, in1) tuples) through the unit.

        ``gap``: probability of an idle cycle before presenting a command, or a list of booleans, one
        drawn each time a command is next to go (True: an idle cycle first; none after the list).
        ``backpressure``: probability that ``rsp_ready`` is low in a cycle, or a list of booleans, one
        a cycle from this call's first (True: low; high after the list).
        ``reset_cycles``: cycles, counted from this call, in which ``reset`` is high.
        Returns a dict of counts and timings: ``cycles`` (clock cycles the
        call stepped, not counting the one it ends on), ``busy_cycles``
        (first accept to last response, both included), ``accept_span``
        (first to last accept, both included), ``wall_seconds`` and
        ``cycles_per_second``.
        """
        dut, sb, src, snk, cov = self.dut, self.scoreboard, self.source, self.sink, self.coverage
        fall, read_only = edge(dut.clk), ReadOnly()
        reset_h = dut.reset
        src.pause = _pattern(gap, self.rng)
        snk.pause = _pattern(backpressure, self.rng)
        src.send(commands)

        resets = set(reset_cycles)
        refused = idle = 0
        start_time = time.perf_counter()
        first_accept = last_accept = last_response = None
        local = 0
        # For the coverage: cycles the response has waited, cmd_valid low before the next command,
        # a command still presented from the cycle before, a response waiting in the cycle before.
        waited = idle_run = 0
        holding = blocked = False

        last_reset = max(resets, default=0)
        while not src.idle or (drain and sb.outstanding) or local < last_reset:
            await fall
            local += 1
            self.cycle += 1
            cycle = self.cycle
            in_reset = local in resets
            if in_reset or (local - 1) in resets:
                reset_h.value = int(in_reset)
            src.drive()
            snk.drive()
            presented = src.current is not None
            if cov:
                if presented and not holding:
                    cov.gap(idle_run)
                    idle_run = 0
                elif not presented and src.queue:
                    idle_run += 1

            await read_only
            if in_reset:
                snk.clear()  # a reset withdraws a waiting response
            command = src.sample()
            value = snk.sample()  # checks that a waiting response neither changes nor disappears
            c_ready, r_valid, r_ready = src.ready_now, snk.valid_now, snk.ready_now
            holding = presented and command is None
            if in_reset:
                if cov and (local - 1) not in resets:
                    cov.reset(cycle, blocked, sb.model)
                waited, blocked = 0, False
                assert not c_ready and not r_valid, (
                    f"cycle {cycle}: cmd_ready={int(c_ready)} rsp_valid={int(r_valid)} during reset"
                )
                sb.reset(cycle)
                continue
            waits = r_valid and not r_ready
            blocked = waits
            waited += waits
            if waits:
                assert not c_ready, f"cycle {cycle}: cmd_ready high while a response waits"
            if presented and not c_ready and not waits:
                refused += 1
                assert refused < self.HANG_LIMIT, (
                    f"cycle {cycle}: cmd_ready low for {refused} cycles with no response waiting"
                )
            else:
                refused = 0
            if command is not None:
                if cov:
                    cov.accept(command, cycle, sb.model)
                sb.accept(command, cycle)
                if first_accept is None:
                    first_accept = cycle
                last_accept = cycle
            if value is not None:
                sb.respond(value, cycle)
                if cov:
                    cov.respond(waited, value)
                    waited = 0
                last_response = cycle
                idle = 0
            elif sb.outstanding and r_ready:
                idle += 1
                assert idle < self.HANG_LIMIT, (
                    f"cycle {cycle}: no response for {idle} cycles with {sb.outstanding} outstanding"
                )

        # One more cycle to end on: the last handshakes register at the coming rising edge.
        await fall
        self.cycle += 1
        src.drive()  # nothing left: valid falls
        snk.stop()
        reset_h.value = 0
        wall = time.perf_counter() - start_time
        busy = (last_response - first_accept + 1) if first_accept is not None and last_response is not None else 0
        accept_span = (last_accept - first_accept + 1) if first_accept is not None else 0
        return {
            "commands": len(commands),
            "cycles": local,
            "busy_cycles": busy,
            "accept_span": accept_span,
            "wall_seconds": wall,
            "cycles_per_second": local / wall if wall else None,
        }
