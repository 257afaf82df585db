"""The dependency runs one way, sim -> hdl -> reference: the spec in
``reference/`` is plain Python and never loads the design it checks."""

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("amaranth", "hdl", "sim")

# Run in a fresh interpreter: this process has long since imported hdl.
_IMPORT_ALL = """
import importlib, json, pkgutil, sys
import reference
names = [m.name for m in pkgutil.walk_packages(reference.__path__, "reference.")]
for name in names:
    importlib.import_module(name)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {forbidden!r})
print(json.dumps({{"modules": names, "loaded": loaded}}))
"""


def test_reference_modules_load_neither_hdl_nor_amaranth():
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL.format(forbidden=set(FORBIDDEN))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout)
    assert "reference.gemm" in result["modules"] and "reference.cfu_isa" in result["modules"]
    assert result["loaded"] == [], f"importing reference/ loaded {result['loaded']}"


def _imported_roots(path):
    """Top-level packages a file imports anywhere (also inside functions)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((alias.name.split(".")[0], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0], node.lineno


def test_no_reference_file_imports_hdl_or_amaranth():
    # Also catches imports the first test cannot reach (inside functions).
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {root}"
        for path in sorted((ROOT / "reference").rglob("*.py"))
        for root, line in _imported_roots(path)
        if root in FORBIDDEN
    ]
    assert bad == []
