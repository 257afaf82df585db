"""The training core's memory map: ``plan_step`` lays a step's tensors out, and ``fit_geometry``
sizes the memories for a network and batch (``sim train`` builds the core it returns)."""

import pytest

from hdl.training.program import POST_STAGES, SPACES, CoreGeometry, PlanError, fit_geometry, plan_step

DEPTH = {  # space -> (the geometry field that sizes it, words per field unit)
    "a": ("operand_depth", 2),
    "b": ("operand_depth", 2),
    "results": ("result_depth", 2),
    "vmem": ("vmem_depth", 1),
    "wmem": ("wmem_depth", 1),
    "bmem": ("bmem_depth", 1),
    "mmem": ("mmem_depth", 1),
}

NETWORKS = [
    ((64, 32, 10), 32, 8),
    ((64, 16, 10), 8, 8),
    ((64, 32, 10), 32, 4),
    ((64, 32, 10), 32, 16),
    ((64, 48, 32, 10), 32, 8),
    ((64, 128, 64, 10), 64, 8),
    ((64, 128, 64, 10), 64, 16),
    ((64, 32, 32, 32, 32, 32, 32, 10), 64, 8),
    ((64, 300, 10), 300, 8),
]


def _words(cols, R):
    return -(-cols // R)


def test_the_default_network_keeps_the_default_core():
    assert fit_geometry((64, 32, 10), 32) == CoreGeometry()
    assert fit_geometry((64, 16, 10), 8) == CoreGeometry()


@pytest.mark.parametrize("layers, batch, rows", NETWORKS)
def test_fitted_memories_hold_every_tensor_apart(layers, batch, rows):
    """Every region lies inside its memory, and no two overlap, except dY, which the plan puts at the
    same words of A and B on purpose (the dX GEMM's A and the dW GEMM's B)."""
    g = fit_geometry(layers, batch, rows)
    assert g.rows == rows
    plan = plan_step(layers, batch, g)
    size = {space: getattr(g, field) * unit for space, (field, unit) in DEPTH.items()}
    spans = {space: [] for space in SPACES}
    for name, r in plan.regions.items():
        assert r.stride >= _words(r.cols, rows), name
        assert 0 <= r.base and r.base + r.rows * r.stride <= size[r.space], name
        spans[r.space].append((r.base, r.base + r.rows * r.stride, name))
    for space, taken in spans.items():
        taken.sort()
        for (_, end, first), (start, _, second) in zip(taken, taken[1:]):
            assert end <= start, f"{first} and {second} overlap in {space}"
    assert g.label_depth >= batch and g.program_depth >= len(plan.ops)


@pytest.mark.parametrize("layers, batch, rows", NETWORKS)
def test_fitted_memories_are_the_smallest_powers_of_two(layers, batch, rows):
    """A memory grown past the default core's is a power of two, and half of it would not hold the step."""
    g, base = fit_geometry(layers, batch, rows), CoreGeometry()
    for field in {field for field, _ in DEPTH.values()}:
        depth = getattr(g, field)
        assert depth >= getattr(base, field) and depth & (depth - 1) == 0, field
        if depth > getattr(base, field):
            with pytest.raises(PlanError, match="need .* words of"):
                plan_step(layers, batch, CoreGeometry(**{**g.params, field: depth // 2}))


def test_the_issues_networks():
    """64-48-32-10 at batch 32 needs 1,356 result words (the default core has 1,024): acc 32·(6+4+2),
    dX accumulators 32·(6+4), [dW; db] 65·6 + 49·4 + 33·2, at 8 lanes a word."""
    with pytest.raises(PlanError, match="need 1356 words of the result buffer; the hardware has 1024"):
        plan_step((64, 48, 32, 10), 32, CoreGeometry())
    assert fit_geometry((64, 48, 32, 10), 32).result_depth == 1024  # two halves of 1,024
    g = fit_geometry((64, 128, 64, 10), 64)
    plan_step((64, 128, 64, 10), 64, g)
    assert (g.operand_depth, g.result_depth, g.vmem_depth, g.wmem_depth, g.mmem_depth) == (2048, 4096, 4096, 4096, 4096)


@pytest.mark.parametrize(
    "layers, batch, rows, cause",
    [
        ((64, 3000, 10), 256, 8, "need 195072 words of operand buffer A; 16-bit addresses reach 65536"),
        ((64, 2000, 10), 1, 2, "need 75005 words of operand buffer B; 16-bit addresses reach 65536"),
        ((64,), 8, 8, "at least two layer widths"),
    ],
)
def test_a_network_no_geometry_holds_is_refused(layers, batch, rows, cause):
    with pytest.raises(PlanError, match=cause):
        fit_geometry(layers, batch, rows)


def test_a_chained_gemm_waits_its_delay_and_no_less():
    """The forward GEMM chained behind the one whose FWD follows it reads x a word column at a time as
    that FWD writes it: with batch 8 on 8x8 the plan gives it a delay, the least with which the schedule
    finds no read before its write (tb_train.forward_chain shows the RTL reading a decoy one cycle short)."""
    from types import SimpleNamespace

    from hdl.training.program import EarlyRead, Kind, schedule

    plan = plan_step((64, 16, 10), 8)
    gemm1 = [op for op in plan.ops if op["kind"] == Kind.GEMM][1]
    assert gemm1["delay"] == 10 + POST_STAGES  # 10 with the 2-stage post unit before issue 13's lanes
    ops = [dict(op, delay=op["delay"] - 1) if op is gemm1 else op for op in plan.ops]
    with pytest.raises(EarlyRead, match="1 cycles before the post-op writes it"):
        schedule(SimpleNamespace(geometry=plan.geometry, ops=ops))
    # On the default network the FWD is ahead of the chained GEMM's reads: no delay.
    assert [op.get("delay", 0) for op in plan_step((64, 32, 10), 32).ops if op["kind"] == Kind.GEMM][1] == 0


def test_the_loss_waits_for_the_logits_and_no_less():
    """The LOSS behind the last layer's FWD reads the logits row by row as the FWD writes them, one word a
    cycle each: the FWD writes word i POST_STAGES + 1 cycles after it reads it, in go + 1 + i, and the
    LOSS starts two cycles after the FWD and reads word i in its go + 1 + i. So it waits POST_STAGES
    cycles, and one fewer reads a logit in the cycle it is written (tb_train.loss_behind_fwd runs both)."""
    from types import SimpleNamespace

    from hdl.training.program import EarlyRead, Kind, schedule

    for layers, batch in (((64, 32, 10), 32), ((64, 16, 10), 8), ((64, 10), 4)):
        plan = plan_step(layers, batch)
        loss = next(op for op in plan.ops if op["kind"] == Kind.LOSS)
        assert loss["delay"] == POST_STAGES
        ops = [dict(op, delay=op["delay"] - 1) if op is loss else op for op in plan.ops]
        with pytest.raises(EarlyRead, match="a LOSS reads word \\('vmem', \\d+\\) 1 cycles before"):
            schedule(SimpleNamespace(geometry=plan.geometry, ops=ops))
