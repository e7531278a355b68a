"""The set list recipe: sections in order, a continuing section hears the exact tail of the last."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from recipe_harness import RecipeDaemon, run_recipe

from protocol.messages import Continue, Generate

SET = """
model = "debug/musicgen"
context_s = 0.5

[[section]]
name = "intro"
prompt = "ambient pads"
duration_s = 1.0
seed = 1

[[section]]
name = "groove"
prompt = "driving house groove"
duration_s = 1.5
continue = true
temperature = 0.8

[[section]]
name = "outro"
prompt = "sparse piano"
duration_s = 0.5
seed = 3
"""


def test_sections_render_in_order_and_join(recipe_daemon: RecipeDaemon, tmp_path: Path) -> None:
    setlist = tmp_path / "gig.toml"
    setlist.write_text(SET)
    before = set(recipe_daemon.log.requests)
    done = run_recipe("setlist", str(setlist), "--out", str(tmp_path / "set"), "--join", "--play",
                      "--endpoint", recipe_daemon.thread.zmq)
    assert done.returncode == 0, done.stderr
    names = ["01-intro.wav", "02-groove.wav", "03-outro.wav"]
    sections = [sf.read(tmp_path / "set" / name, dtype="float32") for name in names]
    assert [(len(audio), rate) for audio, rate in sections] == [(32000, 32000), (48000, 32000), (16000, 32000)]
    whole, rate = sf.read(tmp_path / "set" / "set.wav", dtype="float32")
    np.testing.assert_array_equal(whole, np.concatenate([audio for audio, _ in sections]))

    requests = {job: r for job, r in recipe_daemon.log.requests.items() if job not in before}
    assert sorted(requests) == ["gig-01-intro", "gig-02-groove", "gig-03-outro"]
    intro, groove, outro = (requests[job] for job in sorted(requests))
    assert isinstance(intro, Generate) and intro.seed == 1 and intro.play is True
    assert isinstance(groove, Continue) and groove.prompt == "driving house groove" and groove.temperature == 0.8
    # The continuing section heard exactly the last 0.5 s of the intro.
    np.testing.assert_array_equal(groove.audio.samples[0], sections[0][0][-16000:])
    assert isinstance(outro, Generate) and outro.seed == 3 and outro.model == "debug/musicgen"


def test_a_bad_set_list_names_its_problem(recipe_daemon: RecipeDaemon, tmp_path: Path) -> None:
    setlist = tmp_path / "bad.toml"
    setlist.write_text('[[section]]\nprompt = "x"\nduration_s = 1\ncontinue = true\n')
    done = run_recipe("setlist", str(setlist), "--endpoint", recipe_daemon.thread.zmq, "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and "first section has nothing to continue" in done.stderr
    setlist.write_text('[[section]]\nprompt = "x"\nduration = 1\n')
    done = run_recipe("setlist", str(setlist), "--endpoint", recipe_daemon.thread.zmq, "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and "unknown key 'duration'" in done.stderr


def test_the_documented_example_is_a_valid_set_list(tmp_path: Path) -> None:
    from clients.examples import setlist

    example = setlist.__doc__.split("# set.toml\n", 1)[1].split("\n\nSections are", 1)[0]
    path = tmp_path / "set.toml"
    path.write_text("\n".join(line.removeprefix("    ") for line in example.splitlines()))
    parsed = setlist.read_setlist(path)
    assert [s.name for s in parsed.sections] == ["intro", "groove"] and parsed.sections[1].continue_
    assert parsed.model == "facebook/musicgen-small" and parsed.context_s == 6


def test_help_shows_the_example_as_written(capsys) -> None:
    from clients.examples import setlist

    with pytest.raises(SystemExit):
        setlist.main(["--help"])
    shown = capsys.readouterr().out
    assert '    [[section]]\n    name = "intro"' in shown and "continue = true" in shown
