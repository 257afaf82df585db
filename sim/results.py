"""What a cocotb test measured, handed back to the runner as JSON.

The runner names the file in ``$SIM_RESULTS`` (one per run); each test
merges its own section in, and a failing test records its message under
``error``. A test whose design disagreed with the golden model records the
first difference under ``mismatch`` (:func:`record_mismatch`), which makes
the runner raise :class:`sim.runner.Mismatch`.
"""

import contextlib
import json
import os
from pathlib import Path

__all__ = ["record", "record_mismatch", "errors_recorded", "design_params", "env_int"]


def _load():
    path = os.environ.get("SIM_RESULTS")
    if not path:
        return None, {}
    path = Path(path)
    return path, (json.loads(path.read_text()) if path.exists() else {})


def _save(path, data):
    path.write_text(json.dumps(data, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def record(**values):
    """Merge ``values`` into the results file (no-op without ``$SIM_RESULTS``)."""
    path, data = _load()
    if path:
        data.update(values)
        _save(path, data)


def record_mismatch(design, where, detail=None, **fields):
    """Record the run's first difference from the golden model as ``mismatch``:
    ``design``, ``where`` (test, step or command), then whichever of tensor or
    field, index, expected, got and cycle apply, and ``detail`` (free text).
    A later difference does not replace the first."""
    path, data = _load()
    if path and "mismatch" not in data:
        data["mismatch"] = {"design": design, "where": where, **fields, "detail": detail}
        _save(path, data)


@contextlib.contextmanager
def errors_recorded(design=None, where=None):
    """Record an assertion's message as the results' ``error`` and re-raise it.

    A :class:`sim.common.Mismatch` is recorded as a mismatch with its
    structured report. With ``design`` and ``where``, the block compares the
    design with the golden model: any other failed assertion in it is a
    mismatch too, recorded with its message as the detail."""
    try:
        yield
    except AssertionError as e:
        message = str(e).splitlines()[0] if str(e) else repr(e)
        record(error=message)
        report = getattr(e, "report", None)
        if report is not None:
            report = {"design": design, "where": where, **report}
            record_mismatch(report.pop("design"), report.pop("where"), **report)
        elif design:
            record_mismatch(design, where, message)
        raise


def design_params():
    """The design's parameters, as the runner built it."""
    return json.loads(os.environ.get("DESIGN_PARAMS", "{}"))


def env_int(name, default):
    return int(os.environ.get(name, default))
