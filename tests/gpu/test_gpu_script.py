"""The GPU check's script (bench/gpu) on the CPU: its dry run goes through every section (parity with
transformers, each mode through the streaming path, one window of several prompts, batched streams)
and writes the JSON the GPU run writes. The GPU figures themselves come from `bash bench/gpu/run.sh`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_dry_run_measures_every_section_and_writes_its_json(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "bench.gpu.measure", str(out), "--dry-run",
                           "--cache-dir", str(tmp_path / "models")],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["errors"] == []
    assert summary["float32_codes_equal_generate"] is True
    assert summary["stream_audio_snr_db"] >= 60  # the streaming codec against generate()'s one-shot decode
    # each mode, then the fastest again with its decode on a thread of its own
    assert set(summary["modes"]) - {"float32", "bfloat16"} in ({"float32 codec-thread"}, {"bfloat16 codec-thread"})
    assert summary["float32_arena_codes_equal_generate"] is True  # the debug preset's codes, through the arena
    assert summary["batch_arena"]["rows"] == 4  # the batch section's streams stepped in the slot arena
    assert summary["modes"]["float32"]["agreement"] == 1.0 and summary["modes"]["float32"]["steps_per_s"] > 0
    report = json.loads((out / "gpu.json").read_text())
    sections = report["sections"]
    assert {name for name, value in sections.items() if value.get("status") == "ok"} >= {
        "env", "parity", "modes", "rows", "arena", "batch", "auto"}
    assert sections["auto"]["engine"] and sections["auto"]["rtf"] > 0
    streams = sections["batch"]["streams"]
    assert set(streams) == {"1", "2"} and all(row["codes_equal_alone"] for row in streams.values())
    assert all(row["aggregate_rtf"] > 0 for row in sections["rows"]["prompts"].values())


def test_run_sh_is_valid_bash():
    assert subprocess.run(["bash", "-n", str(ROOT / "bench" / "gpu" / "run.sh")]).returncode == 0
