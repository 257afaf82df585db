"""What the formal harnesses share: free inputs, one-cycle-ago registers, an
abstract model of a command/response unit, and a way to watch a design's
internal registers.

A harness is an ``Elaboratable`` whose ``ports`` are free inputs: SymbiYosys
lets the solver drive them with any value in any cycle, so a property proved
holds for every input sequence (up to the depth, for BMC). The harness's
``sync`` domain is the design's clock; its ``rst`` is a free input too, so a
reset may come in any cycle. Every harness register starts at its ``init``
(the solver's first cycle is the power-on state).

Properties are grouped; a harness built with ``groups={...}`` states only
those groups' assertions (the assumptions on the environment always stay),
so each group is proved or bounded on its own.
"""

import sys

from amaranth.hdl import Assert, Elaboratable, Signal

__all__ = ["Harness", "find_signals", "CommandModel"]


class Harness(Elaboratable):
    """Base of the harnesses: ``ports`` (free inputs) and the property groups it states.

    Subclasses set ``GROUPS`` (name -> what it states, in words) and implement
    ``elaborate``, calling :meth:`check` for each assertion.
    """

    GROUPS = {}
    COVERS = {}

    def __init__(self, groups=None, *, covers=None):
        unknown = set(groups or ()) - set(self.GROUPS)
        if unknown:
            raise ValueError(f"unknown property groups: {', '.join(sorted(unknown))}")
        self.groups = set(self.GROUPS) if groups is None else set(groups)
        self.covers = covers
        self.ports = []
        self.messages = {}  # (file, line) of each check -> its message, for the report

    def free(self, shape, name):
        """A free input: any value in any cycle."""
        s = Signal(shape, name=name)
        self.ports.append(s)
        return s

    def check(self, m, group, test, message):
        """``Assert(test)`` if ``group`` is stated in this build."""
        if group not in self.GROUPS:
            raise ValueError(f"no property group {group!r}")
        if group in self.groups:
            caller = sys._getframe(1)
            self.messages[(caller.f_code.co_filename, caller.f_lineno)] = message
            m.d.comb += Assert(test, message, src_loc_at=1)

    def cover(self, m, name, test, message):
        """Reachability of ``test``: stated, when this build checks cover ``name``, as the
        assertion that it never holds, so that a counterexample shows it reached (ABC's
        BMC engines have no cover mode; SymbiYosys's cover mode with z3 is far slower)."""
        if name not in self.COVERS:
            raise ValueError(f"no cover {name!r}")
        if self.covers == name:
            m.d.comb += Assert(~test, f"reached: {message}")

    @staticmethod
    def past(m, value, name, init=0):
        """``value`` one cycle ago (``init`` in the first cycle)."""
        s = Signal(value.shape(), name=name, init=init)
        m.d.sync += s.eq(value)
        return s


def find_signals(fragment, path, names):
    """The signals named ``names`` that the statements of the fragment at ``path``
    (submodule names from ``fragment``) assign: a harness reads a design's
    architectural registers without the design exporting them."""
    for name in path:
        for sub, sub_name, _ in fragment.subfragments:
            if sub_name == name:
                fragment = sub
                break
        else:
            raise LookupError(f"no submodule {name!r} in {'.'.join(path)}")
    found = {}
    for stmts in fragment.statements.values():
        for stmt in stmts:
            for sig in stmt._lhs_signals():
                if sig.name in names:
                    if found.get(sig.name, sig) is not sig:
                        raise LookupError(f"two signals named {sig.name!r} in {'.'.join(path)}")
                    found[sig.name] = sig
    missing = set(names) - set(found)
    if missing:
        raise LookupError(f"no signals {', '.join(sorted(missing))} in {'.'.join(path)}")
    return [found[n] for n in names]


class CommandModel:
    """The abstract model of a command/response unit, for the ``count`` and ``order`` groups.

    ``outstanding`` counts commands accepted before this cycle minus responses
    given before this cycle; reset zeroes it (reset drops what is in flight).
    For the order, the solver picks any accepted command to watch (a free input
    ``pick`` in its accepting cycle): the model records its answer where the
    spec fixes it from the command alone (``known``) and how many responses
    are owed before it; the response given when that count reaches zero must
    carry the recorded answer. As the pick and the commands are free, this
    covers every command of every sequence: a dropped, duplicated or reordered
    response shows as a wrong value. (One watched command rather than a FIFO
    of all keeps the state small and lets the proof close.) Only the low
    ``compare_bits`` are compared: the solver picks them, so they tell answers apart.
    """

    def __init__(self, max_in_flight, compare_bits=4):
        self.max_in_flight, self.compare_bits = max_in_flight, compare_bits

    def elaborate(self, m, harness, *, accept, known, expected, give, payload, rst):
        low = slice(0, self.compare_bits)
        limit = self.max_in_flight + 1
        outstanding = Signal(range(limit + 1), name="outstanding")
        pick = harness.free(1, "pick")
        armed, ahead = Signal(name="watching"), Signal(range(limit + 1), name="ahead")
        w_known, w_value = Signal(name="watched_known"), Signal(self.compare_bits, name="watched_value")
        with m.If(rst):
            m.d.sync += [outstanding.eq(0), armed.eq(0)]
        with m.Else():
            with m.If(outstanding != limit):  # saturates where the check below fails anyway
                m.d.sync += outstanding.eq(outstanding + accept - give)
            with m.If(armed & give):
                with m.If(ahead == 0):
                    m.d.sync += armed.eq(0)
                with m.Else():
                    m.d.sync += ahead.eq(ahead - 1)
            with m.If(accept & pick & ~armed):
                m.d.sync += [armed.eq(1), ahead.eq(outstanding - give), w_known.eq(known), w_value.eq(expected[low])]
        harness.check(m, "count", ~give | (outstanding != 0), "no response without a command")
        harness.check(m, "count", outstanding <= self.max_in_flight, "in flight within the pipeline's depth")
        watched = give & armed & (ahead == 0) & w_known
        harness.check(m, "order", ~watched | (payload[low] == w_value), "responses in command order")
        harness.check(m, "order", ~armed | (ahead < outstanding), "the watched command is still owed")
        self.outstanding, self.watched = outstanding, watched
        return outstanding
