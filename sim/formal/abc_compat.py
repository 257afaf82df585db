"""Debian's ``yosys-abc`` for SymbiYosys's ``abc`` engines: run as ``ABC``.

yowasp-sby asks ABC for ``pdr -v -l``; Debian 12's ABC (with yosys 0.23)
predates ``-l`` (it only adds log lines), so this drops it and runs the rest.
"""

import os
import shutil
import sys


def main(argv):
    abc = shutil.which("yosys-abc")
    if abc is None:
        print("yosys-abc is missing (Debian's yosys package: run `make install`)", file=sys.stderr)
        return 127
    argv = list(argv)
    if len(argv) >= 2 and argv[0] == "-c":
        argv[1] = argv[1].replace("pdr -v -l", "pdr -v")
    os.execv(abc, [abc, *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
