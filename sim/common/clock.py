"""Clock, reset and the cycle count, written once for every bench."""

from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import FallingEdge

__all__ = ["PERIOD_NS", "start_clock", "reset", "cycle_now", "edge"]

#: The clock period of every bench: cycle numbers are sim time / PERIOD_NS.
PERIOD_NS = 10


def start_clock(clk):
    """Start a free-running clock on ``clk``."""
    Clock(clk, PERIOD_NS, unit="ns").start()


def cycle_now():
    """The current clock cycle of the run."""
    return int(get_sim_time("ns")) // PERIOD_NS


def edge(clk):
    """The trigger every bench waits on between cycles: the falling edge."""
    return FallingEdge(clk)


async def reset(clk, rst, cycles=2, zero=()):
    """Hold ``rst`` high for ``cycles`` rising edges, with every signal in
    ``zero`` driven to 0 first. Returns at a falling edge with ``rst`` low."""
    fall = FallingEdge(clk)
    await fall
    for sig in zero:
        sig.value = 0
    rst.value = 1
    for _ in range(cycles):
        await fall
    rst.value = 0
