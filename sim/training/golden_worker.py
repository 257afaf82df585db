"""``python -m sim.training.golden_worker``: a training run's golden model in a process of its own.

The harness's bench (:func:`sim.training.tb_train._train`) starts it and
reads its answers while the simulator runs, so that the golden model's
steps take another core instead of the simulator's. It reads one JSON line
on stdin::

    {"cfg": <sim.training.session.run_config's dict>, "lanes": R,
     "regions": [[tensor, layer, rows, stride], ...]}

and writes one JSON line per step, in the run's order::

    {"epoch": e, "idx": [...], "closes": bool, "signature": "<hex>"}

``signature`` is :func:`reference.signature.misr` over the regions' words as
the golden step leaves them (``tensor`` is ``w_new`` or ``b_new``). A step
that closes an epoch also carries ``"masters": {"w_new": [...], "b_new":
[...]}`` (the bench reads them back from the core to compare). The last
line is ``{"curves": ...}``: the fixed-point run's loss and accuracy by
epoch. On an error it writes ``{"error": "..."}`` and exits 1.
"""

import json
import sys
from pathlib import Path

__all__ = ["expected_signature", "main"]


def expected_signature(golden, regions, R):
    """The signature of ``regions`` (``(tensor, layer, rows, stride)``) in the golden step ``golden``."""
    from reference.signature import misr, region_words

    words = []
    for tensor, l, rows, stride in regions:
        words += region_words(golden[tensor][l], rows, stride, R)
    return misr(words, 32 * R)


def main():
    from .session import FixedRun

    try:
        spec = json.loads(sys.stdin.readline())
        cfg, R, regions = spec["cfg"], spec["lanes"], spec["regions"]
        run = FixedRun(cfg, lanes=R)
        for epoch, idx, closes in run.batches():
            golden = run.step(idx)
            if cfg.get("dump") and run.steps == 1:
                run.dump(Path(cfg["dump"]) / "step0.npz", golden)
            line = {"epoch": epoch, "idx": [int(i) for i in idx], "closes": bool(closes)}
            line["signature"] = format(expected_signature(golden, regions, R), "x")
            if closes:
                line["masters"] = {t: [m.tolist() for m in golden[t]] for t in ("w_new", "b_new")}
                run.end_epoch(epoch)
            print(json.dumps(line), flush=True)
        print(json.dumps({"curves": run.curves}), flush=True)
    except BrokenPipeError:  # the bench stopped reading: it has what it needs, or failed
        sys.exit(0)
    except Exception as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
