"""Functional coverage: named bins, sampled from what a bench drove and what the design answered.

Each coverpoint is a cocotb-coverage ``CoverPoint`` in its ``coverage_db``
(so its reports and YAML/XML export work); a bench classifies each sample
into a bin label itself, in plain Python, so each coverpoint is a list of
labels matched by equality (a label outside the list is a bench bug, raised
at once). A cross is a coverpoint whose labels are tuples of other points'
labels. The hits are counted here and a bin's first hit is passed to the
``CoverPoint``: its sampling costs about 5 us a call, and a bench samples
some 100,000 times, so the database learns which bins are covered (what
the figures need) while the counts stay here.

``coverage_db`` is one per process, and a cocotb run is one process: the
bins of a bench accumulate over the cocotb tests of its run, and
:meth:`Coverage.record` writes them into that run's results file
(``functional_coverage``: ``bins``, ``hit``, ``missed`` and the hits per
bin), where the pytest test that started the run reads them.
"""

import itertools

from cocotb_coverage.coverage import CoverPoint, coverage_db

from sim.results import record

__all__ = ["Coverage", "length_bin", "LENGTH_BINS", "shape_bin", "shape_bins"]

#: Bins of a run length (back-pressure, gaps): 0, 1, 2-3, 4-7, 8+ cycles.
LENGTH_BINS = ["0", "1", "2-3", "4-7", "8+"]


def length_bin(n):
    """The :data:`LENGTH_BINS` label of a run of ``n`` cycles."""
    if n < 2:
        return str(n)
    return "2-3" if n < 4 else "4-7" if n < 8 else "8+"


_SHAPE_BINS = ["1", "<", "=", ">k", ">odd"]


def shape_bin(d, size):
    """Class of a dimension ``d`` against an array side ``size``: ``1``; ``<`` (1 < d < size); ``=``;
    ``>k`` (a multiple of size above it); ``>odd`` (above it, not a multiple). Each d has one class."""
    if d == size:
        return "="
    if d == 1:
        return "1"
    if d < size:
        return "<"
    return ">k" if d % size == 0 else ">odd"


def shape_bins(size):
    """The classes some dimension can fall in against ``size`` (a 1-wide side has no ``<`` nor ``>odd``)."""
    return [b for b in _SHAPE_BINS if any(shape_bin(d, size) == b for d in range(1, 3 * size + 2))]


class Coverage:
    """The coverpoints of one bench, under ``design`` in cocotb-coverage's database.

    ``point(name, labels)`` declares a coverpoint (again: the same one);
    ``sample(name, label)`` counts one hit. Names and labels are strings
    (a cross's labels are tuples, written ``a/b`` in the summary)."""

    def __init__(self, design):
        self.design = design
        self._points = {}
        self._labels = {}
        self._counts = {}

    def point(self, name, labels):
        if name in self._points:
            return
        labels = list(labels)

        def hit(label):  # cocotb-coverage samples the arguments of a decorated function
            return None

        sampler = CoverPoint(f"{self.design}.{name}", bins=labels)(hit)
        self._points[name] = (sampler, frozenset(labels), f"{self.design}.{name}")
        self._labels[name] = labels
        self._counts[name] = {}

    def cross(self, name, *points):
        """A coverpoint over every combination of ``points``' labels; sample it with a tuple of them."""
        self.point(name, itertools.product(*(self._labels[p] for p in points)))

    def sample(self, name, label):
        counts = self._counts[name]
        n = counts.get(label)
        if n is None:  # the bin's first hit
            sampler, labels, _ = self._points[name]
            if label not in labels:
                raise ValueError(f"coverage {self.design}.{name}: {label!r} is not one of its bins")
            sampler(label)
            n = 0
        counts[label] = n + 1

    def hits(self):
        """``{point: {label: hits}}``; the bins cocotb-coverage counts covered are the ones hit here."""
        out = {}
        for name, (_, _, full) in self._points.items():
            covered = coverage_db[full].detailed_coverage
            counts = self._counts[name]
            assert all(bool(counts.get(label)) == bool(n) for label, n in covered.items())
            out[name] = {_text(label): counts.get(label, 0) for label in self._labels[name]}
        return out

    def summary(self):
        hits = self.hits()
        bins = [f"{p}:{label}" for p, h in hits.items() for label in h]
        missed = [f"{p}:{label}" for p, h in hits.items() for label, n in h.items() if not n]
        return {"bins": len(bins), "hit": len(bins) - len(missed), "missed": missed, "hits": hits}

    def record(self):
        """Write :meth:`summary` into the run's results as ``functional_coverage``."""
        record(functional_coverage=self.summary())


def _text(label):
    return "/".join(map(str, label)) if isinstance(label, tuple) else str(label)
