"""sim/objcache.py: a runtime object is compiled once and reused only where the compiler would make the same one."""

import os
import subprocess
import sys
from pathlib import Path

OBJCACHE = Path(__file__).resolve().parents[1] / "sim" / "objcache.py"


def _compile(cwd, store, log, *args):
    """Compile through the cache with a compiler that logs each real compile (not the -E runs)."""
    cc = cwd.parent / "cc.sh"
    cc.write_text(f'#!/bin/sh\ncase " $* " in *" -E "*) ;; *) echo "$*" >> {log};; esac\nexec gcc "$@"\n')
    cc.chmod(0o755)
    env = {**os.environ, "SIM_OBJCACHE_DIR": str(store)}
    subprocess.run([sys.executable, str(OBJCACHE), str(cc), *args], cwd=cwd, env=env, check=True)


def test_one_compile_per_preprocessed_source(tmp_path):
    runtime, store, log = tmp_path / "runtime", tmp_path / "store", tmp_path / "compiles.log"
    runtime.mkdir()
    (runtime / "lib.h").write_text("#define ANSWER 42\n")
    (runtime / "lib.c").write_text('#include "lib.h"\nint answer(void) { return ANSWER; }\n')
    builds = [tmp_path / f"build{i}" for i in range(3)]
    for b in builds[:2]:
        b.mkdir()
        _compile(b, store, log, "-O1", "-MMD", "-c", "-o", "lib.o", str(runtime / "lib.c"))
    assert len(log.read_text().splitlines()) == 1  # the second build copied the first's object
    assert (builds[0] / "lib.o").read_bytes() == (builds[1] / "lib.o").read_bytes()
    assert (builds[1] / "lib.d").read_text() == (builds[0] / "lib.d").read_text()
    (runtime / "lib.h").write_text("#define ANSWER 43\n")  # a header changed: a new compile
    builds[2].mkdir()
    _compile(builds[2], store, log, "-O1", "-MMD", "-c", "-o", "lib.o", str(runtime / "lib.c"))
    _compile(builds[2], store, log, "-O2", "-MMD", "-c", "-o", "lib.o", str(runtime / "lib.c"))  # other flags
    assert len(log.read_text().splitlines()) == 3
    # A build's own sources are compiled every time, and never stored.
    (builds[2] / "model.c").write_text("int model(void) { return 1; }\n")
    for _ in range(2):
        _compile(builds[2], store, log, "-c", "-o", "model.o", "model.c")
    assert len(log.read_text().splitlines()) == 5
    assert len(list(store.rglob("*.o"))) == 3
