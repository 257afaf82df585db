"""Words of lanes, packed as the RTL's own layouts say.

A port of shape ``data.ArrayLayout(signed(8), R)`` carries lane ``i`` in bits
``[8i+7:8i]``; the widths and signedness come from the layout the design
declares, never retyped here. Packing is NumPy over whole transfers, so a
bench spends its time in the simulator, not here.
"""

import numpy as np
from amaranth.hdl import Shape
from amaranth.lib import data

__all__ = ["pack_words", "unpack_words", "pack_value", "unpack_value"]


def _lane_shape(layout):
    if not isinstance(layout, data.ArrayLayout):
        raise TypeError(f"expected a data.ArrayLayout, not {layout!r}")
    shape = Shape.cast(layout.elem_shape)
    return shape.width, shape.signed, layout.length


def pack_words(layout, words):
    """Rows of lane values (``(n, lanes)``) as the integers a port of ``layout`` takes, lane 0 lowest."""
    width, _, length = _lane_shape(layout)
    words = np.asarray(words, dtype=np.int64).reshape(-1, length)
    mask = (1 << width) - 1
    out = []
    for row in (words & mask).tolist():
        v = 0
        for i, lane in enumerate(row):
            v |= lane << (width * i)
        out.append(v)
    return out


def unpack_words(layout, values):
    """Integers read from a port of ``layout`` as rows of lane values (``(n, lanes)``, int64)."""
    width, signed, length = _lane_shape(layout)
    mask = (1 << width) - 1
    rows = [[(int(v) >> (width * i)) & mask for i in range(length)] for v in values]
    out = np.array(rows, dtype=np.int64).reshape(-1, length)
    if signed:
        out = np.where(out >> (width - 1) & 1, out - (1 << width), out)
    return out


def pack_value(layout, value):
    """Any layout's value (a dict for a struct, a list for an array) as the port's integer."""
    return layout.const(value).as_bits()


def unpack_value(layout, bits):
    """A port's integer as a view of ``layout``: fields by name (``v["m"]``) or index."""
    return layout.from_bits(int(bits))
