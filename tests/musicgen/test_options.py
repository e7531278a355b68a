"""Engine options are torch-free: the daemon's config validates `--engine` without loading PyTorch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from daemon.models.musicgen.options import WEIGHT_FORMATS, EngineOptions
from protocol.errors import InvalidArgument


def test_config_validation_does_not_import_torch() -> None:
    code = ("import sys; from daemon.config import build_config; build_config({'engine': 'int8+nowarmup'}); "
            "import daemon.models.musicgen.options; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_every_format_has_a_compute_dtype() -> None:
    from daemon.models.musicgen.speed import COMPUTE_DTYPES

    assert set(COMPUTE_DTYPES) == set(WEIGHT_FORMATS)


def test_bad_engine_settings_are_refused_by_the_config() -> None:
    from daemon.config import build_config

    with pytest.raises(InvalidArgument, match="format is one of"):
        build_config({"engine": "int2"})
    with pytest.raises(InvalidArgument, match="flag"):
        build_config({"engine": "int8+turbo"})
    # Device checks take a device type as well as a torch.device.
    with pytest.raises(InvalidArgument):
        EngineOptions(weights="int8").validate("cuda")
    assert EngineOptions.parse("float32+draft").validate("cpu").draft
