"""The testbench layer every cocotb bench here is built on.

One sampling convention for all of them (:mod:`.clock`): inputs change at
the clock's falling edge; outputs a register drives are sampled at the
falling edge too; an output that depends on this cycle's inputs (a ``ready``
computed from ``valid``) is sampled at ``ReadOnly`` after that falling edge.
Either way, what a bench sees in a cycle is what the next rising edge
registers, on Icarus and on Verilator alike.
"""

from .clock import PERIOD_NS, cycle_now, edge, reset, start_clock
from .lanes import pack_value, pack_words, unpack_value, unpack_words
from .memport import read_words, write_words
from .scoreboard import InOrderScoreboard, Mismatch
from .stream import StreamSink, StreamSource, pauses

__all__ = [
    "PERIOD_NS",
    "start_clock",
    "reset",
    "cycle_now",
    "edge",
    "pack_words",
    "unpack_words",
    "pack_value",
    "unpack_value",
    "write_words",
    "read_words",
    "Mismatch",
    "InOrderScoreboard",
    "StreamSource",
    "StreamSink",
    "pauses",
]
