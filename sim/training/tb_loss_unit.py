"""cocotb test of ``LossUnit`` against :func:`reference.training.loss_error`:
random logit rows (with ties, extremes and all-equal rows) of random lengths
up to the unit's ``classes``, random labels, both losses, random gaps on the
input and back-pressure on the output, through :mod:`sim.common`'s stream
source and sink; then cross-entropy rows near the rounding steps of
``p_j · 2^7`` (:func:`near_steps`), rows whose divider remainders sit at each
quotient bit's threshold in each lane (``tb_train.divider_rows``, with the
lane's quotient at 64 or more too), and rows
outside the contract with the answer the unit defines for them (:func:`bad_rows`).
Logits and errors travel as the unit's stream words (``lanes`` int8 and
``last``), packed from its own port layout. The rows go in back to back, each
word with its row's label, loss and count, so the unit holds up to four rows
at once; gaps and back-pressure come in stretches (:func:`stretches`), with
stretches of none between them where rows follow each other at full speed."""

import bisect
import itertools

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly

from hdl.training.loss_unit import Loss, LossUnit
from reference.training import exp_table, loss_error
from reference.training_numerics import Numerics
from sim.common import StreamSink, StreamSource, edge, pack_value, pauses, reset, start_clock, unpack_value
from sim.common.coverage import Coverage
from sim.results import design_params, env_int, errors_recorded, record
from sim.training.tb_train import divider_rows


def rows(rng, classes, count):
    out = []
    for k in range(count):
        kind = k % 5
        # MSE rows of extremes (every 15th row) put -128 on the label, whose error y - 2^a_frac then
        # saturates at -128, with the label in the next lane each time (found by make coverage).
        saturating = kind == 2 and k % 3 == 2
        n = classes if k % 2 == 0 or saturating else int(rng.integers(2, classes + 1))
        if kind == 0:
            y = rng.integers(-128, 128, n)
        elif kind == 1:
            y = np.full(n, int(rng.integers(-128, 128)))  # all equal
        elif kind == 2:
            y = rng.choice([-128, 127, 0], n)  # extremes
        elif kind == 3:
            y = rng.integers(-4, 5, n)  # ties
        else:
            y = rng.integers(-40, 41, n)
        label = (k // 15) % n if saturating else int(rng.integers(0, n))
        if saturating:
            y[label] = -128
        out.append((y, label, Loss.MSE if k % 3 == 2 else Loss.CE))
    return out


def near_steps(rng, classes, numerics, pool=30000, close=8, bands=range(4, 14)):
    """Cross-entropy rows where a class's error sits near a rounding step.

    loss_error rounds ``p_j · 2^7`` half up: ``floor(num / 2S)`` with ``num = e_j · 2^(e_frac+1) + S``. Class j's
    distance to a step is ``num mod 2S`` above the last one, or ``2S - 1 - (num mod 2S)`` below the next. A fault
    that moves the numerator, the sum or a partial remainder of the division by ``d`` changes that error only
    when the distance on the right side is under ``d``: a random row does so with odds of about ``d / 2S`` per
    class, under 1/1000 for d = 64 (S >= 2^15). For each class j and each side: ``close`` rows nearer than 16
    (exact ties among them when the pool has any), then one row at each distance in [2^b, 2^(b+1)) for b in
    ``bands``; picked from ``pool`` random rows of each class count (gaps to the maximum 0..88, the ones whose
    exponent is not 0), at a random offset, with random labels."""
    e_table = exp_table(numerics)
    pools = []
    for n in range(2, classes + 1):
        gaps = rng.integers(0, 89, (pool, n))
        gaps[np.arange(pool), rng.integers(0, n, pool)] = 0  # the maximum
        e = e_table[gaps]
        s = e.sum(axis=1)
        pools.append((gaps, s, (e * (2 << numerics.e_frac_ce) + s[:, None]) % (2 * s[:, None])))
    out = []
    for j in range(classes):
        for side in ("above", "below"):
            for lo, hi, per in [(0, 16, close)] + [(1 << b, 2 << b, 1) for b in bands]:
                hits = []
                for gaps, s, r in pools:
                    if gaps.shape[1] > j:
                        dist = r[:, j] if side == "above" else 2 * s - 1 - r[:, j]
                        hits += [gaps[i] for i in np.flatnonzero((dist >= lo) & (dist < hi))[:per]]
                for k in rng.permutation(len(hits))[:per]:
                    top = int(rng.integers(-128 + int(hits[k].max()), 128))
                    out.append((top - hits[k], int(rng.integers(0, len(hits[k]))), Loss.CE))
    return out


def bad_rows(rng, classes, lanes, count_max, label_max, numerics, count=60):
    """Rows outside the interface's contract, each with the answer the unit defines for it
    (``hdl/training/loss_unit.py``): ``count`` past ``classes`` (up to the port's ``count_max``), a
    ``last`` before ``count`` lanes have come, and a label at or past the row's count (up to the
    port's ``label_max``).
    Yields ``(logits sent, label, loss, count on the port, expected errors)``: the expected errors
    are :func:`loss_error`'s over the row as the unit defines it, with no class marked when the
    label is past it."""
    out = []
    for k in range(count):
        loss = Loss.MSE if k % 4 == 3 else Loss.CE
        kind = k % 3
        if kind == 0:  # count past classes: the row is the first classes logits
            port = int(rng.integers(classes + 1, count_max + 1))
            sent = rng.integers(-128, 128, classes)
            kept = classes
        elif kind == 1:  # last early: the row is the words sent
            port = int(rng.integers(lanes + 1, count_max + 1))
            words = int(rng.integers(1, -(-min(port, classes) // lanes)))
            sent = rng.integers(-128, 128, words * lanes)
            kept = min(port, classes, words * lanes)
        else:  # a label past a short row
            port = int(rng.integers(2, classes))
            sent = rng.integers(-128, 128, port)
            kept = port
        past = (kind == 2 or k % 2) and kept <= label_max  # the port reaches past the row
        label = int(rng.integers(kept, label_max + 1)) if past else int(rng.integers(0, kept))
        y = sent[:kept]
        name = "ce" if loss == Loss.CE else "mse"
        expected = loss_error(y[None, :], np.array([min(label, kept - 1)]), name, numerics)[0]
        if label >= kept:  # no class marked: the last lane's error without loss_error's mark
            mse = loss == Loss.MSE
            expected[kept - 1] = y[kept - 1] if mse else expected[kept - 1] + (1 << numerics.e_frac_ce)  # MSE: sat8(y)
        out.append((sent, label, loss, port, expected))
    return out


def stretches(probability, seed, length=400):
    """Pauses with ``probability`` for ``length`` cycles, then none for ``length``, and so on."""
    draws = pauses(probability, seed)
    for cycle in itertools.count():
        paused = next(draws)
        yield paused and (cycle // length) % 2 == 0


def coverage(classes, lanes):
    """Bins of each row the unit answered right: its class count (every one from 2 to ``classes``),
    the loss, where the label is, how the row fills the stream's words, and the loss crossed with
    the last two. And of the pipeline, seen from the ports: how many rows were in the unit at once
    (a word in, its errors not all out: 1 to 3, one a stage), and a logit word held back (valid
    with ready low: the load stage full behind a busy exponent stage)."""
    cov = Coverage("loss_unit")
    cov.point("classes", [str(c) for c in range(2, classes + 1)])
    cov.point("loss", [loss.name for loss in Loss])
    cov.point("label", ["first", "middle", "last"])
    cov.point("words", sorted({_words_bin(c, lanes) for c in range(2, classes + 1)}))  # the ones that can occur
    cov.cross("loss_x_label", "loss", "label")
    cov.cross("loss_x_words", "loss", "words")
    cov.point("rows_in_flight", ["1", "2", "3 or more"])
    cov.point("logits_held", ["held"])
    return cov


def _words_bin(count, lanes):
    if count <= lanes:
        return "one"
    return "several, all full" if count % lanes == 0 else "several, last partial"


@cocotb.test(timeout_time=100, timeout_unit="ms")
async def loss_rows(dut):
    params = design_params()
    classes, lanes = params.get("classes", 10), params.get("lanes", 8)
    n = Numerics()
    rng = np.random.default_rng(env_int("STIMULUS_SEED", 1))
    word = LossUnit(classes, lanes).signature.members["logits"].signature.members["payload"].shape
    fields = {"word": dut.logits__payload, "label": dut.label, "loss": dut.loss, "count": dut.count}
    src = StreamSource(dut.logits__valid, dut.logits__ready, fields, pause=stretches(0.2, seed=2))
    snk = StreamSink(dut.errors__valid, dut.errors__ready, dut.errors__payload, pause=stretches(0.3, seed=3))
    start_clock(dut.clk)
    await reset(
        dut.clk,
        dut.rst,
        zero=[dut.logits__valid, dut.logits__payload, dut.label, dut.loss, dut.count, dut.errors__ready],
    )
    random_rows = env_int("LOSS_ROWS", 200)
    threshold_rows, threshold_labels = divider_rows(lanes, classes, n, seed=int(rng.integers(1 << 32)), leading=True)
    cases = [
        (y, label, loss, len(y), loss_error(y[None, :], np.array([label]), "ce" if loss == Loss.CE else "mse", n)[0])
        for y, label, loss in rows(rng, classes, random_rows)
        + near_steps(np.random.default_rng(rng.integers(1 << 32)), classes, n)
        + [(y, int(label), Loss.CE) for y, label in zip(threshold_rows, threshold_labels)]
    ]
    in_contract = len(cases)
    count_max, label_max = (1 << len(dut.count)) - 1, (1 << len(dut.label)) - 1
    cases += bad_rows(np.random.default_rng(rng.integers(1 << 32)), classes, lanes, count_max, label_max, n)
    cycles = 0
    cov = coverage(classes, lanes)
    words_in = []  # each row's words sent, counted through it
    for y, label, loss, count_port, _ in cases:
        sent_words = -(-len(y) // lanes)
        padded = np.pad(y, (0, sent_words * lanes - len(y)), constant_values=77)  # junk past count
        src.send(
            {
                "word": pack_value(
                    word,
                    {"data": [int(v) for v in padded[k * lanes : (k + 1) * lanes]], "last": int(k == sent_words - 1)},
                ),
                "label": label,
                "loss": loss.value,
                "count": count_port,
            }
            for k in range(sent_words)
        )
        words_in.append((words_in[-1] if words_in else 0) + sent_words)
    with errors_recorded():
        r, got = 0, []
        while r < len(cases):
            y, label, loss, count_port, expected = cases[r]
            count = len(expected)  # the row's lanes, as the unit defines them
            words = -(-count // lanes)
            # Rows with a word in and their errors not all out, after the last edge.
            in_flight = min(bisect.bisect_left(words_in, src.sent) + 1, len(cases)) - r if src.sent else 0
            # The input register's word, four stages of a row each, and the divider's pipeline: up to
            # LATENCY words of rows passed on.
            most = LossUnit.INPUT_LATENCY + 4 + LossUnit.LATENCY
            assert in_flight <= most, f"row {r}: {in_flight} rows in the unit, which holds {most} at most"
            if in_flight:
                cov.sample("rows_in_flight", "3 or more" if in_flight >= 3 else str(in_flight))
            await edge(dut.clk)
            src.drive()
            snk.drive()
            await ReadOnly()
            presented = src.current is not None
            src.sample()
            out = snk.sample()
            cycles += 1
            if presented and not src.ready_now:
                cov.sample("logits_held", "held")
            assert cycles < 200 * (r + 1) * classes, "the loss unit stopped answering"
            if out is None:
                continue
            assert src.sent >= words_in[r], f"row {r}: errors came out before all its logits went in"
            out = unpack_value(word, out)
            got.append([int(v) for v in out.data])
            assert int(out.last) == (len(got) == words), f"row {r}: last misplaced"
            if len(got) < words:
                continue
            got = [v for w in got for v in w]
            want = [int(v) for v in expected] + [0] * (words * lanes - count)
            assert got == want, (
                f"row {r} ({loss.name.lower()}, label {label}, count {count_port}) logits {[int(v) for v in y]}: "
                f"expected {want}, got {got}"
            )
            r, got = r + 1, []
            if r > in_contract:
                continue  # the bins are the contract's
            cov.sample("classes", str(count))
            where = "first" if label == 0 else "last" if label == count - 1 else "middle"
            cov.sample("loss", loss.name)
            cov.sample("label", where)
            cov.sample("words", _words_bin(count, lanes))
            cov.sample("loss_x_label", (loss.name, where))
            cov.sample("loss_x_words", (loss.name, _words_bin(count, lanes)))
    cov.record()
    record(
        loss_unit={
            "rows": random_rows,
            "near_steps": in_contract - random_rows - len(threshold_rows),
            "divider_rows": len(threshold_rows),
            "bad_rows": len(cases) - in_contract,
            "classes": classes,
            "lanes": lanes,
            "cycles": cycles,
        }
    )
