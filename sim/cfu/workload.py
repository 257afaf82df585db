"""A TFLM int8 fully-connected layer as a stream of CFU commands.

Per layer: SET the six output-stage registers, then per (sample, output):
MAC4 with funct7=1 on the first four inputs, MAC4 on each further four, and
POST with the bias, whose response is the int8 output.
"""

import numpy as np

from hdl.cfu.core import LANES
from reference.cfu_isa import MAC4_ACCUMULATE, MAC4_FIRST, Funct3, Reg, function_id
from sim.common import pack_words

__all__ = ["fc_commands", "layer_commands"]


def _words(v):
    """Rows of int8 values (length a multiple of the lanes) as rows of MAC4 operand words."""
    return np.array(pack_words(LANES, v), dtype=np.int64).reshape(len(v), -1)


def fc_commands(x, p):
    """Commands computing TFLM's FC ``p`` (a :class:`reference.tflm.FcParams`) on int8 ``x`` (B, in).

    Returns ``(commands, post_indices)``: the response to ``commands[post_indices[b, o]]``
    is output ``[b, o]``. Inputs are zero-padded to a multiple of 4 lanes (a
    zero filter lane adds nothing).
    """
    x = np.asarray(x, dtype=np.int64)
    n_in = x.shape[1]
    pad = (-n_in) % LANES.length
    x_words = _words(np.pad(x, ((0, 0), (0, pad))))
    w_words = _words(np.pad(p.filter, ((0, 0), (0, pad))))
    u32 = lambda v: int(v) & 0xFFFFFFFF
    cmds = [
        (function_id(Funct3.SET, reg), u32(value), 0)
        for reg, value in [
            (Reg.INPUT_OFFSET, p.input_offset),
            (Reg.OUTPUT_MULTIPLIER, p.output_multiplier),
            (Reg.OUTPUT_SHIFT, p.output_shift),
            (Reg.OUTPUT_OFFSET, p.output_offset),
            (Reg.ACT_MIN, p.act_min),
            (Reg.ACT_MAX, p.act_max),
        ]
    ]
    mac_first, mac = function_id(Funct3.MAC4, MAC4_FIRST), function_id(Funct3.MAC4, MAC4_ACCUMULATE)
    post = function_id(Funct3.POST)
    post_indices = np.zeros((len(x), p.filter.shape[0]), dtype=np.int64)
    for b in range(len(x)):
        for o in range(p.filter.shape[0]):
            for k in range(x_words.shape[1]):
                cmds.append((mac_first if k == 0 else mac, u32(x_words[b, k]), u32(w_words[o, k])))
            post_indices[b, o] = len(cmds)
            cmds.append((post, u32(p.bias[o]), 0))
    return cmds, post_indices


def layer_commands(layer):
    """Commands computing a :class:`reference.tflite_model.kernels.GemmLayer` on the CFU.

    ``y[m, n] = POST(bias[n])`` after MAC4 over row m of ``layer.a`` and row n of
    ``layer.filter`` (both zero-padded to a multiple of 4 lanes), channel by
    channel: the output-stage registers are SET once, and the multiplier and
    shift again wherever a channel's differ from the one before (per-channel
    layers). Returns ``(commands, post_indices)`` as :func:`fc_commands` does.
    """
    a = np.asarray(layer.a, dtype=np.int64)
    w = np.asarray(layer.filter, dtype=np.int64)
    pad = (-a.shape[1]) % LANES.length
    a_words = [[int(v) & 0xFFFFFFFF for v in row] for row in _words(np.pad(a, ((0, 0), (0, pad))))]
    w_words = [[int(v) & 0xFFFFFFFF for v in row] for row in _words(np.pad(w, ((0, 0), (0, pad))))]
    u32 = lambda v: int(v) & 0xFFFFFFFF
    set_ = lambda reg, value: (function_id(Funct3.SET, reg), u32(value), 0)
    cmds = [
        set_(Reg.INPUT_OFFSET, layer.input_offset),
        set_(Reg.OUTPUT_OFFSET, layer.output_offset),
        set_(Reg.ACT_MIN, layer.act_min),
        set_(Reg.ACT_MAX, layer.act_max),
    ]
    mac_first, mac = function_id(Funct3.MAC4, MAC4_FIRST), function_id(Funct3.MAC4, MAC4_ACCUMULATE)
    post = function_id(Funct3.POST)
    M, N = a.shape[0], w.shape[0]
    post_indices = np.zeros((M, N), dtype=np.int64)
    current = None
    for n in range(N):
        stage = (int(layer.multiplier[n]), int(layer.shift[n]))
        if stage != current:
            cmds += [set_(Reg.OUTPUT_MULTIPLIER, stage[0]), set_(Reg.OUTPUT_SHIFT, stage[1])]
            current = stage
        wn, bias = w_words[n], u32(layer.bias[n])
        for m in range(M):
            am = a_words[m]
            cmds.append((mac_first, am[0], wn[0]))
            cmds.extend((mac, x, y) for x, y in zip(am[1:], wn[1:]))
            post_indices[m, n] = len(cmds)
            cmds.append((post, bias, 0))
    return cmds, post_indices
