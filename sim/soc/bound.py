"""The GEMM way's port-bandwidth bound: the CFU instructions that must carry
the batch's data across CFU Playground's port, at one a cycle.

Every byte the engine sees or produces crosses the port in an instruction: a
WRITE_A/WRITE_B carries 8 int8 (both 32-bit inputs), a READ8 4 int8 (its one
32-bit output), a CH_BIAS/CH_MULT/CH_SHIFT one 32-bit channel parameter. The
port takes at most one instruction a cycle, so their count is a lower bound
on the cycles, whatever the CPU does around them. The critical path adds what
cannot overlap the transfers: a layer's GEMM starts after its operands are
in, and its outputs are read (and fed to the next layer) after it ends.
"""

from math import ceil

from reference.cfu_gemm_isa import DEFAULT_GEOMETRY, ROWS
from reference.gemm import gemm_cycles

__all__ = ["gemm_port_bound"]


def gemm_port_bound(shapes, images, geometry=DEFAULT_GEOMETRY):
    """The bound for an MLP of ``shapes`` (``(n_out, n_in)`` per layer) on a batch of
    ``images``, as the firmware runs it: each layer's weights once per batch, the
    batch in chunks that fit one buffer half, the next layer's weights loaded
    while the engine computes. Returns a dict: the instructions of each kind,
    the bytes, and the cycles per image of the port alone (``port_cycles``)
    and of the critical path (``critical_cycles``)."""
    g = geometry
    widest_in = max(n_in for _, n_in in shapes)
    widest_out = max(n_out for n_out, _ in shapes)
    chunk = min(images, g.operand_depth // ceil(widest_in / ROWS), g.result_depth // ceil(widest_out / g.cols))
    weights = [n_out * ceil(n_in / ROWS) for n_out, n_in in shapes]  # WRITE_B
    channels = [3 * n_out for n_out, _ in shapes]  # CH_BIAS, CH_MULT, CH_SHIFT
    count = {"write_b": sum(weights), "channel": sum(channels), "write_a": 0, "read8": 0}
    critical = weights[0] + channels[0]
    for s in range(0, images, chunk):
        m = min(chunk, images - s)
        for i, (n_out, n_in) in enumerate(shapes):
            writes, reads = m * ceil(n_in / ROWS), m * ceil(n_out / 4)
            count["write_a"] += writes
            count["read8"] += reads
            busy = gemm_cycles(ROWS, g.cols, m, n_in, n_out, "nt")
            # The next layer's weights load while this layer computes (the first chunk only).
            hidden = weights[i + 1] + channels[i + 1] if s == 0 and i + 1 < len(shapes) else 0
            critical += writes + max(busy, hidden) + reads
    instructions = sum(count.values())
    data = 8 * (count["write_a"] + count["write_b"]) + 4 * (count["read8"] + count["channel"])
    return {
        **count,
        "instructions": instructions,
        "bytes": data,
        "port_cycles": instructions / images,
        "critical_cycles": critical / images,
    }
