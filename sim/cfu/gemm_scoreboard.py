"""The GEMM CFU's checker: every response against :class:`reference.cfu_gemm.CombinedCfuModel`.

:class:`GemmCfuScoreboard` plugs into :class:`sim.cfu.bus.CfuBus` in place
of the MAC4 CFU's scoreboard. It steps the model with each op's accept cycle
(the model's time), compares every response bit for bit, and checks the
timing rules of ``docs/cfu_gemm.md`` that the values cannot show:

* a WAIT, or a READ of the result half a running GEMM writes, answers only
  after the engine's last busy cycle;
* with ``strict`` (a run whose ``rsp_ready`` stays high): an op whose older
  ops have all answered by its accept cycle answers in the cycle
  ``reference/cfu_gemm_isa.py`` documents: its latency after acceptance
  (:data:`GEMM_FAST_LATENCY`, :data:`READ32_LATENCY`, :data:`READ8_LATENCY`,
  :data:`START_LATENCY`, :data:`WAIT_IDLE_LATENCY`, the MAC4 family's own); a
  WAIT that held, in the cycle after the engine's last busy cycle; a READ that
  held reads in the first cycle from its acceptance + :data:`READ_ISSUE` after
  that cycle, and answers its latency less :data:`READ_ISSUE` after its read.

A response the model calls undefined (None: a READ of a word that a reset
left half-written) is taken unchecked and counted in ``skipped``. A break of
a rule raises :class:`sim.common.Mismatch`, naming the op, its accept cycle,
what was expected and what came.
"""

import collections
import functools

from reference.cfu_gemm import CombinedCfuModel
from reference.cfu_gemm_isa import (
    GEMM_FAST_LATENCY,
    GOP,
    GSET,
    READ8_LATENCY,
    READ32_LATENCY,
    READ_ISSUE,
    START_LATENCY,
    WAIT_IDLE_LATENCY,
    GemmOp,
)
from reference.cfu_isa import FAST_LATENCY, MAC_LATENCY, SLOW_LATENCY, latency
from sim.common import Mismatch

from .bus import CfuScoreboard, describe_command
from .gemm_stimulus import describe_gemm_command

__all__ = ["GemmCfuScoreboard", "op_kind"]

#: Cycles from acceptance to the response, by op kind (for an op that held, see respond()).
_LATENCY = {
    "WAIT": WAIT_IDLE_LATENCY,
    "READ32": READ32_LATENCY,
    "READ8": READ8_LATENCY,
    "START": START_LATENCY,
    "MAC": FAST_LATENCY,
    "MAC_ACC": MAC_LATENCY,
    "MAC_SLOW": SLOW_LATENCY,
}


def op_kind(fid):
    """A short name for the op's class: ``GSET``, a :class:`GemmOp` name, ``GOP?`` (unknown sub-op),
    ``MAC`` (a fast MAC4-family op), ``MAC_ACC`` (MAC4, GET ACC) or ``MAC_SLOW`` (SRDHM, RDBPOT, POST)."""
    funct3, funct7 = fid & 7, fid >> 3
    if funct3 == GSET:
        return "GSET"
    if funct3 == GOP:
        return GemmOp(funct7).name if funct7 in GemmOp._value2member_map_ else "GOP?"
    lat = latency(funct3, funct7)
    return "MAC_SLOW" if lat == SLOW_LATENCY else "MAC_ACC" if lat == MAC_LATENCY else "MAC"


def _describe(command):
    return describe_gemm_command(*command) or describe_command(*command)


def _word(value):
    if value is None:
        return "any value (undefined)"
    return f"0x{value:08x} ({value - (1 << 32) if value >> 31 else value})"


def _where(index, command, accepted_at):
    return f"command #{index} {_describe(command)}, accepted in cycle {accepted_at}, answered"


class GemmCfuScoreboard(CfuScoreboard):
    """In-order checker of the combined CFU (MAC4 family and GEMM ops) with the model's time.

    ``flip`` = ``(kind, bit)`` inverts bit ``bit`` of the model's answer to
    every op of that kind (:func:`op_kind`): a deliberately wrong model, to
    show that the bench catches one wrong bit.
    """

    def __init__(self, model=None, strict=False, flip=None):
        super().__init__(model or CombinedCfuModel())
        self.describe = _word
        self.design = "gemm_cfu"
        self.strict = strict
        self.flip = flip
        self.meta = collections.deque()  # per op in flight: (kind, accept cycle, engine busy until or None)
        self.skipped = 0
        self.last_response = None
        self.kinds = collections.Counter()  # ops accepted, by kind
        self.checked_kinds = collections.Counter()  # responses compared, by kind
        self.max_latency = {}
        self.held_after = collections.Counter()  # (kind, response cycle - the engine's last busy cycle)
        self.resets = []  # one dict per reset: what it interrupted
        self._reset_at = None

    @property
    def gemm_model(self):
        return self.model.gemm

    def accept(self, command, cycle):
        fid = command[0]
        kind = op_kind(fid)
        g = self.model.gemm
        holds = len(g.waits)
        expected = self.model.step(*command, cycle=cycle)
        held = g.waits[-1][1] if len(g.waits) > holds else None
        if self.flip and self.flip[0] == kind and expected is not None:
            expected ^= 1 << self.flip[1]
        self.expect(expected, where=functools.partial(_where, self.accepted, command, cycle), cycle=cycle)
        self.meta.append((kind, cycle, held, command, self.accepted))
        self.kinds[kind] += 1
        self.accepted += 1

    def _fail(self, index, command, since, expected, got, cycle):
        raise Mismatch(design=self.design, where=_where(index, command, since), expected=expected, got=got, cycle=cycle)

    def respond(self, value, cycle):
        kind, since, held, command, index = self.meta.popleft()
        latency = cycle - since
        if self.pending and self.pending[0][0] is None:
            self.pending.popleft()
            self.skipped += 1
            self.latencies.append(latency)
        else:
            self.observe(value, cycle)
            self.checked_kinds[kind] += 1
        self.responses.append((index, value, latency))
        self.max_latency[kind] = max(self.max_latency.get(kind, 0), latency)
        if held is not None:
            if cycle <= held:
                self._fail(
                    index, command, since, f"a response after cycle {held} (the engine's last busy cycle)", cycle, cycle
                )
            self.held_after[kind, cycle - held] += 1
        alone = self.last_response is None or self.last_response <= since
        self.last_response = cycle
        if not (self.strict and alone):
            return
        lat = _LATENCY.get(kind, GEMM_FAST_LATENCY)
        if held is None:
            if latency != lat:
                self._fail(index, command, since, f"latency {lat}", f"latency {latency}", cycle)
        else:
            # A held WAIT acts as if taken in the engine's last busy cycle; a held READ reads in
            # the first cycle from its acceptance + READ_ISSUE after it (reference/cfu_gemm_isa.py).
            if kind == "WAIT":
                want = held + lat
            else:
                want = max(since + lat, held + 1 + lat - READ_ISSUE)
            if cycle != want:
                self._fail(
                    index, command, since, f"a response in cycle {want} (the engine's last busy: {held})", cycle, cycle
                )

    def reset(self, cycle=None):
        """A reset (high in ``cycle``): drop what is in flight, reset the model at that cycle."""
        # One record per reset pulse, once the stream has begun (not the bench's first reset).
        if self.accepted and cycle is not None and (self._reset_at is None or cycle != self._reset_at + 1):
            g = self.model.gemm
            self.resets.append(
                {
                    "cycle": cycle,
                    "engine_busy": bool(g._running(cycle)),
                    "ops_in_flight": self.outstanding,
                    "mid_row": any(g.wcol.values()),
                }
            )
        self._reset_at = cycle
        self.flush()
        self.meta.clear()
        self.model.reset(cycle)
