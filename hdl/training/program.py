"""The training core's program: its instruction format, its memory map and
the compiler from an MLP's shape to the ops of one training step.

The host writes the program once; the core's sequencer runs it per step
(``docs/training.md``). One op is one of:

=======  ================================================================
GEMM     start the engine on one GEMM and wait for it (``behind``: go on)
FWD      requantize a forward GEMM's results, add the bias, keep y, apply
         the activation and write the next layer's input (with its ones
         column)
LOSS     the loss unit over the logits: dL/dY into the operand buffers
DX       requantize dY·Wᵀ, keep dx, apply the activation's derivative mask
         and write the layer-below's dY
UPDATE   momentum and SGD over [dW; db] with LFSR stochastic rounding:
         masters, momenta and the int8 weights the GEMMs read
END      the step is done
=======  ================================================================

A post-op (FWD, DX, UPDATE) walks its output a row at a time (word 0 to W-1 of
row 0, then of row 1, ...), or with ``by_column`` a word column at a time (word 0
of every row, then word 1, ...). With ``behind`` set it runs behind the next op:
the sequencer starts it and goes on to fetch the next op. That op must be a
GEMM, or a LOSS behind a FWD that writes no operand words. Any other op waits
in DECODE until the post-op has finished. The next op may read what the
post-op writes, in the order it is written: each writes one word a cycle from
2 + POST_STAGES cycles after its start, and the reader, fetched after that
start, reads at most one word a cycle, each after its write (:func:`schedule`
checks it; :func:`least_delay` gives a reader the delay it needs; docs/training.md,
"Timing"). The plan
sets ``behind``
- on each hidden layer's FWD, by column: the next layer's forward GEMM reads
  its input one word column (a tile's K rows) at a time;
- on the last layer's FWD: the loss unit reads the logits row by row;
- on each UPDATE but the last: the next op is the layer below's dW GEMM,
  which reads none of its data.

A GEMM with ``behind`` set is not waited for either: the next op is a post-op
with ``follow`` set, which reads the GEMM's results word by word as the engine
finishes them (walking by column, the order it finishes them in); any other
op waits in DECODE for the engine. The plan sets it on each dX GEMM and its
DX, and on the step's last GEMM (layer 0's dW) and its UPDATE. Every UPDATE
walks by column, and the LFSR's draws follow that walk
(:func:`reference.training.update_draws`).

A LOSS with ``behind`` set is not waited for: the next op, the last layer's
dW GEMM, waits its ``delay`` cycles and starts while the loss unit still
writes dY, which that GEMM reads as weights, R rows a tile
(:func:`loss_gemm_delay`). Any other op waits in DECODE for the loss unit.
The backward pass of a layer is therefore its dW GEMM, then its dX GEMM with
the DX that follows it, then its UPDATE.

:func:`schedule` is the timing.

The bias trick: each layer's input X is stored with one more column, all
ones, so the gradient GEMM ``[X 1]ᵀ·dY`` yields dW in its first rows and
``db = Σ_batch dY`` in its last, bit-exact, from the array.
"""

import enum as py_enum
from dataclasses import dataclass, field, replace
from types import SimpleNamespace

from amaranth.hdl import Shape, signed
from amaranth.lib import data, enum

from reference.gemm import ROW_ENTRY, chain_launches, chain_ready, final_writes, tile_launches
from reference.training_numerics import Numerics

from ..systolic.signatures import Mode
from .loss_unit import Loss, LossUnit

__all__ = [
    "OP_LAYOUT",
    "Kind",
    "Phase",
    "Act",
    "Dst",
    "Target",
    "Mode",
    "Loss",
    "CoreGeometry",
    "StepPlan",
    "plan_step",
    "pack_op",
    "PlanError",
    "SPACES",
    "fit_geometry",
    "schedule",
    "step_cycles",
    "phase_counts",
    "may_pass",
]


class Kind(enum.Enum, shape=3):
    """Op kinds, by their encoding. Any other value (6, 7) stops the step with ``error``."""

    END = 0
    GEMM = 1
    FWD = 2
    LOSS = 3
    DX = 4
    UPDATE = 5


class Phase(enum.Enum, shape=2):
    """Which cycle counter an op's cycles go to (results name them in lower case)."""

    FORWARD = 0
    BACKWARD = 1
    UPDATE = 2


class Act(enum.Enum, shape=2):
    """Activation (FWD) or the derivative mask it implies (DX)."""

    NONE = 0
    RELU = 1
    LEAKY = 2


class Dst(enum.Enum, shape=2):
    """Where a post-op writes int8 words: nowhere, operand buffer A, B or both."""

    NONE = 0
    A = 1
    B = 2
    BOTH = 3


class Target(enum.Enum, shape=3):
    """Host port targets (``wr_target`` / ``rd_target``): each memory the host reaches."""

    A = 0
    B = 1
    WMEM = 2
    BMEM = 3
    MMEM = 4
    LABELS = 5
    RESULTS = 6
    VMEM = 7


ADDR = 16

#: The post unit's lane pipeline (:class:`.post.PostLanes`): a word read in cycle c is written in
#: c + 1 + POST_STAGES (docs/training.md, "Timing").
POST_STAGES = 9

OP_LAYOUT = data.StructLayout(
    {
        "kind": Kind,
        "phase": Phase,
        "mode": Mode,
        "act": Act,
        "ones": 1,
        "dst": Dst,
        "loss": Loss,
        "momentum": 1,
        "behind": 1,
        "by_column": 1,
        "follow": 1,
        "beside": 1,
        "delay": 8,
        "shift0": signed(7),
        "shift1": signed(7),
        "m": ADDR,
        "k": ADDR,
        "n": ADDR,
        "a_base": ADDR,
        "a_stride": ADDR,
        "b_base": ADDR,
        "b_stride": ADDR,
        "r_base": ADDR,
        "dst_base": ADDR,
        "dst_stride": ADDR,
        "vr_base": ADDR,
        "vr_stride": ADDR,
        "vw_base": ADDR,
        "vw_stride": ADDR,
        "p_base": ADDR,
        "q_base": ADDR,
        "bb_base": ADDR,
    }
)


class PlanError(ValueError):
    """A network or batch this hardware cannot train."""


class EarlyRead(PlanError):
    """A GEMM of the program reads an operand word before the post-op beside it writes it, by ``cycles``."""

    def __init__(self, message, cycles):
        super().__init__(message)
        self.cycles = cycles


@dataclass(frozen=True)
class CoreGeometry:
    """The generated hardware's sizes (all in words; an operand word is R int8,
    the other memories' words are R lanes too)."""

    rows: int = 8  #: the array is rows × rows
    operand_depth: int = 1024  #: per half of each operand buffer (the plan uses both halves)
    result_depth: int = 512  #: per half of the result buffer
    vmem_depth: int = 1024  #: y and dx (int8)
    wmem_depth: int = 1024  #: master weights (int16)
    bmem_depth: int = 64  #: master biases (int32)
    mmem_depth: int = 1024  #: momenta (int32)
    label_depth: int = 256  #: the largest batch
    program_depth: int = 32
    classes: int = 16  #: the loss unit's largest output layer
    dsp_pairs: bool = False  #: two PEs share a multiplier (``SystolicArray``): half the array's DSP48E1s

    @property
    def params(self):
        return dict(self.__dict__)


def _words(cols, R):
    return -(-cols // R)


#: The memories a step's tensors live in, by the ``space`` a region names.
SPACES = {
    "a": "operand buffer A",
    "b": "operand buffer B",
    "results": "the result buffer",
    "vmem": "the activation memory",
    "wmem": "the weight memory",
    "bmem": "the bias memory",
    "mmem": "the momentum memory",
}

#: Words any memory can have: op fields and the host port carry 16-bit addresses.
MAX_WORDS = 1 << ADDR


def _space_words(g):
    """The words of each space in geometry ``g`` (an operand or result space spans both halves)."""
    return {
        "a": 2 * g.operand_depth,
        "b": 2 * g.operand_depth,
        "results": 2 * g.result_depth,
        "vmem": g.vmem_depth,
        "wmem": g.wmem_depth,
        "bmem": g.bmem_depth,
        "mmem": g.mmem_depth,
    }


def _place(layers, batch, R):
    """Where every tensor of one step lives, packed from word 0 of each space:
    ``(regions, words used per space)``."""
    L = len(layers) - 1
    free = dict.fromkeys(SPACES, 0)
    regions = {}

    def region(name, space, rows, cols, stride=None, shared_with=None):
        stride = stride if stride is not None else _words(cols, R)
        if shared_with:  # the same words in A and B
            base = max(free[space], free[shared_with])
            free[shared_with] = base + rows * stride
        else:
            base = free[space]
        free[space] = base + rows * stride
        regions[name] = SimpleNamespace(space=space, base=base, stride=stride, rows=rows, cols=cols)

    ins, outs = layers[:-1], layers[1:]
    # dY_l lives at the same words of A (dX GEMM's A) and B (dW GEMM's B).
    for l in range(L):
        region(f"dy{l}", "a", batch, outs[l], shared_with="b")
    for l in range(L):
        region(f"x{l}", "a", batch, ins[l] + 1)  # with the ones column
    for l in range(L):
        region(f"w{l}", "b", ins[l], outs[l])
    for l in range(L):
        region(f"y{l}", "vmem", batch, outs[l] + (l < L - 1))
    for l in range(1, L):
        region(f"dx{l}", "vmem", batch, ins[l])
    for l in range(L):
        region(f"acc{l}", "results", batch, outs[l])
    for l in range(1, L):
        region(f"dxacc{l}", "results", batch, ins[l])
    for l in range(L):
        region(f"dw{l}", "results", ins[l] + 1, outs[l])
    for l in range(L):
        region(f"w{l}_master", "wmem", ins[l], outs[l])
    for l in range(L):
        region(f"b{l}_master", "bmem", 1, outs[l])
    for l in range(L):
        region(f"m{l}", "mmem", ins[l] + 1, outs[l])
    return regions, free


def _pow2_at_least(n):
    return 1 << max(0, (n - 1).bit_length())


def fit_geometry(layers, batch, rows=8, base=CoreGeometry()):
    """The geometry for training ``layers`` at ``batch`` on a ``rows`` × ``rows`` array: ``base``'s
    sizes, each memory grown to the power of two that holds the step's tensors (so the default
    network keeps the default core, and its build).

    Raises :class:`PlanError` naming the memory and the words needed when one would pass the
    16-bit addresses' 65,536 words.
    """
    layers = tuple(int(w) for w in layers)
    if len(layers) < 2 or min(layers) < 1:
        raise PlanError(f"an MLP needs at least two layer widths, all positive, not {layers}")
    _, used = _place(layers, batch, rows)
    for space, words in used.items():
        if words > MAX_WORDS:
            raise PlanError(
                f"layers {','.join(map(str, layers))} with batch {batch} on a {rows}x{rows} array need "
                f"{words} words of {SPACES[space]}; 16-bit addresses reach {MAX_WORDS}"
            )
    # An operand or result space is two halves of a power of two each.
    half = lambda space, floor: max(floor, _pow2_at_least(-(-used[space] // 2)))
    grow = lambda space, floor: max(floor, _pow2_at_least(used[space]))
    g = replace(
        base,
        rows=rows,
        operand_depth=max(half("a", base.operand_depth), half("b", base.operand_depth)),
        result_depth=half("results", base.result_depth),
        vmem_depth=grow("vmem", base.vmem_depth),
        wmem_depth=grow("wmem", base.wmem_depth),
        bmem_depth=grow("bmem", base.bmem_depth),
        mmem_depth=grow("mmem", base.mmem_depth),
        label_depth=max(base.label_depth, _pow2_at_least(batch)),
        program_depth=MAX_WORDS,
    )
    ops = len(plan_step(layers, batch, g).ops)
    return replace(g, program_depth=max(base.program_depth, _pow2_at_least(ops)))


@dataclass
class StepPlan:
    layers: tuple
    batch: int
    geometry: CoreGeometry
    ops: list = field(default_factory=list)
    #: tensor -> SimpleNamespace(space, base, stride, rows, cols) for the host
    regions: dict = field(default_factory=dict)
    macs: dict = field(default_factory=lambda: {p.name.lower(): 0 for p in Phase})


def plan_step(
    layers, batch, geometry=CoreGeometry(), numerics=Numerics(), loss="ce", activation="relu", momentum=False
):
    """The program of one training step and where every tensor lives.

    Raises :class:`PlanError` when the network or the batch does not fit.
    """
    g, n = geometry, numerics
    R = g.rows
    layers = tuple(int(w) for w in layers)
    L = len(layers) - 1
    if L < 1 or min(layers) < 1:
        raise PlanError(f"an MLP needs at least two layer widths, all positive, not {layers}")
    if not 1 <= batch <= g.label_depth:
        raise PlanError(f"batch {batch} is outside 1..{g.label_depth}, the hardware's label buffer")
    if layers[-1] > g.classes:
        raise PlanError(f"{layers[-1]} output classes; the loss unit takes at most {g.classes}")
    if loss not in ("ce", "mse") or activation not in ("relu", "leaky"):
        raise PlanError(f"unknown loss {loss!r} or activation {activation!r}")
    plan = StepPlan(layers, batch, g)
    plan.regions, used = _place(layers, batch, R)
    size = _space_words(g)
    for space, words in used.items():
        if words > size[space]:
            raise PlanError(
                f"layers {','.join(map(str, layers))} with batch {batch} need {words} words of "
                f"{SPACES[space]}; the hardware has {size[space]}"
            )
    ins, outs = layers[:-1], layers[1:]
    reg = lambda prefix, suffix="": [plan.regions.get(f"{prefix}{l}{suffix}") for l in range(L)]
    dy, x, w8, y, dxv = reg("dy"), reg("x"), reg("w"), reg("y"), reg("dx")
    acc, dxacc, dw, wm, bm, mm = reg("acc"), reg("dxacc"), reg("dw"), reg("w", "_master"), reg("b", "_master"), reg("m")

    x_frac = lambda l: n.x_frac if l == 0 else n.a_frac
    e_frac = lambda l: n.e_frac(loss, L - 1 - l)

    def op(kind, phase, **fields):
        plan.ops.append({"kind": kind, "phase": phase, **fields})

    def gemm(mode, m, k, n, a, b, r, **fields):
        """A GEMM's fields: C (at region r) = A'·B' of m x k by k x n, A and B at regions a and b."""
        strides = dict(a_base=a.base, a_stride=a.stride, b_base=b.base, b_stride=b.stride, r_base=r.base)
        return dict(mode=mode, m=m, k=k, n=n, **strides, **fields)

    act = Act[activation.upper()]

    for l in range(L):
        hidden = l < L - 1
        # A hidden layer's GEMM runs behind: its FWD follows it, and the next GEMM is chained behind it.
        op(Kind.GEMM, Phase.FORWARD, **gemm(Mode.NN, batch, ins[l], outs[l], x[l], w8[l], acc[l], behind=int(hidden)))
        if l:
            plan.ops[-1]["delay"] = least_delay(plan)
        plan.macs["forward"] += batch * ins[l] * outs[l]
        shift = x_frac(l) + n.w_frac - n.a_frac
        if not 0 <= shift <= 31 or not 0 <= n.w_frac - n.dx_extra <= 31:
            raise PlanError(f"layer {l}'s requantization shifts must be in 0..31 for the hardware")
        op(
            Kind.FWD,
            Phase.FORWARD,
            m=batch,
            k=y[l].stride,
            n=outs[l],
            r_base=acc[l].base,
            bb_base=bm[l].base,
            vw_base=y[l].base,
            vw_stride=y[l].stride,
            shift0=shift,
            # Behind the next GEMM (hidden), which reads this op's output a word column at a time, or
            # behind the loss unit (the last layer: no operand words), which reads the logits row by row.
            behind=1,
            by_column=int(hidden),
            # A hidden layer's follows its GEMM, reading each word once it is final: the next GEMM,
            # chained behind that one, reads each word of x after this op has written it (schedule checks).
            follow=int(hidden),
            act=act if hidden else Act.NONE,
            ones=int(hidden),
            dst=Dst.A if hidden else Dst.NONE,
            dst_base=x[l + 1].base if hidden else 0,
            dst_stride=x[l + 1].stride if hidden else 0,
        )
    op(
        Kind.LOSS,
        Phase.BACKWARD,
        m=batch,
        k=_words(outs[-1], R),
        n=outs[-1],
        loss=Loss[loss.upper()],
        vr_base=y[-1].base,
        vr_stride=y[-1].stride,
        dst=Dst.BOTH,
        dst_base=dy[-1].base,
        dst_stride=dy[-1].stride,
        # Behind the last layer's dW GEMM, which reads dY row block by row block as weights, each
        # tile after the loss unit has written its rows (the GEMM's delay).
        behind=1,
    )
    # It reads the logits the last layer's FWD, running behind, writes: each after its write.
    plan.ops[-1]["delay"] = least_delay(plan)
    update = None  # the layer above's UPDATE, placed after this layer's dW GEMM
    for l in reversed(range(L)):
        # dW first: right after the LOSS it is the GEMM that can start before all of dY is written.
        # Behind: the engine takes the dX GEMM after it while it drains (the two read dY, neither
        # writes what the other reads); the step's last GEMM's UPDATE follows it, word by word as the
        # engine finishes them. Below the last layer it is chained behind the dX GEMM above, whose DX
        # writes the dY it reads (its delay: least_delay).
        dw_gemm = gemm(Mode.TN, ins[l] + 1, batch, outs[l], x[l], dy[l], dw[l], behind=1)
        if l == L - 1:
            dw_gemm["delay"] = loss_gemm_delay(plan.ops[-1], dw_gemm, R)
        op(Kind.GEMM, Phase.BACKWARD, **dw_gemm)
        plan.macs["backward"] += (ins[l] + 1) * batch * outs[l]
        if l < L - 1:
            plan.ops[-1]["delay"] = least_delay(plan)
        if update:
            plan.ops.append(update)
        if l:
            # behind: its DX follows it
            op(Kind.GEMM, Phase.BACKWARD, **gemm(Mode.NT, batch, outs[l], ins[l], dy[l], w8[l], dxacc[l], behind=1))
            plan.macs["backward"] += batch * outs[l] * ins[l]
            op(
                Kind.DX,
                Phase.BACKWARD,
                m=batch,
                k=dxv[l].stride,
                n=ins[l],
                r_base=dxacc[l].base,
                vr_base=y[l - 1].base,
                vr_stride=y[l - 1].stride,
                vw_base=dxv[l].base,
                vw_stride=dxv[l].stride,
                shift0=n.w_frac - n.dx_extra,
                act=act,
                dst=Dst.BOTH,
                dst_base=dy[l - 1].base,
                dst_stride=dy[l - 1].stride,
                by_column=1,
                follow=1,  # the dX GEMM's results as it finishes them; the layer below's GEMMs read dY
                behind=1,  # the layer below's dW GEMM, chained behind the dX GEMM, reads dY as it is written
            )
        s_w = n.lr_frac + x_frac(l) + e_frac(l) - n.master_frac
        s_b = n.lr_frac + e_frac(l) - (x_frac(l) + n.w_frac + n.master_extra)
        for s in (s_w, s_b):
            if not -15 <= s <= 47:
                raise PlanError(f"layer {l}'s update shift {s} is outside the hardware's -15..47")
        update = dict(
            kind=Kind.UPDATE,
            phase=Phase.UPDATE,
            m=ins[l] + 1,
            k=wm[l].stride,
            n=outs[l],
            r_base=dw[l].base,
            p_base=wm[l].base,
            q_base=mm[l].base,
            bb_base=bm[l].base,
            shift0=s_w,
            shift1=s_b,
            momentum=int(momentum),
            dst=Dst.B,
            dst_base=w8[l].base,
            dst_stride=w8[l].stride,
            # By word column, the order the dW GEMM finishes its words in (the LFSR's draws follow it:
            # reference.training.update_draws).
            by_column=1,
            # Beside the layer below's dW GEMM, which reads dY_(l-1) and x_(l-1) and writes dW_(l-1),
            # and behind the op after it (that layer's dX GEMM, or its UPDATE): every tensor has its own
            # words (_place), and this op writes layer l's only. Its dX GEMM, which read W_l, has finished.
            beside=int(l > 0),
            behind=int(l > 0),
            # Layer 0's follows its own dW GEMM, the step's last, reading each word once it is final.
            follow=int(l == 0),
        )
    plan.ops.append(update)
    op(Kind.END, Phase.UPDATE)
    if len(plan.ops) > g.program_depth:
        raise PlanError(f"{L} layers need {len(plan.ops)} ops; the program memory holds {g.program_depth}")
    return plan


def least_delay(plan):
    """The fewest cycles the last op of ``plan`` (so far) must wait in the sequencer before its start
    so that it reads each word the post-op running beside it writes after the write (:func:`schedule`).
    A GEMM: a FWD that follows the GEMM before, writing x a word column at a time as that GEMM
    finishes acc, or a DX that follows the dX GEMM before, writing dY as that GEMM finishes dX. A LOSS:
    the last layer's FWD, writing the logits it reads."""
    last = plan.ops[-1]
    last["delay"] = 0
    while True:
        try:
            schedule(plan)
            return last["delay"]
        except EarlyRead as e:  # each cycle of delay moves the reads a cycle at most
            last["delay"] += e.cycles
        if last["delay"] >= 1 << Shape.cast(OP_LAYOUT["delay"].shape).width:
            raise PlanError(
                f"a {Kind(last['kind']).name} needs a delay of {last['delay']} cycles, more than the op holds"
            )


def loss_write_cycle(row, word, words):
    """The cycle, counted from a LOSS's go, in which the loss feeder writes error word ``word`` of
    ``row`` (rows of ``words`` words): a row enters the unit every W cycles, waits
    :data:`.loss_unit.LossUnit.INPUT_LATENCY` cycles in its input register, its emit stage issues
    it 2W + :data:`.loss_unit.LossUnit.SUM_LATENCY` cycles after it entered the load stage, and each
    word leaves the divider's pipeline :data:`.loss_unit.LossUnit.LATENCY` cycles after its issue
    (docs/training.md, "Timing")."""
    return (row + 2) * words + word + 2 + LossUnit.INPUT_LATENCY + LossUnit.SUM_LATENCY + LossUnit.LATENCY


def loss_gemm_delay(loss_op, gemm_op, R):
    """The fewest cycles a GEMM fetched right after a LOSS running ``behind`` must wait in the
    sequencer before its start, so that each of its tiles reads the rows of dY it needs as weights
    (B, stored K x N: rows k0..k0+R-1 of word column n0/R) after the loss feeder has written them.

    The GEMM starts (go) 2 + delay cycles after the LOSS's go: its DECODE, the delay, its START.
    Tile T's first weight column is read P_T + 1 cycles after the GEMM's go
    (:func:`reference.gemm.tile_launches`), and a read sees a write of the cycle before.
    """
    M, K, N, W = gemm_op["m"], gemm_op["k"], gemm_op["n"], loss_op["k"]
    if gemm_op["mode"] != Mode.TN or K != loss_op["m"] or -(-N // R) != W:
        raise PlanError("a GEMM behind a LOSS reads its dY as B, K x N, K the LOSS's rows")
    launches, delay, kt = tile_launches(R, R, M, K, N), 0, -(-K // R)
    for t, p in enumerate(launches):
        nb, kb = divmod(t, kt)
        last_row = min((kb + 1) * R, K) - 1
        delay = max(delay, loss_write_cycle(last_row, nb, W) - 2 - p)
    if delay >= 1 << Shape.cast(OP_LAYOUT["delay"].shape).width:
        raise PlanError(f"the GEMM behind the LOSS needs a delay of {delay} cycles, more than the op holds")
    return delay


def post_writes(op, reads):
    """The words a post-op writes that a reader running beside it may read, as ``{(buffer, word): cycle}``:
    operand words (``dst``; buffer 0 is A, 1 is B) and vmem words (FWD's y, DX's dx; buffer ``"vmem"``).
    Word i of its walk is read in ``reads[i]`` and written POST_STAGES + 1 cycles after (docs/training.md)."""
    dst, m, k = Dst(op.get("dst", Dst.NONE)), op["m"], op["k"]
    buffers = {Dst.NONE: (), Dst.A: (0,), Dst.B: (1,), Dst.BOTH: (0, 1)}[dst]
    kept = Kind(op["kind"]) in (Kind.FWD, Kind.DX)
    out = {}
    for i, read in enumerate(reads):
        row, word = (i % m, i // m) if op.get("by_column") else divmod(i, k)
        for buf in buffers:
            out[buf, op["dst_base"] + row * op["dst_stride"] + word] = read + 1 + POST_STAGES
        if kept:
            out["vmem", op["vw_base"] + row * op["vw_stride"] + word] = read + 1 + POST_STAGES
    return out


def loss_reads(op, go):
    """The vmem words a LOSS started (go) in ``go`` reads and when, as ``(cycle, ("vmem", word))``: the
    feeder presents word k of row r's logits in go + 1 + r·W + k, row after row with no gap
    (:class:`.loss_feeder.LossFeeder`), and the read sees a write of the cycle before."""
    W = op["k"]
    return [
        (go + 1 + r * W + k, ("vmem", op["vr_base"] + r * op["vr_stride"] + k))
        for r in range(op["m"])
        for k in range(W)
    ]


def _early(reads, written, reader):
    """Raise :class:`EarlyRead` if a read of ``reads`` (``(cycle, word)``) comes in or before the cycle the
    post-op running behind writes its word (``written``)."""
    early = [(written[w] + 1 - c, w) for c, w in reads if written.get(w, -1) >= c]
    if early:
        cycles, word = max(early)
        raise EarlyRead(f"{reader} reads word {word} {cycles} cycles before the post-op writes it", cycles)


def operand_reads(op, launches, R):
    """The operand words a GEMM reads and when: ``(cycle, buffer, word)`` for every word of every line
    the engine reads (docs/systolic.md: tile T's weight column j in ``P_T + 1 + j``, its row m in
    ``P_T + 2 + m``), its tiles launched in ``launches``."""
    M, K, N, mode = op["m"], op["k"], op["n"], Mode(op["mode"])
    kt = -(-K // R)

    def line(buf, base, stride, index, k0, column):
        """The words of one line read from k0: a stored row's one word, or a stored column's R words."""
        if not column:
            return [(buf, base + index * stride + k0 // R)]
        return [(buf, base + (k0 + t) * stride + index // R) for t in range(min(R, K - k0))]

    out = []
    for T, p in enumerate(launches):
        n0, k0 = (T // kt) * R, (T % kt) * R
        for j in range(min(R, N - n0)):
            out += [(p + 1 + j, *w) for w in line(1, op["b_base"], op["b_stride"], n0 + j, k0, mode != Mode.NT)]
        for row in range(M):
            out += [(p + 2 + row, *w) for w in line(0, op["a_base"], op["a_stride"], row, k0, mode == Mode.TN)]
    return out


def may_pass(op, post_op):
    """Whether ``op`` may leave DECODE while ``post_op`` runs behind (the sequencer's rule): a GEMM,
    or a LOSS while a FWD that writes no operand words runs (the operand writer and vmem's read port
    then serve the loss unit)."""
    kind = lambda o: Kind(o["kind"])
    return kind(op) == Kind.GEMM or (
        kind(op) == Kind.LOSS and kind(post_op) == Kind.FWD and Dst(post_op.get("dst", Dst.NONE)) == Dst.NONE
    )


def schedule(plan):
    """When each op of ``plan`` runs on the core (docs/training.md, "Timing"), in cycles from the
    step's first: a list of ``(start, end)``, each op from the cycle its word is fetched to the
    cycle before the next op's DECODE; for a post-op running ``behind`` the next op its own
    ``(go, done)`` too, and for a GEMM the engine's ``take``, its tiles' ``launches`` and its
    ``last_write``. The first op is fetched in cycle 0; each after it in the last cycle of the op
    before (the program memory reads the next op while the held one starts and runs).

    Each op costs 2 cycles to decode and start (the first 3, with its fetch); a GEMM its ``delay``
    before its start, and until its last write the engine's cycles (:func:`reference.gemm.chain_launches`:
    alone, :func:`reference.gemm.gemm_cycles`); a post-op rows x words + 2 + POST_STAGES; a LOSS its
    ``delay``, then (m + 2)·W + 1 + LossUnit.INPUT_LATENCY + LossUnit.SUM_LATENCY + LossUnit.LATENCY
    for m rows of W words (its unit's input register; its load, exponent and emit stages each hold a
    row for W cycles, its tail stage for the exponents' last sum; its divider's pipeline,
    :func:`loss_write_cycle`); END 2 (fetch and decode: the
    step ends the cycle after its DECODE). A post-op ``behind`` the next op costs its 2 cycles only:
    the next op's DECODE follows its start. That op is a GEMM, or a LOSS behind a FWD that writes no
    operand words (:func:`may_pass`), which reads each logit after the FWD writes it
    (:func:`loss_reads`, :func:`post_writes`) or :class:`EarlyRead` is raised; any other op waits in
    DECODE until the post-op is done, rows x words + 2 + POST_STAGES cycles after its start.

    A GEMM ``behind`` costs its 2 cycles only. The op after it is a post-op that has ``follow`` set:
    that op reads word i of its walk (by column) in the cycle after the GEMM writes it final
    (:func:`reference.gemm.final_writes`), or later, one word a cycle; it is done 2 + POST_STAGES
    cycles after its last read. Or it is a GEMM, which leaves DECODE once the engine takes it
    (:func:`reference.gemm.chain_ready`: the engine chains the two). A post-op with ``beside`` set
    (it reads no result of the running GEMM) does not wait for the engine either. Any other op waits
    in DECODE until the engine is idle, the cycle after the last write. A GEMM started while a
    post-op runs behind must read every operand word that post-op writes after the write
    (:func:`operand_reads`, :func:`post_writes`), or :class:`EarlyRead` is raised. A LOSS ``behind`` costs its 2 cycles,
    and until its last write only a GEMM leaves DECODE (:func:`loss_gemm_delay`).
    """
    R, t, out = plan.geometry.rows, 0, []  # t: the cycle before the op's DECODE
    behind, behind_done = None, None  # the post-op running behind; the first cycle with it done
    written = {}  # the operand words the post-op running behind writes, and when
    engine, finals, gemm_idle = [], None, 0  # the GEMMs so far (M, K, N, take); a GEMM behind's final writes
    loss_done = 0  # a LOSS running behind: the cycle of its last write
    for op in plan.ops:
        kind, start = op["kind"], t
        if behind is not None and not may_pass(op, behind):
            t = max(t, behind_done - 1)  # DECODE waits for done
            behind = behind_done = None
        if kind == Kind.GEMM:
            t = max(t, chain_ready(chain_launches(R, R, engine)) - 1)  # DECODE waits for the engine to take it
        elif not ((op.get("follow") or op.get("beside")) and kind in (Kind.FWD, Kind.DX, Kind.UPDATE)):
            t = max(t, gemm_idle - 1)  # DECODE waits for the engine to be idle
        if kind != Kind.GEMM:
            t = max(t, loss_done)  # DECODE waits for the loss unit
        if kind == Kind.GEMM:
            go = t + 2 + op.get("delay", 0)
            engine.append((op["m"], op["k"], op["n"], go))
            take, launches, last = chain_launches(R, R, engine)[-1]
            assert take == go, "the engine takes a GEMM in its START"
            if behind is not None:  # it reads each word the post-op beside it writes after the write
                _early([(c, (buf, word)) for c, buf, word in operand_reads(op, launches, R)], written, "a GEMM")
            gemm_idle, timeline = last + 1, {"take": take, "launches": launches, "last_write": last}
            if op.get("behind"):
                finals, t = final_writes(R, R, op["m"], op["k"], op["n"], launches), go
            else:
                t = last  # done in its last write; the next DECODE after it
            out.append({"start": start, "end": t, **timeline})
            continue
        elif kind in (Kind.FWD, Kind.DX, Kind.UPDATE):
            go, reads = t + 2, []
            if op.get("follow"):
                if finals is None or not op.get("by_column") or len(finals) > op["m"] * op["k"]:
                    raise PlanError("a post-op that follows a GEMM walks its results by column, right after it")
                # Words past the GEMM's (a ones column) are above the frontier until its last write.
                finals += [gemm_idle - 1] * (op["m"] * op["k"] - len(finals))
                for final in finals:  # word i in the cycle after its final write, one a cycle from go + 1
                    reads.append(max(reads[-1] + 1 if reads else go + 1, final + 1))
                finals = None
            else:
                reads = [go + 1 + i for i in range(op["m"] * op["k"])]
            # done the cycle after its last write (its read + 1 + POST_STAGES); with no words, after go
            done = reads[-1] + 2 + POST_STAGES if reads else go + 1
            if op.get("behind"):
                behind, behind_done, written, t = op, done, post_writes(op, reads), go
                out.append({"start": start, "end": t, "go": go, "done": done})
                continue
            t = done
        elif kind == Kind.LOSS:
            # go in cycle t + 2 + delay; done in its last write, (m + 2)·W + 1 cycles after go
            go = t + 2 + op.get("delay", 0)
            if behind is not None:  # it reads each logit the FWD running behind writes after the write
                _early(loss_reads(op, go), written, "a LOSS")
            done = go + loss_write_cycle(op["m"] - 1, op["k"] - 1, op["k"])
            loss_done, t = (done, go) if op.get("behind") else (loss_done, done)
        else:
            t += 2
        out.append({"start": start, "end": t})
    return out


def step_cycles(plan):
    """The cycles one step of ``plan`` takes on the core (:func:`schedule`)."""
    return schedule(plan)[-1]["end"]


def phase_counts(plan):
    """The per-phase counters' models for one step of ``plan``: ``(gemm, active)``, dicts by phase name.

    The sequencer counts a cycle for the phase of the GEMM it started last (from the cycle after its
    START). ``gemm``: the cycles the engine is busy (``cnt_gemm``), from the cycle after a GEMM's take
    to its last write; a GEMM chained behind another (:func:`schedule`) takes the cycles from the one
    after its own take. Alone, a GEMM is busy :func:`reference.gemm.gemm_cycles`. ``active``: the
    cycles a row of A' enters the array (``cnt_active``), M for each tile (docs/systolic.md), from
    :data:`reference.gemm.ROW_ENTRY` cycles after its launch.
    """
    gemms = [(op, s) for op, s in zip(plan.ops, schedule(plan)) if op["kind"] == Kind.GEMM]
    gemm, active = {name: 0 for name in plan.macs}, {name: 0 for name in plan.macs}
    for i, (op, s) in enumerate(gemms):
        end = min(s["last_write"], gemms[i + 1][1]["take"]) if i + 1 < len(gemms) else s["last_write"]
        gemm[op["phase"].name.lower()] += end - s["take"]
    takes = [s["take"] for _, s in gemms]
    for op, s in gemms:
        for launch in s["launches"]:
            for cycle in range(launch + ROW_ENTRY, launch + ROW_ENTRY + op["m"]):
                later = sum(take < cycle for take in takes) - 1  # the last GEMM started before the cycle
                active[gemms[later][0]["phase"].name.lower()] += 1
    return gemm, active


def pack_op(fields):
    """An op (a dict of field values: enum members or their values) as the integer the program memory holds."""
    for name, v in fields.items():
        shape = Shape.cast(OP_LAYOUT[name].shape)
        v = v.value if isinstance(v, py_enum.Enum) else int(v)
        lo, hi = (-(1 << (shape.width - 1)), 1 << (shape.width - 1)) if shape.signed else (0, 1 << shape.width)
        if not lo <= v < hi:
            raise PlanError(f"op field {name} = {v} does not fit {shape}")
        kinds = OP_LAYOUT[name].shape
        if isinstance(kinds, enum.EnumType) and v not in {member.value for member in kinds}:
            raise PlanError(f"op field {name} = {v} is not a {kinds.__name__}")
    return OP_LAYOUT.const(fields).as_bits()
