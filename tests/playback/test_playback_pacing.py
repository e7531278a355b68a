"""A producer paced to an in-time voice (as a jam is, daemon/jam/job.py) keeps it sounding after the
sound card's first callback came long after the launch beat.

Such a voice skips what was due while the card stalled and owes what is not there yet. Paced on the
frames *played*, its producer saw itself a whole lead ahead for good and stopped; the voice, dry, owed
more with every callback and never sounded again (a jam in time went silent and answered no change:
tests/playback/test_playback_jam.py's in-time case, under load). Paced on the frames *elapsed*, the
producer catches up and the voice sounds on the timeline.
"""

from __future__ import annotations

import numpy as np

from daemon.audio.playback.mixer import Mixer
from daemon.audio.playback.voice import Voice
from daemon.tempo.timeline import TimelineState
from signals import noise

RATE = 48000
BLOCK = 256
LEAD_FRAMES = 4800  # the producer runs at most this far ahead of its listener
PIECE_FRAMES = 1000
LAUNCH_S = 0.1
STALL_S = 0.3  # the launch's callback comes this late: more than the lead that was buffered


def test_a_paced_producer_keeps_an_in_time_voice_sounding_after_a_late_first_callback() -> None:
    line = TimelineState(120.0, 0.0, 0.0)
    voice = Voice("jam", RATE, 1, device_rate=RATE, device_channels=2, start_frames=2400, capacity_frames=48000,
                  fade_frames=240, gain_ramp_frames=480, timeline=lambda: line)
    voice.launch_at(line.beat_at(LAUNCH_S))
    mixer = Mixer(2, lead_in_blocks=1)
    mixer.add(voice)
    source = noise(2.0, RATE, seed=5)
    pushed, at_s, stalled = 0, 0.0, False
    sounded: list[tuple[float, np.ndarray]] = []
    for _ in range(300):  # 1.6 s of callbacks
        while pushed - voice.frames_elapsed < LEAD_FRAMES and pushed < source.size:  # the jam's pacing
            voice.push(source[None, pushed:pushed + PIECE_FRAMES])
            pushed += PIECE_FRAMES
        voice.feed()
        if not stalled and at_s + BLOCK / RATE > LAUNCH_S:
            at_s, stalled = at_s + STALL_S, True  # the card stalls over the launch beat
        block = np.zeros((BLOCK, 2), np.float32)
        mixer.render(block, at_s, RATE)
        sounded.append((at_s, block[:, 0].copy()))
        at_s += BLOCK / RATE
    assert voice.late_start_frames > LEAD_FRAMES  # more was skipped than was there: it owes the rest
    assert voice.frames_played > RATE // 2, "the voice sounds again once its producer catches up"
    # What sounds is on the timeline: each block is the source where the take is at the block's time.
    heard = 0
    for block_s, block in sounded:
        if block.any():
            start = round((block_s - LAUNCH_S) * RATE)
            np.testing.assert_array_equal(block, source[start:start + BLOCK])
            heard += 1
    assert heard > 50
