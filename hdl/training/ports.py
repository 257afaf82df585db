"""The signatures the training core's components are joined by.

Each is written from the side that drives the request (``Out`` members are
the requester's outputs); the serving side takes it flipped (``In(...)``).
"""

from amaranth.hdl import signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .program import OP_LAYOUT, Dst

__all__ = ["control", "run", "mem_write", "mem_read", "operand_word", "operand_write", "operand_read"]


def control():
    """What the sequencer holds for every unit: the current ``op`` (from the
    cycle after DECODE to the next DECODE), the last post-op ``post_op`` (the
    same op while it runs, but held while a post-op runs behind a GEMM),
    ``busy`` (a step runs) and the step's ``lr`` (latched at ``start``)."""
    return wiring.Signature({"op": Out(OP_LAYOUT), "post_op": Out(OP_LAYOUT), "busy": Out(1), "lr": Out(16)})


def run():
    """Running one op on a unit: ``go`` is high for one cycle; ``done`` is high
    in the cycle the unit has finished (the sequencer moves on at that edge).
    ``done`` may be high when no op runs; the post unit's must be (the
    sequencer reads it to know a post-op running behind a GEMM has finished)."""
    return wiring.Signature({"go": Out(1), "done": In(1)})


def mem_write(depth, shape):
    """A synchronous write: ``data`` is written to ``addr`` at the rising edge of a cycle where ``en`` is high."""
    return wiring.Signature({"en": Out(1), "addr": Out(range(depth)), "data": Out(shape)})


def mem_read(depth, shape, en=False):
    """A synchronous read: ``data`` is the word at the ``addr`` of the cycle before (with ``en``: where it was high)."""
    members = {"addr": Out(range(depth)), "data": In(shape)}
    if en:
        members["en"] = Out(1)
    return wiring.Signature(members)


def operand_word(rows):
    """An int8 word for the operand buffers, in element order (lane e is column
    ``col0 + e``): written at ``addr`` of ``to`` (:class:`.program.Dst`: none,
    A, B or both) in the cycle ``en`` is high; ``row`` is the matrix row it
    belongs to, for the rotation."""
    return wiring.Signature(
        {
            "en": Out(1),
            "to": Out(Dst),
            "addr": Out(16),
            "row": Out(16),
            "data": Out(data.ArrayLayout(signed(8), rows)),
        }
    )


def operand_write(rows, depth):
    """One word into the operand buffers, lanes in bank order, taken the cycle
    ``en`` is high: ``sel`` 0 is A, 1 is B; ``both`` writes A and B. ``addr``
    spans both halves (``depth`` is both halves' words)."""
    return wiring.Signature(
        {
            "en": Out(1),
            "sel": Out(1),
            "both": Out(1),
            "addr": Out(range(depth)),
            "data": Out(data.ArrayLayout(signed(8), rows)),
        }
    )


def operand_read(rows, depth):
    """One stored operand word (``sel`` 0: A, 1: B), lanes in bank order, valid the cycle after ``en``."""
    return wiring.Signature(
        {"en": Out(1), "sel": Out(1), "addr": Out(range(depth)), "data": In(data.ArrayLayout(signed(8), rows))}
    )
