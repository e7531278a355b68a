"""`riffd pull`: a typo is unknown_model as `load` and `render` say, and offline it says what to change."""

from __future__ import annotations

import pytest

from clients.cli.main import main


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """HF_HUB_OFFLINE=1 with an empty cache of its own: nothing here may reach the network."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.mark.parametrize("model_id", ["nope", "debug/nope", "/definitely/not/here"])
def test_an_id_that_is_no_preset_folder_or_hub_id_is_unknown(offline_hub, capsys, model_id: str) -> None:
    assert main(["pull", model_id]) == 2
    err = capsys.readouterr().err
    assert err.startswith("riffd: error: ") and err.rstrip().endswith("[unknown_model]"), err
    assert "riffd pull" not in err


def test_offline_pull_of_an_uncached_hub_id_says_to_go_online_not_to_pull(offline_hub, capsys) -> None:
    assert main(["pull", "facebook/musicgen-small"]) == 2
    err = capsys.readouterr().err
    assert "facebook/musicgen-small" in err and "unset" in err and "HF_HUB_OFFLINE" in err, err
    assert err.rstrip().endswith("[model_unavailable]") and "riffd pull" not in err


def test_offline_pull_of_a_cached_hub_id_and_of_a_preset_succeed(offline_hub, riffd_cache, capsys) -> None:
    from daemon.models.musicgen.presets import ensure_preset

    # A snapshot laid out as huggingface_hub lays it out, as an earlier online pull left it.
    snapshot = offline_hub / "models--acme--tiny-musicgen" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for source in ensure_preset("debug/musicgen", riffd_cache).iterdir():
        (snapshot / source.name).symlink_to(source)
    (offline_hub / "models--acme--tiny-musicgen" / "refs").mkdir()
    (offline_hub / "models--acme--tiny-musicgen" / "refs" / "main").write_text("0" * 40)
    assert main(["pull", "acme/tiny-musicgen"]) == 0
    assert capsys.readouterr().out.strip() == f"acme/tiny-musicgen: {snapshot}"
    assert main(["pull", "debug/musicgen"]) == 0
    assert "nothing to download" in capsys.readouterr().err
