"""A compiler launcher for Verilator's ``OBJCACHE`` hook: one compile of each runtime object for every build.

Each Verilator build compiles the same runtime into its own directory (``verilated.cpp``,
``verilated_vpi.cpp``, ``verilated_threads.cpp``, ``verilated_dpi.cpp``, cocotb's
``verilator.cpp``): about 5 CPU-seconds a build, most of a small design's build. Like
ccache's preprocessor mode, this keys an object on the preprocessed source and the
command line, so an object is reused only where the compiler would have made the same
one; a model's own files (in the build directory) are compiled as usual.

Run as ``python objcache.py CXX ARGS...`` (stdlib only: the build's ``make`` runs it).
The store is ``$SIM_OBJCACHE_DIR``; entries are written to a temporary name and renamed,
so concurrent builds never see half an object.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def _source_and_output(args):
    """``(source, object)`` of a single-source ``-c`` compile, or None."""
    if "-c" not in args:
        return None
    sources = [a for a in args if a.endswith((".cpp", ".cc", ".c")) and not a.startswith("-")]
    if len(sources) != 1:
        return None
    source = sources[0]
    if "-o" in args:
        output = args[args.index("-o") + 1]
    else:
        output = Path(source).with_suffix(".o").name
    return source, output


def _cacheable(source):
    """Sources outside the build directory: the runtime's, the same for every build."""
    path = Path(source).resolve()
    return path.is_absolute() and Path.cwd().resolve() not in path.parents


def _key(compiler, args, source, output):
    """The preprocessed source and every flag but the output's name and dependency-file options."""
    flags, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in ("-o", "-MF", "-MT", "-MQ"):
            skip = True
        elif a not in ("-c", "-MMD", "-MD", "-MP"):
            flags.append(a)
    pre = subprocess.run([compiler, *flags, "-E", source], capture_output=True, check=True).stdout
    h = hashlib.sha256()
    h.update("\0".join([compiler, *flags, Path(output).name]).encode())
    h.update(pre)
    return h.hexdigest()


def _install(src, dst):
    """Copy ``src`` to ``dst`` through a temporary file beside ``dst`` and a rename."""
    fd, tmp = tempfile.mkstemp(dir=Path(dst).parent, prefix=".objcache-")
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv):
    compiler, args = argv[0], argv[1:]
    store = os.environ.get("SIM_OBJCACHE_DIR")
    job = _source_and_output(args)
    if not store or job is None or not _cacheable(job[0]):
        return subprocess.run(argv).returncode
    source, output = job
    dep = str(Path(output).with_suffix(".d")) if "-MMD" in args or "-MD" in args else None
    try:
        key = _key(compiler, args, source, output)
    except subprocess.CalledProcessError:
        return subprocess.run(argv).returncode  # let the compiler say what is wrong
    entry = Path(store) / key[:2] / key
    if entry.with_suffix(".o").exists() and (dep is None or entry.with_suffix(".d").exists()):
        _install(entry.with_suffix(".o"), output)
        if dep:
            _install(entry.with_suffix(".d"), dep)
        return 0
    code = subprocess.run(argv).returncode
    if code == 0:
        entry.parent.mkdir(parents=True, exist_ok=True)
        if dep:  # the dependency file first: an object in the store always has its .d
            _install(dep, entry.with_suffix(".d"))
        _install(output, entry.with_suffix(".o"))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
