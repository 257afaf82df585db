"""A weight-stationary R x C systolic array with double-buffered weights.

PE (i, j) holds two weights, bank 0 and bank 1. Activations enter row i at
the left and move one PE right per cycle; partial sums start at 0 at the top
and move one PE down per cycle; column j's sum leaves at the bottom. Each
activation carries a *bank* bit (Gemmini's ``propagate``): PE (i, j)
multiplies it by the weight in that bank, so the switch to a new tile's
weights travels with the data wavefront, and a tile's weights can be written
into the idle bank while the previous tile still streams.

Timing, with ``t`` the cycle in which ``a_data`` is presented:

* the input vector is skewed inside: row ``i`` reaches PE (i, 0) in cycle
  ``t + i``, PE (i, j) multiplies in cycle ``t + i + j`` into a product
  register and adds the product to the sum from above in the next cycle;
* the column sums are deskewed inside: ``out_data`` holds the C sums of that
  input vector in cycle ``t + latency``, ``latency = R + C``;
* ``w_en`` in cycle ``x`` writes ``w_data`` (R weights, one per row) into bank
  ``w_bank`` of column ``w_col``; PE (i, w_col) uses it from cycle ``x + 1``.

Each PE but (0, 0) selects its weight a cycle early into a register (the bank
it will see is its left neighbour's, or its skew stage's, now; a write is
forwarded from ``w_data``), so that its multiplier has registers only at its
inputs: in a large design the two weight banks' mux and the bank signal's
fan-out are off the path into the DSP. PE (0, 0)'s bank is the input itself.

With ``dsp_pairs``, the PEs of columns 2k and 2k + 1 share one multiplier,
as in Xilinx's INT8 packing (WP486): the activation that PE (i, 2k) holds in
cycle ``u`` is the one PE (i, 2k + 1) will hold in ``u + 1``, so one signed
8 × 25 product ``a · (w_2k · 2^16 + w_2k+1)`` (a DSP48E1's 25 × 18 multiplier)
gives both: its low 16 bits, signed, are ``a · w_2k+1`` (|a · w| ≤ 2^14), and
its bits 16 and up, plus bit 15 (the borrow of a negative low half), are
``a · w_2k``. The product is registered as every PE's is; the odd column's
half waits one more cycle, so every sum and every latency is unchanged. PE (i, 2k + 1)'s weight is read
in cycle ``u`` as it will be in ``u + 1``: a write of that column's bank in
cycle ``u`` is forwarded from ``w_data``, since the engine writes a column's
weights just before the wavefront reaches it.

The data registers (activations, weights, products, sums) have no reset: every
sum is of one wavefront's products, so what they hold at a reset drains out
with the wavefronts before the next GEMM's, whose rows alone are written, and a
tile's weights are written before its wavefront reads them. Only the bank bits
are reset.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from reference.gemm import array_latency

__all__ = ["SystolicArray"]


class SystolicArray(wiring.Component):
    """Parameters
    ----------
    rows, cols : int
        R (the reduction, K, dimension of a weight tile) and C (the N dimension).
    stuck_pe : (int, int) or None
        Fault injection, for testing self-tests: that PE's weights are stuck at 0.
    dsp_pairs : bool
        Two PEs of a row, columns 2k and 2k + 1, share one multiplier (above).

    Attributes
    ----------
    a_valid, a_bank, a_data : in
        An activation vector (R int8, row i = ``a_data[i]``), its weight bank.
        Invalid vectors enter as zeros.
    w_en, w_bank, w_col, w_data : in
        Write one column of weights (R int8) into one bank.
    out_data : out
        C int32 column sums, ``latency`` cycles after the vector entered.
    """

    def __init__(self, rows, cols, stuck_pe=None, dsp_pairs=False):
        if not (isinstance(rows, int) and isinstance(cols, int) and rows >= 1 and cols >= 1):
            raise ValueError(f"rows and cols must be positive integers, not {rows!r} x {cols!r}")
        if stuck_pe is not None and not (0 <= stuck_pe[0] < rows and 0 <= stuck_pe[1] < cols):
            raise ValueError(f"stuck_pe {stuck_pe!r} is outside the {rows}x{cols} array")
        self.rows, self.cols = rows, cols
        self.stuck_pe = tuple(stuck_pe) if stuck_pe is not None else None
        self.dsp_pairs = bool(dsp_pairs)
        super().__init__(
            {
                "a_valid": In(1),
                "a_bank": In(1),
                "a_data": In(data.ArrayLayout(signed(8), rows)),
                "w_en": In(1),
                "w_bank": In(1),
                "w_col": In(range(max(cols, 2))),  # at least 1 bit: no zero-width port
                "w_data": In(data.ArrayLayout(signed(8), rows)),
                "out_data": Out(data.ArrayLayout(signed(32), cols)),
            }
        )

    @property
    def latency(self):
        """Cycles from an input vector to its deskewed column sums."""
        return array_latency(self.rows, self.cols)

    def elaborate(self, platform):
        m = Module()
        R, C = self.rows, self.cols

        # Skew: row i is delayed i cycles; an invalid vector enters as zeros.
        edge_a, edge_bank, edge_bank_early = [], [], []
        for i in range(R):
            a = Signal(signed(8), name=f"skew_a_{i}_0")
            bank = Signal(name=f"skew_bank_{i}_0")
            m.d.comb += [a.eq(Mux(self.a_valid, self.a_data[i], 0)), bank.eq(self.a_bank)]
            bank_prev = None  # row 0's bank is the input itself: not known a cycle early
            for d in range(i):
                a_next = Signal(signed(8), name=f"skew_a_{i}_{d + 1}", reset_less=True)
                bank_next = Signal(name=f"skew_bank_{i}_{d + 1}")
                m.d.sync += [a_next.eq(a), bank_next.eq(bank)]
                bank_prev = bank
                a, bank = a_next, bank_next
            edge_a.append(a)
            edge_bank.append(bank)
            edge_bank_early.append(bank_prev)

        psum = [[Signal(signed(32), name=f"psum_{i}_{j}", reset_less=True) for j in range(C)] for i in range(R)]
        for i in range(R):
            a_in, bank_in = edge_a[i], edge_bank[i]
            # The bank PE (i, 0) uses in the next cycle: the skew chain's stage before its last.
            bank_early = edge_bank_early[i]
            w = []  # w[j][bank]
            for j in range(C):
                w.append([Signal(signed(8), name=f"w{b}_{i}_{j}", reset_less=True) for b in (0, 1)])
                for b in (0, 1):
                    with m.If(self.w_en & (self.w_col == j) & (self.w_bank == b)):
                        m.d.sync += w[j][b].eq(0 if self.stuck_pe == (i, j) else self.w_data[i])
            paired = None  # the odd column's product, computed by its left neighbour a cycle before
            for j in range(C):
                above = psum[i - 1][j] if i else 0
                weight = lambda j, bank=bank_in, w=w: Mux(bank, w[j][1], w[j][0])
                # Each product is registered and added to the sum from above a cycle later.
                if paired is not None:
                    m.d.sync += psum[i][j].eq(above + paired)
                    paired = None
                elif self.dsp_pairs and j + 1 < C:
                    packed = Signal(signed(25), name=f"packed_{i}_{j}")
                    prod = Signal(signed(33), name=f"prod_{i}_{j}", reset_less=True)
                    paired = Signal(signed(16), name=f"paired_{i}_{j + 1}", reset_less=True)
                    # Column j + 1's weight as it will be next cycle: a write in this cycle forwarded.
                    writing = self.w_en & (self.w_col == j + 1) & (self.w_bank == bank_in)
                    incoming = 0 if self.stuck_pe == (i, j + 1) else self.w_data[i]
                    odd = Mux(writing, incoming, weight(j + 1))
                    m.d.comb += packed.eq((weight(j) << 16) + odd)
                    m.d.sync += [
                        prod.eq(a_in * packed),
                        psum[i][j].eq(above + (prod >> 16) + prod[15]),
                        paired.eq(prod[:16].as_signed()),
                    ]
                else:
                    prod = Signal(signed(16), name=f"prod_{i}_{j}", reset_less=True)
                    if bank_early is None:
                        w_use = weight(j)
                    else:
                        # The weight this PE multiplies by in the next cycle, selected a cycle
                        # early (the bank it will see is its left neighbour's now, and a write in
                        # this cycle is forwarded), so that only a register feeds the multiplier.
                        w_use = Signal(signed(8), name=f"wsel_{i}_{j}", reset_less=True)
                        incoming = 0 if self.stuck_pe == (i, j) else self.w_data[i]
                        nxt = [
                            Mux(self.w_en & (self.w_col == j) & (self.w_bank == b), incoming, w[j][b]) for b in (0, 1)
                        ]
                        m.d.sync += w_use.eq(Mux(bank_early, nxt[1], nxt[0]))
                    m.d.sync += [prod.eq(a_in * w_use), psum[i][j].eq(above + prod)]
                if j < C - 1:
                    a_out = Signal(signed(8), name=f"a_{i}_{j}", reset_less=True)
                    bank_out = Signal(name=f"bank_{i}_{j}")
                    m.d.sync += [a_out.eq(a_in), bank_out.eq(bank_in)]
                    a_in, bank_in, bank_early = a_out, bank_out, bank_in

        # Deskew: column j is delayed C - 1 - j cycles.
        for j in range(C):
            s = psum[R - 1][j]
            for d in range(C - 1 - j):
                s_next = Signal(signed(32), name=f"deskew_{j}_{d}", reset_less=True)
                m.d.sync += s_next.eq(s)
                s = s_next
            m.d.comb += self.out_data[j].eq(s)
        return m
