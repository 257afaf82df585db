"""In-order checking of what a design answers against what its golden model says."""

from collections import deque

__all__ = ["Mismatch", "InOrderScoreboard"]


class Mismatch(AssertionError):
    """The RTL and the golden model disagree. ``report`` holds the first
    difference: ``design``, ``where`` (the step or command), whatever
    locates it (``step``, ``layer``, ``tensor``, ``index``, ...), ``expected``,
    ``got`` and ``cycle`` (what applies)."""

    def __init__(self, **report):
        self.report = {k: v for k, v in report.items() if v is not None}
        super().__init__(self.describe(self.report))

    @staticmethod
    def describe(report):
        head = [str(report[k]) for k in ("design", "where") if k in report]
        locate = [f"{k} {v}" for k, v in report.items() if k not in ("design", "where", "expected", "got", "cycle")]
        text = ", ".join(head + locate)
        text += f": expected {report.get('expected')}, got {report.get('got')}"
        if "cycle" in report:
            text += f" (cycle {report['cycle']})"
        return text


class InOrderScoreboard:
    """Each observed item must equal the oldest expected one.

    ``expect(item, where=...)`` queues what the golden model says (``where``
    may be a callable, called only to word a mismatch, so that a bench
    checking an item a cycle formats nothing on the way);
    ``observe(item, cycle)`` checks the next answer and raises
    :class:`Mismatch` on the first difference, or on an answer nothing
    asked for. ``flush()`` drops what is in flight (a reset) and counts it.
    """

    def __init__(self, design, describe=repr):
        self.design, self.describe = design, describe
        self.pending = deque()  # (expected, where, cycle expected at)
        self.checked = 0
        self.dropped = 0
        self.latencies = []

    def expect(self, item, where=None, cycle=None):
        self.pending.append((item, where, cycle))

    def observe(self, item, cycle=None):
        if not self.pending:
            raise Mismatch(
                design=self.design,
                where="an answer with nothing outstanding",
                expected="nothing",
                got=self.describe(item),
                cycle=cycle,
            )
        expected, where, since = self.pending.popleft()
        if item != expected:
            where = where() if callable(where) else where
            raise Mismatch(
                design=self.design, where=where, expected=self.describe(expected), got=self.describe(item), cycle=cycle
            )
        self.checked += 1
        if since is not None and cycle is not None:
            self.latencies.append(cycle - since)

    def flush(self):
        self.dropped += len(self.pending)
        self.pending.clear()

    @property
    def outstanding(self):
        return len(self.pending)
