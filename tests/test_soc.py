"""The CFUs under a real RISC-V core: VexRiscv_FullCfu runs the digits-MLP
firmware, rebuilt from source here, in plain C and with the MAC4 CFU; every
int8 activation of both layers is checked against the golden model, and the
MAC4 CFU must be at least 3x faster than plain C."""

import json
import subprocess
import sys

from sim.soc.run import run_soc


def test_firmware_on_vexriscv(simulator, report):
    r = run_soc(simulator, images=1)
    assert r["exit_code"] == 0, f"the firmware exited with 0x{r['exit_code']:08x}"
    assert r["bit_exact"], r["mismatches"]
    assert r["speedup"] >= 3.0, f"speedup {r['speedup']:.2f}"
    report(
        f"soc on {simulator}: 1 image, software {r['software_cycles']:.0f} cycles, MAC4 {r['cfu_cycles']:.0f} "
        f"cycles, speedup {r['speedup']:.2f}x, bit-exact"
    )


def test_soc_json_keys():
    result = subprocess.run(
        [sys.executable, "-m", "sim", "soc", "--samples", "1", "--json"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) == {"images", "software_cycles", "cfu_cycles", "speedup", "bit_exact", "instructions_retired"}
    assert out["bit_exact"] is True and out["images"] == 1
