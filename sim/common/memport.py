"""Host transfers over a synchronous memory-style port, one word a cycle.

Writes: ``en``, ``addr`` and ``data`` change at a falling edge and are
registered at the next rising edge. Reads: the address presented at a
falling edge is read at the next rising edge and the word is sampled at the
falling edge after it, while the next address goes out: ``n`` words in
``n + 1`` cycles, one trigger a cycle. A port whose inputs are registered on
the way in (``sim/runner.py``'s clocked top) has its word ``latency`` = 2
falling edges after the address.
"""

from cocotb.triggers import FallingEdge

__all__ = ["write_words", "read_words"]


async def write_words(clk, en, addr, data, values, addrs, setup=()):
    """Write ``values`` (port integers) to ``addrs``; ``setup`` is ``(signal, value)`` pairs held meanwhile."""
    fall = FallingEdge(clk)
    await fall
    for sig, v in setup:
        sig.value = v
    en.value = 1
    for i, (a, v) in enumerate(zip(addrs, values)):
        if i:
            await fall
        addr.value = a
        data.value = v
    await fall
    en.value = 0


async def read_words(clk, en, addr, data, addrs, setup=(), latency=1):
    """Read the words at ``addrs``; returns their port integers. ``en`` may be
    None for a port that reads every cycle."""
    fall = FallingEdge(clk)
    addrs = list(addrs)
    raw = []
    await fall
    for sig, v in setup:
        sig.value = v
    if en is not None:
        en.value = 1
    for i in range(len(addrs) + latency):
        if i:
            await fall
        if i >= latency:
            raw.append(int(data.value))
        if i < len(addrs):
            addr.value = addrs[i]
    if en is not None:
        en.value = 0
    return raw
