"""`make verilog`'s CFU Playground kit: the module, its ports, the lint."""

import re
import subprocess

from hdl.cfu.kit import write_cfu_kit
from hdl.generate import lint_waivers, to_verilog
from sim.runner import ensure_simulator

CFU_PLAYGROUND_PORTS = {
    "cmd_valid": ("input", 1),
    "cmd_ready": ("output", 1),
    "cmd_payload_function_id": ("input", 10),
    "cmd_payload_inputs_0": ("input", 32),
    "cmd_payload_inputs_1": ("input", 32),
    "rsp_valid": ("output", 1),
    "rsp_ready": ("input", 1),
    "rsp_payload_outputs_0": ("output", 32),
    "reset": ("input", 1),
    "clk": ("input", 1),
}


def _ports(verilog, module):
    body = verilog[verilog.index(f"module {module}(") :]
    body = body[: body.index("endmodule")]
    ports = {}
    for direction, msb, name in re.findall(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?(\w+);", body, re.M):
        ports[name] = (direction, int(msb) + 1 if msb else 1)
    return ports


def test_kit_files_and_ports(tmp_path):
    paths = write_cfu_kit(tmp_path)
    assert sorted(p.name for p in paths) == [
        "README.md",
        "cfu.v",
        "cfu_emu.c",
        "cfu_gemm.h",
        "cfu_gemm_emu.c",
        "cfu_ops.h",
        "fc_gemm.c",
        "fc_gemm.h",
        "fc_kernel.c",
        "fc_kernel.h",
    ]
    verilog = (tmp_path / "cfu.v").read_text()
    assert _ports(verilog, "Cfu") == CFU_PLAYGROUND_PORTS
    assert verilog == to_verilog("gemm_cfu")[1]  # the combined unit: the MAC4 family and the GEMM ops
    assert "/work" not in verilog and "src =" not in verilog  # no checkout paths in the text


def test_cfu_lints_clean_with_only_the_width_waiver(tmp_path):
    write_cfu_kit(tmp_path)
    ensure_simulator("verilator")
    assert lint_waivers("gemm_cfu") == ["WIDTH"]
    result = subprocess.run(
        ["verilator", "--lint-only", "-Wno-WIDTH", "--top-module", "Cfu", str(tmp_path / "cfu.v")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "%Warning" not in result.stderr


def test_converted_verilog_is_cached_by_its_sources(tmp_path, monkeypatch):
    """A design's text comes back from build/cache/verilog/ in a process that has not converted it, as it
    was converted; a change to the sources' digest converts again and drops the older sources' texts."""
    import hdl.generate as generate

    monkeypatch.setattr(generate, "_cache_root", lambda: tmp_path)
    monkeypatch.setattr(generate, "_CONVERTED", {})
    module, text = to_verilog("cfu")
    (kept,) = tmp_path.glob("*/*.v")
    assert kept.read_text() == text and module == "Cfu"

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again, with the text in the cache")

    monkeypatch.setattr(generate, "_CONVERTED", {})  # a new process
    monkeypatch.setattr(generate.verilog, "convert", no_conversion)
    assert to_verilog("cfu") == ("Cfu", text)

    monkeypatch.undo()
    monkeypatch.setattr(generate, "_cache_root", lambda: tmp_path)
    monkeypatch.setattr(generate, "_CONVERTED", {})
    monkeypatch.setattr(generate, "_sources_digest", lambda: "f" * 64)  # a source edited
    assert to_verilog("cfu") == ("Cfu", text)
    assert [p.relative_to(tmp_path).parts[0] for p in tmp_path.glob("*/*.v")] == ["f" * 16]
