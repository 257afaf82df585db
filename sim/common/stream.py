"""A valid/ready source and sink, stepped once a cycle by their bench.

Both follow :mod:`sim.common`'s convention. A bench's loop, per cycle::

    await edge(clk)            # falling edge: drive
    src.drive(); snk.drive()
    await ReadOnly()           # sample: the handshakes the next rising edge takes
    sent = src.sample(); got = snk.sample()

A source presents items (each a dict of signal values for a dict of payload
signals, a tuple for a tuple of them, or one value for a single payload
signal) with idle cycles from a pause generator; a sink takes them with
back-pressure from another. The generators yield True for a cycle to pause;
:func:`pauses` makes the random ones. A source draws from its generator
only in a cycle where it could present a new item; a sink draws every cycle.

The sink also checks the source side's rule (AXI-Stream's, and
``amaranth.lib.stream``'s): an offered item stays offered, unchanged, until
it is taken. A reset may withdraw it: call :meth:`StreamSink.clear` then.
"""

import itertools
import random
from collections import deque

from .clock import cycle_now

__all__ = ["pauses", "StreamSource", "StreamSink"]


def pauses(probability=0.0, seed=0):
    """True with ``probability`` each cycle (never for 0, without a draw).

    ``seed`` is an int, or a :class:`random.Random` to draw from: benches
    whose gaps and back-pressure share one stream of draws pass the same one
    to both generators."""
    if probability <= 0:
        return itertools.repeat(False)
    rng = seed if isinstance(seed, random.Random) else random.Random(seed)
    draw = rng.random
    return (draw() < probability for _ in itertools.count())


class StreamSource:
    """Drives ``valid`` and the payload; an item is sent in a cycle where ``ready`` is high.

    After :meth:`sample`, ``ready_now`` holds ``ready`` as sampled this cycle
    (read every cycle, whether an item is presented or not)."""

    def __init__(self, valid, ready, payload, pause=None):
        self.valid, self.ready = valid, ready
        if isinstance(payload, dict):
            self._fields = list(payload.items())
            self._write = self._write_dict
        elif isinstance(payload, (tuple, list)):
            self._fields = tuple(payload)
            self._write = self._write_tuple
        else:
            self._fields = payload
            self._write = self._write_one
        self.payload = payload
        self.pause = pause or pauses()
        self.queue = deque()
        self.current = None
        self._shown = False
        self.ready_now = False
        self.sent = 0

    def _write_dict(self, item):
        for name, sig in self._fields:
            sig.value = item[name]

    def _write_tuple(self, item):
        for sig, v in zip(self._fields, item):
            sig.value = v

    def _write_one(self, item):
        self._fields.value = item

    def send(self, items):
        self.queue.extend(items)

    @property
    def idle(self):
        return self.current is None and not self.queue

    def drive(self):
        if self.current is None and self.queue and not next(self.pause):
            self.current = self.queue.popleft()
            self._write(self.current)
        shown = self.current is not None
        if shown != self._shown:
            self.valid.value = int(shown)
            self._shown = shown

    def sample(self):
        """The item the coming rising edge takes, or None."""
        self.ready_now = ready = bool(int(self.ready.value))
        if ready and self.current is not None:
            item, self.current = self.current, None
            self.sent += 1
            return item
        return None

    def clear(self):
        """Forget the presented item; the queue stays. ``valid`` falls at the next :meth:`drive`."""
        self.current = None


class StreamSink:
    """Drives ``ready`` (low in paused cycles); takes the payload in a cycle where ``valid`` is high.

    After :meth:`sample`, ``valid_now`` holds ``valid`` as sampled this cycle
    and ``waiting`` the payload offered but not taken (None if nothing
    waits). With ``check`` (the default), :meth:`sample` raises
    ``AssertionError`` when a waiting item changes or is withdrawn; ``name``
    names the stream in that message."""

    def __init__(self, valid, ready, payload, pause=None, check=True, name="stream"):
        self.valid, self.ready = valid, ready
        self.payload = payload
        self.pause = pause or pauses()
        self.check, self.name = check, name
        self._ready = None
        self.ready_now = False
        self.valid_now = False
        self.waiting = None

    def drive(self):
        self.ready_now = not next(self.pause)
        if self.ready_now != self._ready:
            self.ready.value = int(self.ready_now)
            self._ready = self.ready_now

    def sample(self):
        """The payload's integer taken at the coming rising edge, or None."""
        self.valid_now = valid = bool(int(self.valid.value))
        data = int(self.payload.value) if valid else None
        if self.check and self.waiting is not None and data != self.waiting:
            got = "withdrawn" if data is None else f"0x{data:x}"
            raise AssertionError(
                f"cycle {cycle_now()}: {self.name}: an item waiting to be taken changed or "
                f"was withdrawn (0x{self.waiting:x} -> {got})"
            )
        if self.ready_now:
            self.waiting = None
            return data
        self.waiting = data
        return None

    def clear(self):
        """Forget the waiting item (a reset may withdraw it)."""
        self.waiting = None

    def stop(self):
        self.ready.value = 0
        self._ready = False
        self.ready_now = False
