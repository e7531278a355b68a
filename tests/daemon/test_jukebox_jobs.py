"""Jukebox jobs built at the boundary: model choice, codes files of earlier jobs, limits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from daemon.jukebox_jobs import DEFAULT_JUKEBOX_MODEL, codes_path_for, default_jukebox_model, new_jukebox_job
from protocol.errors import DurationTooLong, NotFound
from protocol.messages import JukeboxSample, JukeboxUpsample


def _job(request, out_dir: Path, **fields):
    fields = {"id": "new-job", "save": False, **fields}
    return new_jukebox_job(request, out_dir=out_dir, max_duration_s=60.0, check_source=lambda source: None,
                           default_model=lambda: "the/default", **fields)


def test_upsampling_an_earlier_job_uses_the_model_that_sampled_its_codes(tmp_path: Path) -> None:
    np.savez(codes_path_for(tmp_path, "take1"), top=np.arange(4), model=np.array("openai/jukebox-5b-lyrics"))
    np.savez(codes_path_for(tmp_path, "bare"), top=np.arange(4))
    job = _job(JukeboxUpsample(source="take1"), tmp_path)
    assert job.model == "openai/jukebox-5b-lyrics" and job.source_codes == codes_path_for(tmp_path, "take1")
    assert _job(JukeboxUpsample(source="take1", model="debug/jukebox"), tmp_path).model == "debug/jukebox"
    assert _job(JukeboxUpsample(source="bare"), tmp_path).model == "the/default"
    with pytest.raises(NotFound, match="no codes of a job 'nothing'"):
        _job(JukeboxUpsample(source="nothing"), tmp_path)


def test_a_saved_sample_keeps_its_codes_under_its_job_id(tmp_path: Path) -> None:
    assert _job(JukeboxSample(duration_s=1.0), tmp_path, save=True).codes_path == tmp_path / "new-job.codes.npz"
    assert _job(JukeboxSample(duration_s=1.0), tmp_path).codes_path is None
    with pytest.raises(DurationTooLong):
        _job(JukeboxSample(duration_s=61.0), tmp_path)


def test_the_default_jukebox_model(tmp_path: Path) -> None:
    assert default_jukebox_model("debug/musicgen", ["debug/musicgen", "debug/jukebox"]) == "debug/jukebox"
    assert default_jukebox_model("openai/jukebox-5b-lyrics", ["debug/jukebox"]) == "openai/jukebox-5b-lyrics"
    assert default_jukebox_model("facebook/musicgen-small", []) == DEFAULT_JUKEBOX_MODEL
