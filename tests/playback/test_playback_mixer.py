"""Voices and the mixer driven block by block, as the sound card drives them (no PortAudio here)."""

from __future__ import annotations

import numpy as np
import pytest

from daemon.audio.playback.mixer import Mixer
from daemon.audio.playback.voice import Voice
from daemon.tempo.timeline import TimelineState
from signals import chirp, noise, ser_db, stream_reference

DEVICE_RATE = 48000
BLOCK = 256


def make_voice(job: str = "a", rate: int = 32000, channels: int = 1, *, buffer_frames: int = 4800,
               capacity_frames: int = 48000, fade_frames: int = 240, gain: float = 1.0) -> Voice:
    return Voice(job, rate, channels, device_rate=DEVICE_RATE, device_channels=2, start_frames=buffer_frames,
                 capacity_frames=capacity_frames, fade_frames=fade_frames, gain_ramp_frames=480, gain=gain)


def run_blocks(mixer: Mixer, voices: list[Voice], blocks: int) -> np.ndarray:
    """Feed, then render `blocks` blocks; the output `[frames, 2]`."""
    out = []
    for _ in range(blocks):
        for voice in voices:
            voice.feed()
        block = np.full((BLOCK, 2), np.nan, dtype=np.float32)  # render must overwrite every sample
        mixer.render(block)
        out.append(block)
    return np.concatenate(out)


def test_voice_plays_the_continuous_stream_after_a_silent_lead_in() -> None:
    x = chirp(0.5, 32000, 100, 6000)[None]
    mixer = Mixer(2, lead_in_blocks=2)
    voice = make_voice(buffer_frames=2400)
    mixer.add(voice)
    for i in range(0, x.shape[1], 700):
        voice.push(x[:, i : i + 700])
    voice.finish()
    out = run_blocks(mixer, [voice], 110)
    assert not np.isnan(out).any()
    assert np.all(out[: 2 * BLOCK] == 0.0), "the first blocks of a stream are silence"
    played = out[2 * BLOCK :]
    reference = stream_reference(x, 700, 32000, DEVICE_RATE)[0]
    assert voice.frames_played == reference.size
    np.testing.assert_array_equal(played[: reference.size, 0], reference)
    np.testing.assert_array_equal(played[: reference.size, 1], reference)  # mono spread to both channels
    assert np.all(played[reference.size :] == 0.0)
    assert voice.underruns == 0
    voice.feed()
    assert voice.ended.is_set()


def test_jitter_buffer_waits_for_its_fill_and_counts_an_underrun_when_starved() -> None:
    mixer = Mixer(2, lead_in_blocks=1)
    voice = make_voice(rate=DEVICE_RATE, buffer_frames=1000)
    mixer.add(voice)
    x = noise(1.0, DEVICE_RATE, seed=3)[None]
    voice.push(x[:, :900])
    out = run_blocks(mixer, [voice], 4)
    assert np.all(out == 0.0) and voice.frames_played == 0, "under the buffer fill: silent, nothing consumed"
    voice.push(x[:, 900:1100])
    out = run_blocks(mixer, [voice], 5)  # 1100 buffered: 4 blocks of 256 play, the 5th runs dry
    assert voice.frames_played == 1100
    np.testing.assert_array_equal(out[:1100, 0], x[0, :1100])
    assert voice.underruns == 1
    assert not voice.playing, "after an underrun the voice re-buffers"
    voice.push(x[:, 1100:1900])
    run_blocks(mixer, [voice], 3)
    assert voice.frames_played == 1100, "re-buffering waits for a full jitter buffer again"
    voice.push(x[:, 1900:])
    voice.finish()
    run_blocks(mixer, [voice], 200)
    assert voice.frames_played == x.shape[1]
    assert voice.underruns == 1


def test_two_voices_mix_with_their_gains() -> None:
    mixer = Mixer(2, lead_in_blocks=1)
    a, b = make_voice("a", rate=DEVICE_RATE, gain=0.5), make_voice("b", rate=DEVICE_RATE, channels=2, gain=0.25)
    xa = noise(0.2, DEVICE_RATE, seed=4)[None]
    xb = np.stack([noise(0.2, DEVICE_RATE, seed=5), noise(0.2, DEVICE_RATE, seed=6)])
    for voice, x in ((a, xa), (b, xb)):
        mixer.add(voice)
        voice.push(x)
        voice.finish()
    out = run_blocks(mixer, [a, b], 40)[BLOCK:]
    frames = xa.shape[1]
    expected = 0.5 * xa[0][:, None] + 0.25 * xb.T
    assert ser_db(expected, out[:frames]) > 120


def test_cancel_fades_out_linearly_over_the_fade_time() -> None:
    mixer = Mixer(2, lead_in_blocks=1)
    voice = make_voice(rate=DEVICE_RATE, buffer_frames=256, fade_frames=240)
    mixer.add(voice)
    voice.push(np.full((1, DEVICE_RATE), 0.5, dtype=np.float32))  # DC makes the envelope visible
    run_blocks(mixer, [voice], 3)
    voice.cancel()
    out = run_blocks(mixer, [voice], 3)[:, 0]
    fade = out[:240]
    np.testing.assert_allclose(fade, 0.5 * (1 - np.arange(1, 241) / 240), atol=1e-6)
    assert np.all(out[240:] == 0.0)
    assert np.max(np.abs(np.diff(np.concatenate([[0.5], out])))) < 0.5 / 200, "no step larger than the ramp's"
    voice.feed()
    assert voice.ended.is_set()


def test_cancel_before_a_voice_sounds_ends_it_at_once() -> None:
    mixer = Mixer(2, lead_in_blocks=1)
    voice = make_voice(rate=DEVICE_RATE, buffer_frames=10_000)
    mixer.add(voice)
    voice.push(np.full((1, 500), 0.5, dtype=np.float32))
    voice.cancel()
    assert np.all(run_blocks(mixer, [voice], 3) == 0.0)
    voice.feed()
    assert voice.ended.is_set()


def test_gain_change_glides_instead_of_jumping() -> None:
    mixer = Mixer(2, lead_in_blocks=1)
    voice = make_voice(rate=DEVICE_RATE, buffer_frames=256)
    mixer.add(voice)
    voice.push(np.full((1, DEVICE_RATE // 4), 0.5, dtype=np.float32))
    run_blocks(mixer, [voice], 3)
    voice.set_gain(0.0)
    out = run_blocks(mixer, [voice], 4)[:, 0]
    ramp = out[:480]
    assert np.all(np.diff(ramp) < 0) and ramp[0] > 0.49, "the gain slides down over the 480-frame ramp"
    assert np.all(out[480:] == 0.0)


def test_voice_refuses_audio_of_the_wrong_shape() -> None:
    voice = make_voice(channels=2)
    with pytest.raises(ValueError, match=r"\[2, frames\]"):
        voice.push(np.zeros((1, 10), np.float32))


def _launched_voice(launch_s: float) -> tuple[Voice, np.ndarray]:
    """A voice launched on the beat that sounds at `launch_s` (120 BPM from beat 0 at 0 s), its take pushed."""
    line = TimelineState(120.0, 0.0, 0.0)
    voice = Voice("t", DEVICE_RATE, 1, device_rate=DEVICE_RATE, device_channels=2, start_frames=2400,
                  capacity_frames=48000, fade_frames=240, gain_ramp_frames=480, timeline=lambda: line)
    voice.launch_at(line.beat_at(launch_s))
    take = noise(0.5, DEVICE_RATE, seed=11)[None]
    voice.push(take)
    voice.finish()
    voice.feed()
    return voice, take[0]


def test_a_voice_whose_first_callback_comes_late_skips_what_is_due_and_says_why(caplog) -> None:
    launch_s, late_s = 0.1, 0.03
    mixer = Mixer(2, lead_in_blocks=1)
    voice, take = _launched_voice(launch_s)
    mixer.add(voice)
    block_s = BLOCK / DEVICE_RATE
    at_s, out, late_at_s = 0.0, [], None
    for _ in range(40):
        if at_s <= launch_s < at_s + block_s:
            at_s += late_s  # the callback for the launch's block comes late: the sound card stalled
            late_at_s = at_s
        block = np.zeros((BLOCK, 2), np.float32)
        mixer.render(block, at_s, DEVICE_RATE)
        out.append(block[:, 0])
        at_s += block_s
    assert late_at_s is not None
    skipped = voice.late_start_frames
    assert skipped == round((late_at_s - launch_s) * DEVICE_RATE) > 0
    assert voice.late_callback_s == pytest.approx(late_s, abs=1e-9)
    # That late block sounds where the take is by its time, from its first frame, and the take goes on.
    first = next(i for i, b in enumerate(out) if b.any())
    played = np.concatenate(out[first:])
    np.testing.assert_array_equal(played[:4096], take[skipped : skipped + 4096])
    assert voice.underruns == 0
    with caplog.at_level("WARNING", logger="daemon.audio.playback.voice"):
        voice.feed()
        voice.feed()
    [record] = [r for r in caplog.records if "after its launch beat" in r.getMessage()]
    assert f"first {skipped} frames were skipped" in record.getMessage() and "came 30.0 ms late" in record.getMessage()


def test_a_voice_whose_callbacks_come_on_time_starts_on_its_launch_frame(caplog) -> None:
    launch_s = 0.1
    mixer = Mixer(2, lead_in_blocks=1)
    voice, take = _launched_voice(launch_s)
    mixer.add(voice)
    block_s = BLOCK / DEVICE_RATE
    with caplog.at_level("WARNING", logger="daemon.audio.playback.voice"):
        out = []
        for k in range(40):
            block = np.zeros((BLOCK, 2), np.float32)
            mixer.render(block, k * block_s, DEVICE_RATE)
            out.append(block[:, 0])
            voice.feed()
    played = np.concatenate(out)
    launch_frame = round(launch_s * DEVICE_RATE)
    assert not played[:launch_frame].any()
    np.testing.assert_array_equal(played[launch_frame : launch_frame + 4096], take[:4096])
    assert voice.late_start_frames == 0 and not caplog.records
