"""The jam's requests and events (issue 14): the fixed OSC layouts, weighted prompts, bad input."""

from __future__ import annotations

import math

import pytest

from protocol import osc, wire
from protocol.errors import InvalidArgument, PromptTooLong
from protocol.messages import (
    EVENTS, MAX_JAM_WINDOW_S, REQUESTS, Applied, JamPrompts, JamSet, JamSnapshot, JamStart, JamStop, Request, Snapshot,
    Status,
)


def test_the_fixed_jam_osc_address_space() -> None:
    """The layouts the issue fixes, because patches rely on them."""
    assert osc.usage(REQUESTS["jam"]) == "/riffd/jam/start ,s PROMPT [key value]..."
    assert osc.usage(REQUESTS["jam_set"]) == "/riffd/jam/set ,s JAM [key value]..."
    assert osc.usage(REQUESTS["jam_prompts"]) == "/riffd/jam/prompts ,s JAM [PROMPT WEIGHT]... [key value]..."
    assert osc.usage(REQUESTS["jam_stop"]).startswith("/riffd/jam/stop ,s JAM")
    assert osc.usage(REQUESTS["jam_snapshot"]).startswith("/riffd/jam/snapshot ,s JAM")
    assert osc.usage(EVENTS["applied"]) == "/riffd/applied ,si JOB OFFSET_SAMPLES"
    assert osc.usage(EVENTS["snapshot"]) == "/riffd/snapshot ,ssi JOB PATH OFFSET_SAMPLES"


def test_weighted_prompts_travel_as_text_weight_pairs() -> None:
    request = JamPrompts(jam="j1", prompts=("dub techno", "tabla"), weights=(0.75, 0.25))
    [(address, args)] = osc.parse_packet(osc.encode(request))
    assert (address, args) == ("/riffd/jam/prompts", ["j1", "dub techno", 0.75, "tabla", 0.25])
    assert osc.decode_request(address, args) == request
    # The example as a patch sends it: ,ssfsf with float32 weights.
    assert osc.decode_request(address, ["j1", "dub techno", 0.7, "tabla", 0.3]).weights == (0.7, 0.3)
    # A single prompt is weight 1; a text without a number among weighted ones counts 1.
    assert osc.decode_request(address, ["j1", "dub"]) == JamPrompts(jam="j1", prompts=("dub",))
    assert osc.decode_request(address, ["j1", "a", "b", 2]).weights == (1.0, 2.0)
    assert wire.decode_request(wire.encode(request)) == request
    with pytest.raises(InvalidArgument, match="must follow a text"):
        osc.decode_request(address, ["j1", 0.5, "a"])
    with pytest.raises(InvalidArgument, match="must follow a text"):
        osc.decode_request(address, ["j1", "a", 0.5, 0.5])


def test_options_after_the_weighted_prompts_are_options_not_prompts() -> None:
    """QA: `reply_port 18410` after the pairs became a prompt 'reply_port' of weight 18410, and the
    answer went to the sender. The first text naming an option ends the pairs."""
    address = "/riffd/jam/prompts"
    assert osc.decode_request(address, ["j3", "a", 0.5, "reply_port", 18410]) == JamPrompts(
        jam="j3", prompts=("a",), weights=(0.5,), reply_port=18410)
    # As Pd sends it (every number a float), after unweighted texts, with both options.
    assert osc.decode_request(address, ["j3", "a", "b", "reply_port", 18410.0, "id", "r1"]) == JamPrompts(
        jam="j3", prompts=("a", "b"), reply_port=18410, id="r1")
    request = JamPrompts(jam="j3", prompts=("a", "b"), weights=(0.25, 1.0), reply_port=9000, id="r2")
    [(_, args)] = osc.parse_packet(osc.encode(request))
    assert args == ["j3", "a", 0.25, "b", 1.0, "id", "r2", "reply_port", 9000]
    assert osc.decode_request(address, args) == request
    # Refused (all weights zero), its error goes where it says the sender listens (reply_port_hint).
    assert osc.reply_port_hint(address, ["j3", "a", 0.0, "reply_port", 9000.0]) == 9000
    with pytest.raises(InvalidArgument, match="key/value pairs"):
        osc.decode_request(address, ["j3", "a", 0.5, "reply_port"])
    with pytest.raises(InvalidArgument, match="given twice"):
        osc.decode_request(address, ["j3", "a", "reply_port", 1, "reply_port", 2])
    with pytest.raises(InvalidArgument, match="reply_port"):
        osc.decode_request(address, ["j3", "a", "reply_port", 0])
    # A text that names an option cannot be sent as a prompt over OSC (ZeroMQ carries it).
    with pytest.raises(ValueError, match="named like an option"):
        osc.encode(JamPrompts(jam="j3", prompts=("id", "b")))


def test_a_jam_request_that_fails_to_decode_is_refused_naming_its_jam() -> None:
    """QA: the error of a bad `/riffd/jam/*` request had job "" though the jam id comes first."""
    assert osc.job_hint(["j3", "a", -1.0], "/riffd/jam/prompts") == "j3"
    assert osc.job_hint(["j3", "temperature", "hot"], "/riffd/jam/set") == "j3"
    assert osc.job_hint(["j3", "name"], "/riffd/jam/snapshot") == "j3"
    assert osc.job_hint(["j3", "x", 1], "/riffd/jam/stop") == "j3"
    assert osc.job_hint(["x", "window_s", 1000.0, "job", "j4"], "/riffd/jam/start") == "j4"
    assert osc.job_hint(["../up", "a"], "/riffd/jam/prompts") == ""  # the bad id itself is not echoed
    assert osc.job_hint([1.0, "a"], "/riffd/jam/prompts") == ""


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["j1", "a", -0.5], ">= 0"),
        (["j1", "a", math.nan], "finite"),
        (["j1", "a", 0.0, "b", 0.0], "all zero"),
        (["j1", *[item for n in range(9) for item in (f"p{n}", 1.0)]], "more than the 8"),
        (["j1", "", 1.0], "empty"),
        (["j1", "   "], "empty"),
        (["j1"], "at least one prompt"),
        (["../x", "a"], "not a valid job id"),
    ],
)
def test_bad_weighted_prompts_are_invalid_arguments(args: list, fragment: str) -> None:
    with pytest.raises(InvalidArgument, match=fragment) as info:
        osc.decode_request("/riffd/jam/prompts", args)
    assert info.value.code == "invalid_argument"


def test_jam_start_options_and_their_checks() -> None:
    request = osc.decode_request("/riffd/jam/start", ["dub techno", "seed", 7, "lead_s", 0.5, "play", 1,
                                                     "gain", 0.5, "job", "jam1", "temperature", 1.1])
    assert request == JamStart("dub techno", seed=7, lead_s=0.5, play=True, gain=0.5, job="jam1", temperature=1.1)
    assert wire.decode_request(wire.encode(request)) == request
    assert request.generation_params().seed == 7 and request.generation_params().temperature == 1.1
    with pytest.raises(InvalidArgument, match="prompt is empty"):
        JamStart("").validate()
    with pytest.raises(PromptTooLong):
        JamStart("x" * 5000).validate()
    with pytest.raises(InvalidArgument, match="lead_s"):
        JamStart("a", lead_s=0.0).validate()
    with pytest.raises(InvalidArgument, match="shorter than window_s"):
        JamStart("a", context_s=8.0, window_s=4.0).validate()
    # QA: window_s 1000 was accepted and failed only once the jam had started.
    JamStart("a", window_s=30.0).validate()
    with pytest.raises(InvalidArgument, match=r"window_s must be at most 30 s \(a MusicGen window\), got 1000"):
        osc.decode_request("/riffd/jam/start", ["x", "window_s", 1000.0])
    from daemon.models.musicgen.loader import MODEL_WINDOW_S

    assert MAX_JAM_WINDOW_S == MODEL_WINDOW_S
    with pytest.raises(InvalidArgument, match="top_p"):
        JamStart("a", top_p=1.5).validate()
    # A resume takes the snapshot's own prompt and sampling: giving them is an error, not ignored.
    JamStart("", resume="jams/a.riffdjam", play=True, lead_s=1.0).validate()
    with pytest.raises(InvalidArgument, match="leave out prompt, seed"):
        JamStart("other", resume="jams/a.riffdjam", seed=3).validate()


def test_jam_set_changes_and_their_checks() -> None:
    request = osc.decode_request("/riffd/jam/set", ["j1", "temperature", 1.2, "prompt", "tabla", "gain", 0.5])
    assert request.changes() == {"prompt": "tabla", "temperature": 1.2, "gain": 0.5}
    with pytest.raises(InvalidArgument, match="nothing to change"):
        JamSet(jam="j1").validate()
    with pytest.raises(InvalidArgument, match="empty"):
        JamSet(jam="j1", prompt=" ").validate()
    with pytest.raises(InvalidArgument, match="temperature"):
        JamSet(jam="j1", temperature=0.0).validate()
    with pytest.raises(InvalidArgument, match="gain"):
        JamSet(jam="j1", gain=-1.0).validate()


def test_stop_snapshot_and_the_jam_events_on_both_transports() -> None:
    for message in (JamStop(jam="j1"), JamStop(jam="j1", reply_port=9000), JamSnapshot(jam="j1", name="verse-2"),
                    Applied(job="j1", offset_samples=123456, request="jam_set"),
                    Snapshot(job="j1", path="/out/jams/j1-3200.riffdjam", offset_samples=3200),
                    Status(protocol=1, device="cpu", default_model="m", queued=0, running=1, jobs=("j1",),
                           jams=("j1",))):
        decode = wire.decode_request if isinstance(message, Request) else wire.decode_event
        assert decode(wire.encode(message)) == message
    [(address, args)] = osc.parse_packet(osc.encode(Applied(job="j1", offset_samples=3200, re="r1")))
    assert (address, args) == ("/riffd/applied", ["j1", 3200])
    with pytest.raises(InvalidArgument, match="snapshot name"):
        JamSnapshot(jam="j1", name="../up").validate()
