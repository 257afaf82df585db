"""What a cocotb test measured, handed back to the runner as JSON.

The runner names the file in ``$SIM_RESULTS``; each test merges its own
section in, and a failing test records its message under ``error``.
"""
import contextlib
import json
import os
from pathlib import Path

__all__ = ["record", "design_params", "env_int"]


def record(**values):
    """Merge ``values`` into the results file (no-op without ``$SIM_RESULTS``)."""
    path = os.environ.get("SIM_RESULTS")
    if not path:
        return
    path = Path(path)
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update(values)
    path.write_text(json.dumps(data, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


@contextlib.contextmanager
def errors_recorded():
    """Record an assertion's message as the results' ``error`` and re-raise it."""
    try:
        yield
    except AssertionError as e:
        record(error=str(e).splitlines()[0] if str(e) else repr(e))
        raise


def design_params():
    """The design's parameters, as the runner built it."""
    return json.loads(os.environ.get("DESIGN_PARAMS", "{}"))


def env_int(name, default):
    return int(os.environ.get(name, default))
