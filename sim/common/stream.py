"""A valid/ready source and sink, stepped once a cycle by their bench.

Both follow :mod:`sim.common`'s convention. A bench's loop, per cycle::

    await edge(clk)            # falling edge: drive
    src.drive(); snk.drive()
    await ReadOnly()           # sample: the handshakes the next rising edge takes
    sent = src.sample(); got = snk.sample()

A source presents items (each a dict of signal values, or one value for a
single payload signal) with idle cycles from a pause generator; a sink
takes them with back-pressure from another. The generators yield True for a
cycle to pause; :func:`pauses` makes the random ones.
"""
import itertools
import random
from collections import deque

__all__ = ["pauses", "StreamSource", "StreamSink"]


def pauses(probability=0.0, seed=0):
    """True with ``probability`` each cycle (never for 0)."""
    if probability <= 0:
        return itertools.repeat(False)
    rng = random.Random(seed)
    return (rng.random() < probability for _ in itertools.count())


class StreamSource:
    """Drives ``valid`` and the payload; an item is sent in a cycle where ``ready`` is high."""

    def __init__(self, valid, ready, payload, pause=None):
        self.valid, self.ready = valid, ready
        self.payload = payload if isinstance(payload, dict) else {None: payload}
        self.pause = pause or pauses()
        self.queue = deque()
        self.current = None
        self._shown = False
        self.sent = 0

    def send(self, items):
        self.queue.extend(items)

    @property
    def idle(self):
        return self.current is None and not self.queue

    def drive(self):
        if self.current is None and self.queue and not next(self.pause):
            self.current = self.queue.popleft()
            values = self.current if isinstance(self.current, dict) else {None: self.current}
            for name, v in values.items():
                self.payload[name].value = v
        shown = self.current is not None
        if shown != self._shown:
            self.valid.value = int(shown)
            self._shown = shown

    def sample(self):
        """The item the coming rising edge takes, or None."""
        if self.current is not None and int(self.ready.value):
            item, self.current = self.current, None
            self.sent += 1
            return item
        return None

    def clear(self):
        """Forget the presented item (a reset discards it); the queue stays."""
        self.current = None


class StreamSink:
    """Drives ``ready`` (low in paused cycles); takes the payload in a cycle where ``valid`` is high."""

    def __init__(self, valid, ready, payload, pause=None):
        self.valid, self.ready = valid, ready
        self.payload = payload
        self.pause = pause or pauses()
        self._ready = None
        self.ready_now = False

    def drive(self):
        self.ready_now = not next(self.pause)
        if self.ready_now != self._ready:
            self.ready.value = int(self.ready_now)
            self._ready = self.ready_now

    def sample(self):
        """The payload's integer taken at the coming rising edge, or None."""
        if self.ready_now and int(self.valid.value):
            return int(self.payload.value)
        return None

    def stop(self):
        self.ready.value = 0
        self._ready = False
