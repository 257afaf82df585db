"""The Nexys A7 build plan: the files Vivado needs, for the right part and pins."""

import pytest

from hdl.boards.nexys_a7 import SEGMENTS, SELFTEST_CLOCK_HZ, write_build_plan


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    out = tmp_path_factory.mktemp("nexys_a7")
    return {p.name: p for p in write_build_plan(out, rows=2, cols=2)}


def test_plan_files(plan):
    assert {
        "nexys_a7_selftest.v",
        "nexys_a7_selftest.xdc",
        "nexys_a7_selftest.tcl",
        "build_nexys_a7_selftest.sh",
    } <= set(plan)
    tcl = plan["nexys_a7_selftest.tcl"].read_text()
    assert "-part xc7a100tcsg324-1" in tcl and "write_bitstream" in tcl
    verilog = plan["nexys_a7_selftest.v"].read_text()
    assert "module \\nexys_a7_selftest.bist.engine.array " in verilog  # the self-test and its array


def test_plan_pins(plan):
    xdc = plan["nexys_a7_selftest.xdc"].read_text()
    for pin in [
        "E3",  # 100 MHz clock
        "C12",  # CPU RESET: re-runs the self-test
        "H17",
        "K15",
        "J13",  # LD0 passed, LD1 failed, LD2 running
        "T10",
        "R10",
        "K16",
        "K13",
        "P15",
        "T11",
        "L18",  # segments a..g
        "J17",
        "J18",
        "T9",
        "J14",
        "P14",
        "T14",
        "K2",
        "U13",
    ]:  # digit anodes
        assert f"LOC {pin} " in xdc, pin


def test_plan_clock(plan):
    """The self-test runs from the MMCM's 50 MHz, and the XDC declares that clock, not only the board's 100 MHz."""
    assert SELFTEST_CLOCK_HZ == 50_000_000
    verilog = plan["nexys_a7_selftest.v"].read_text()
    mmcm = verilog[verilog.index("MMCME2_BASE #(") :]
    mmcm = mmcm[: mmcm.index(");")]
    for param in [".CLKIN1_PERIOD(10.0)", ".CLKFBOUT_MULT_F(10.0)", ".CLKOUT0_DIVIDE_F(20.0)", ".DIVCLK_DIVIDE(32'd1)"]:
        assert param in mmcm, param
    assert "BUFG " in verilog
    xdc = [line for line in plan["nexys_a7_selftest.xdc"].read_text().splitlines() if line.startswith("create_clock")]
    assert len(xdc) == 2, xdc
    assert any("-period 10.0 " in line and "clk100" in line for line in xdc), xdc  # the oscillator
    assert any("-period 20.0 " in line and "clk100" not in line for line in xdc), xdc  # the self-test's domain


def test_hex_segments():
    # a..g as bits 0..6: "0" lights all but g, "1" only b and c, "8" all.
    assert SEGMENTS[0] == 0b0111111 and SEGMENTS[1] == 0b0000110 and SEGMENTS[8] == 0b1111111
    assert len(set(SEGMENTS)) == 16
