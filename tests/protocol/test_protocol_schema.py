"""The one schema and the codecs derived from it: round trips, coverage, validation, framing."""

from __future__ import annotations

import dataclasses
import json
import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import osc, wire
from protocol.audio_ref import InlineAudio
from protocol.errors import BadAudio, BadMessage, InvalidArgument, MessageTooLarge, RiffdError, UnsupportedVersion
from protocol.messages import (
    EVENTS, PROTOCOL_VERSION, REQUESTS, SAMPLING_FIELDS, Accepted, Chunk, Continue, Done, Error, Generate,
    JobRequest, MusicGenRequest, Started, Status, Subscribe,
)
from protocol.params import GenerationParams
from protocol.schema import fields_of

_SAMPLE_VALUES = {"str": "abc", "int": 3, "float": 1.5, "bool": True, "list[str]": ("m1", "m2"), "list[float]": (0.5, 2.0),
                  "audio": "/tmp/a.wav", "int|str": 16}


def _example(cls: type) -> object:
    """An instance with every field set to a valid, non-default value."""
    values = {spec.name: _SAMPLE_VALUES[spec.kind] for spec in fields_of(cls)}
    overrides = dict(job="job-1", model="debug/musicgen", format="flac", out_sample_rate=44100, bit_depth=24,
                     top_p=0.5, port=9000, host="127.0.0.1", dtype="float32", audio_prompt=None, priority=2,
                     bpm=97.0, launch="bar", loop=False, source="link", tempo=97.0, clock="link",
                     jam="jam-1", name="snap-1", context_s=2.0, window_s=8.0, resume=None)
    for name, value in overrides.items():
        if name in values:
            values[name] = value
    if "duration_s" in values and "bars" in values:
        values["bars"] = None  # a request gives one or the other (bars are tested on their own)
    if cls is Chunk:
        values["audio"] = np.linspace(-1, 1, 9, dtype=np.float32).reshape(3, 3)
    if "reply_port" in values and not cls.OSC_OPTIONS and not any("reply_port" in f for f in cls.OSC_FORMS):
        values["reply_port"] = None  # this message has no OSC form for it
    instance = cls(**values)
    instance.validate()
    return instance


ALL_MESSAGES = [*REQUESTS.values(), *EVENTS.values()]


@pytest.mark.parametrize("cls", ALL_MESSAGES, ids=lambda c: f"{c.__name__}")
def test_every_message_round_trips_through_zeromq_frames(cls: type) -> None:
    message = _example(cls)
    frames = wire.encode(message)
    decoded = (wire.decode_request if cls in REQUESTS.values() else wire.decode_event)(frames)
    assert decoded == message
    if cls is Chunk:
        np.testing.assert_array_equal(decoded.audio, message.audio)


@pytest.mark.parametrize("cls", ALL_MESSAGES, ids=lambda c: f"{c.__name__}")
def test_every_message_round_trips_through_osc(cls: type) -> None:
    message = _example(cls)
    [(address, args)] = osc.parse_packet(osc.encode(message))
    assert address == cls.osc_address()
    if cls in REQUESTS.values():
        decoded = osc.decode_request(address, args)
        # OSC carries every field of a request with options; the others have no correlation id.
        assert decoded == (message if cls.OSC_OPTIONS else dataclasses.replace(message, id=None))
    else:
        decoded = osc.decode_event(address, args)
        form = cls.OSC_FORMS[0]
        for name in form:
            assert getattr(decoded, name) == getattr(message, name)


def test_osc_address_map_covers_the_schema_both_ways() -> None:
    assert set(osc.REQUEST_ADDRESSES.values()) == set(REQUESTS.values())
    assert set(osc.EVENT_ADDRESSES.values()) == set(EVENTS.values())
    assert len(osc.REQUEST_ADDRESSES) == len(REQUESTS) and len(osc.EVENT_ADDRESSES) == len(EVENTS)
    for address in [*osc.REQUEST_ADDRESSES, *osc.EVENT_ADDRESSES]:
        assert address.startswith("/riffd/")


def test_the_fixed_osc_address_space() -> None:
    """The layouts patches rely on (issue 4); changing one breaks users."""
    fixed = {
        "generate": "/riffd/generate ,sf PROMPT DURATION_S [key value]...",
        "continue": "/riffd/continue ,sf AUDIO DURATION_S [key value]...",
        "cancel": "/riffd/cancel ,s JOB",
        "status": "/riffd/status ,",
        "subscribe": "/riffd/subscribe , | ,i PORT | ,si HOST PORT",
    }
    for kind, usage in fixed.items():
        # Later forms may add (reply_port), the fixed layout stays the first.
        assert osc.usage(REQUESTS[kind]).startswith(usage), osc.usage(REQUESTS[kind])
    # Fields added later go after these (a chunk's and done's tempo fields, issue 15).
    events = {"accepted": ",si", "progress": ",sii", "chunk": ",sisiisf", "done": ",ssiiffff", "error": ",sss"}
    for kind, tags in events.items():
        assert osc.usage(EVENTS[kind]).split()[1] == tags
    # What patches written for the first layouts unpack (Max's [unpack s i s]) stays in front.
    for kind, tags in {"chunk": ",sis", "done": ",ss", "started": ",ssii"}.items():
        assert osc.usage(EVENTS[kind]).split()[1].startswith(tags)


def test_every_generation_control_is_a_request_field() -> None:
    params = {field.name for field in dataclasses.fields(GenerationParams)}
    assert set(SAMPLING_FIELDS) | {"duration_s"} == params
    names = {spec.name for spec in fields_of(Generate)}
    assert params <= names and params <= {spec.name for spec in fields_of(Continue)}
    request = Generate("x", 4.0, top_k=10, top_p=0.9, temperature=0.7, guidance_scale=1.0, seed=5, greedy=True,
                       extend_stride_s=10.0)
    assert request.generation_params() == GenerationParams(4.0, 10, 0.9, 0.7, 1.0, 5, True, 10.0)
    assert Generate("x", 4.0).generation_params() == GenerationParams(duration_s=4.0)
    assert issubclass(Generate, MusicGenRequest) and issubclass(Continue, MusicGenRequest)


def test_chunk_pcm_frame_is_float32_channel_major() -> None:
    audio = np.arange(6, dtype=np.float32).reshape(2, 3)
    header, pcm = wire.encode(Chunk(job="j", index=0, offset_samples=0, sample_rate=8000, channels=2, frames=3,
                                    audio=audio))
    assert pcm == struct.pack("<6f", 0, 1, 2, 3, 4, 5)
    with pytest.raises(BadMessage):
        wire.decode_event([header, pcm[:-4]])
    with pytest.raises(BadMessage):
        wire.decode_event([header])


@pytest.mark.parametrize(
    "address, args, port",
    [
        ("/riffd/generate", ["x", 1.0, "seed", "abc", "reply_port", 9001], 9001),
        ("/riffd/generate", ["x", 1.0, "reply_port", 9001.0, "format", "mp3"], 9001),  # Pd sends floats
        ("/riffd/cancel", ["../x", 9001], 9001),  # positional in a control request's form
        ("/riffd/generate", ["x", 1.0, "reply_port", 0], None),
        ("/riffd/generate", ["x", 1.0, "reply_port", 65536], None),
        ("/riffd/generate", ["x", 1.0, "reply_port", "9001"], None),
        ("/riffd/generate", ["x", 1.0, "reply_port", 9001.5], None),
        ("/riffd/generate", ["x", 1.0, "seed", "reply_port", 9001], None),  # no key/value layout to read it by
        ("/riffd/generate", ["reply_port", 9001.0], None),  # the prompt and the duration, not an option
        ("/riffd/nowhere", ["reply_port", 9001], None),
    ],
)
def test_reply_port_hint_reads_a_refused_request_as_the_decoder_does(address: str, args: list, port: int | None) -> None:
    assert osc.reply_port_hint(address, args) == port


def test_no_event_type_is_a_prefix_of_another() -> None:
    # The PUB socket's topic is the event's type and SUB sockets match a prefix: a subscription to one
    # type must not bring another (docs/protocol.md says so).
    kinds = list(EVENTS)
    assert not [(a, b) for a in kinds for b in kinds if a != b and b.startswith(a)]


def test_a_request_without_frames_is_a_bad_message() -> None:
    with pytest.raises(BadMessage):
        wire.decode_request([])


@pytest.mark.parametrize(
    "fields, fragment",
    [
        ({"prompt": "a"}, "missing required field 'duration_s'"),
        ({"prompt": "a", "duration_s": 1, "colour": 1}, "unknown field 'colour'"),
        ({"prompt": 1, "duration_s": 1}, "prompt must be a str"),
        ({"prompt": "a", "duration_s": True}, "duration_s must be a float"),
        ({"prompt": "a", "duration_s": math.inf}, "finite"),
        ({"prompt": "a", "duration_s": 0}, "duration_s must be positive"),
        ({"prompt": "a", "duration_s": 1, "seed": 1.0}, "seed must be an int"),
        ({"prompt": "a", "duration_s": 1, "top_p": 2.0}, "top_p"),
        ({"prompt": "a", "duration_s": 1, "job": "a/b"}, "not a valid job id"),
        ({"prompt": "a", "duration_s": 1, "job": ""}, "not a valid job id"),
        ({"prompt": "a", "duration_s": 1, "priority": 5000}, "priority"),
        ({"prompt": "a", "duration_s": 1, "format": "mp3"}, "format"),
        ({"prompt": "a", "duration_s": 1, "bit_depth": 12}, "bit_depth"),
        ({"prompt": "a", "duration_s": 1, "bit_depth": "32f"}, "bit_depth must be one of 16, 24, 32 or 'float'"),
        ({"prompt": "a", "duration_s": 1, "bit_depth": 24.0}, "bit_depth must be an int or str"),
        ({"prompt": "a", "duration_s": 1, "bit_depth": True}, "bit_depth must be an int or str"),
        ({"prompt": "a" * 3000, "duration_s": 1}, "over the limit"),
        ({"prompt": "a", "duration_s": 1, "audio_prompt": "x.wav", "melody": "y.wav"}, "not both"),
        ({"prompt": "a\x00", "duration_s": 1}, "NUL"),
    ],
)
def test_validation_names_the_bad_field(fields: dict, fragment: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        Generate.from_fields(fields)
    assert fragment in info.value.message


JOB_REQUESTS = [cls for cls in REQUESTS.values() if issubclass(cls, JobRequest)]


@pytest.mark.parametrize("cls", JOB_REQUESTS, ids=lambda c: f"{c.__name__}")
def test_a_saved_file_its_container_cannot_hold_is_refused_with_the_request(cls: type) -> None:
    # FLAC has no 32-bit samples: refused as the request is decoded, on either transport, rather
    # than accepted and failed once the job has started.
    flac_32 = dataclasses.replace(_example(cls), format="flac", bit_depth=32)
    with pytest.raises(InvalidArgument, match="FLAC stores 16 or 24-bit samples, not 32-bit"):
        wire.decode_request(wire.encode(flac_32))
    if cls.OSC_OPTIONS:
        [(address, args)] = osc.parse_packet(osc.encode(flac_32))
        with pytest.raises(InvalidArgument, match="FLAC stores"):
            osc.decode_request(address, args)
    wav_32 = dataclasses.replace(flac_32, format="wav")
    assert wire.decode_request(wire.encode(wav_32)) == wav_32


@pytest.mark.parametrize("cls", JOB_REQUESTS, ids=lambda c: f"{c.__name__}")
def test_float_samples_are_asked_for_by_name_and_refused_for_flac(cls: type) -> None:
    """bit_depth "float" (the CLI's --bit-depth float): a float WAV said outright, on both transports
    (OSC: the word as s); FLAC has no float samples, so it is refused rather than written as 24-bit."""
    wav_float = dataclasses.replace(_example(cls), format="wav", bit_depth="float")
    assert wire.decode_request(wire.encode(wav_float)) == wav_float
    if cls.OSC_OPTIONS:
        packet = osc.encode(wav_float)
        [(address, args)] = osc.parse_packet(packet)
        assert args[args.index("bit_depth") + 1] == "float"
        assert osc.decode_request(address, args) == wav_float
    flac_float = dataclasses.replace(wav_float, format="flac")
    with pytest.raises(InvalidArgument, match="FLAC stores 16 or 24-bit samples, not 32-bit float"):
        wire.decode_request(wire.encode(flac_float))
    if cls.OSC_OPTIONS:
        [(address, args)] = osc.parse_packet(osc.encode(flac_float))
        with pytest.raises(InvalidArgument, match="no float samples"):
            osc.decode_request(address, args)


def test_a_patchers_bit_depth_is_a_number_or_the_word_float() -> None:
    """Over OSC bit_depth is an int or the word float; Pd sends every number as a float, and 24.0 is
    still the integer 24 (an int tag going out), not a word."""
    request = osc.decode_request("/riffd/generate", ["a", 1.0, "bit_depth", 24.0])
    assert request == Generate("a", 1.0, bit_depth=24) and isinstance(request.bit_depth, int)
    assert b",sfsi\x00" in osc.encode(request)
    request = osc.decode_request("/riffd/generate", ["a", 1.0, "bit_depth", "float"])
    assert request == Generate("a", 1.0, bit_depth="float") and b",sfss\x00" in osc.encode(request)


@pytest.mark.parametrize("cls", [cls for cls in REQUESTS.values() if cls.OSC_OPTIONS], ids=lambda c: c.__name__)
def test_an_empty_string_option_means_absent_as_the_reference_says(cls: type) -> None:
    """A patch's empty symbol box sends `model ""`: every optional text option reads it as absent."""
    names = sorted(name for name in osc.option_keys(cls)
                   for spec in fields_of(cls) if spec.name == name and spec.optional and spec.kind in ("str", "audio"))
    assert names
    message = dataclasses.replace(_example(cls), **dict.fromkeys(names))
    [(address, args)] = osc.parse_packet(osc.encode(message))
    empties = [item for name in names for item in (name, "")]
    assert osc.decode_request(address, [*args, *empties]) == message


@pytest.mark.parametrize(("name", "chars"), [("artist", 201), ("genres", 201), ("lyrics", 8001)])
def test_a_jukebox_label_or_lyrics_over_its_limit_is_prompt_too_long(name: str, chars: int) -> None:
    """The error codes table says so: a program tells "shorten the text" from a malformed request."""
    header = {"v": PROTOCOL_VERSION, "type": "jukebox_sample", "duration_s": 1.0, name: "a" * chars}
    with pytest.raises(RiffdError) as raised:
        wire.decode_request([json.dumps(header).encode()])
    assert raised.value.code == "prompt_too_long"


def test_osc_is_lenient_the_way_patchers_need() -> None:
    request = osc.decode_request("/riffd/generate", ["a", 2, "seed", 42.0, "greedy", 1, "job", "pd1"])
    assert request == Generate("a", 2.0, seed=42, greedy=True, job="pd1")
    with pytest.raises(InvalidArgument, match="key/value pairs"):
        osc.decode_request("/riffd/generate", ["a", 2.0, "seed"])
    with pytest.raises(InvalidArgument, match="given twice"):
        osc.decode_request("/riffd/generate", ["a", 2.0, "prompt", "b"])
    with pytest.raises(InvalidArgument, match="option names must be strings"):
        osc.decode_request("/riffd/generate", ["a", 2.0, 1, 2])
    with pytest.raises(BadMessage, match="unknown OSC address"):
        osc.decode_request("/riffd/nope", [])
    assert osc.decode_request("/riffd/subscribe", ["10.0.0.2", 9000]) == Subscribe(host="10.0.0.2", port=9000)
    assert osc.job_hint(["a", 1.0, "seed", "x", "job", "j7"]) == "j7"


def test_outgoing_osc_stays_under_8_kb() -> None:
    status = Status(protocol=1, device="cpu", default_model="m", queued=0, running=0, models=("x" * 100,) * 100)
    with pytest.raises(ValueError, match="over 8192"):
        osc.encode(status)
    with pytest.raises(ValueError, match="cannot carry"):
        osc.encode(Subscribe(port=9000, reply_port=9001))
    longest_error = Error(job="j" * 64, code="invalid_argument", message="m" * 4000)
    assert len(osc.encode(longest_error)) < osc.MAX_OSC_MESSAGE_BYTES


def test_tcp_deframer_reassembles_split_and_joined_frames() -> None:
    packets = [osc.encode(Accepted(job=f"j{n}", queue_position=n)) for n in range(3)]
    stream = b"".join(osc.frame_tcp(p) for p in packets)
    deframer = osc.TcpDeframer()
    got = []
    for start in range(0, len(stream), 7):
        got += deframer.feed(stream[start:start + 7])
    assert got == packets
    with pytest.raises(MessageTooLarge):
        osc.TcpDeframer().feed(struct.pack(">i", osc.MAX_OSC_PACKET_BYTES + 1))
    with pytest.raises(MessageTooLarge):
        osc.TcpDeframer().feed(struct.pack(">i", -5))


def test_version_and_header_checks() -> None:
    with pytest.raises(UnsupportedVersion):
        wire.decode_request([b'{"type": "status"}'])
    with pytest.raises(BadMessage):
        wire.decode_request([b'{"v": %d}' % PROTOCOL_VERSION])
    with pytest.raises(BadMessage):
        wire.decode_event([b'{"v": 1, "type": "generate"}'])
    assert wire.reply_ids([b'{"id": "r", "job": "j", "v": 3}']) == ("r", "j")
    assert wire.reply_ids([b"\xff"]) == (None, "")
    assert Done(job="j").to_fields() == {"job": "j", "frames": 0, "sample_rate": 0}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_never_crash_the_decoders(data: bytes) -> None:
    for decode in (lambda: osc.parse_packet(data), lambda: wire.decode_request([data])):
        try:
            result = decode()
        except RiffdError:
            continue
        if isinstance(result, list):  # a parsed OSC packet: now its requests
            for address, args in result:
                try:
                    osc.decode_request(address, args)
                except RiffdError:
                    pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=20), st.integers(), st.floats(allow_nan=True), st.booleans(),
                          st.none(), st.binary(max_size=8)), max_size=8),
       st.sampled_from(sorted(osc.REQUEST_ADDRESSES)))
def test_random_osc_arguments_are_valid_requests_or_riffd_errors(args: list, address: str) -> None:
    try:
        request = osc.decode_request(address, args)
    except RiffdError:
        return
    request.validate()


def test_playback_fields_travel_on_both_transports() -> None:
    request = Generate("x", 1.0, play=True, gain=0.5)
    assert wire.decode_request(wire.encode(request)) == request
    assert osc.decode_request("/riffd/generate", ["x", 1.0, "play", 1, "gain", 0.5]) == Generate("x", 1.0, play=True,
                                                                                                  gain=0.5)
    with pytest.raises(InvalidArgument, match="gain"):
        Generate.from_fields({"prompt": "x", "duration_s": 1.0, "gain": 100.0})


def test_decoder_corner_cases_found_by_fuzzing() -> None:
    with pytest.raises(BadMessage):  # invalid UTF-8 in an OSC string argument
        osc.parse_packet(b"/riffd/generate\x00,s\x00\x00\xb6\xb4\xafN\x00\x00\x00\x00")
    with pytest.raises(BadMessage):  # JSON nested past the parser's recursion limit
        wire.decode_request([b'{"v": 1, "type": "status", "x": ' + b"[" * 50000 + b"}"])


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="ifsbhdtTFN[]rmc", max_size=6), st.binary(max_size=32))
def test_osc_messages_with_random_type_tags_and_payloads(tags: str, payload: bytes) -> None:
    type_tag = ("," + tags).encode()
    packet = b"/riffd/generate\x00" + type_tag + b"\x00" * (4 - len(type_tag) % 4) + payload
    try:
        for address, args in osc.parse_packet(packet):
            osc.decode_request(address, args)
    except RiffdError:
        pass


def test_inline_audio_travels_as_referenced_pcm_frames() -> None:
    region = InlineAudio(np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4), 44100)
    melody = InlineAudio(np.ones(3, np.float32), 22050)
    request = Generate("x", 1.0, audio_prompt=None, melody=melody, id="r")
    frames = wire.encode(request)
    assert len(frames) == 2 and json.loads(frames[0])["melody"] == {
        "buffer": 0, "sample_rate": 22050, "channels": 1, "frames": 3, "dtype": "float32"}
    assert wire.decode_request(frames) == request
    cont = Continue(region, 2.0, prompt="on")
    decoded = wire.decode_request(wire.encode(cont))
    assert isinstance(decoded.audio, InlineAudio) and decoded == cont
    with pytest.raises(ValueError, match="file path only"):
        osc.encode(cont)


@pytest.mark.parametrize(
    "audio_ref, buffers, fragment",
    [
        ({"buffer": 1, "sample_rate": 8000, "channels": 1, "frames": 2, "dtype": "float32"}, [b"\0" * 8], "missing"),
        ({"buffer": 0, "sample_rate": 8000, "channels": 1, "frames": 3, "dtype": "float32"}, [b"\0" * 8], "bytes"),
        ({"buffer": 0, "sample_rate": 8000, "channels": 1, "frames": 2, "dtype": "int16"}, [b"\0" * 8], "dtype"),
        ({"buffer": 0, "sample_rate": 8000, "channels": 1, "frames": 2, "dtype": "float32"}, [b"\0" * 8] * 2,
         "not referenced"),
        ({"buffer": -1, "sample_rate": 8000, "channels": 1, "frames": 2, "dtype": "float32"}, [b"\0" * 8],
         "non-negative"),
    ],
)
def test_bad_buffer_references_are_refused(audio_ref: dict, buffers: list, fragment: str) -> None:
    header = json.dumps({"v": 1, "type": "continue", "audio": audio_ref, "duration_s": 1.0}).encode()
    with pytest.raises(BadMessage, match=fragment):
        wire.decode_request([header, *buffers])


def test_inline_audio_is_checked() -> None:
    with pytest.raises(BadAudio, match="NaN"):
        InlineAudio(np.array([[0.0, np.nan]], np.float32), 8000)
    with pytest.raises(BadAudio, match="sample rate"):
        InlineAudio(np.zeros((1, 4), np.float32), 10)
    with pytest.raises(BadAudio, match="channels"):
        InlineAudio(np.zeros((0, 4), np.float32), 8000)
    header = json.dumps({"v": 1, "type": "continue", "duration_s": 1.0, "audio": {
        "buffer": 0, "sample_rate": 8000, "channels": 1, "frames": 1, "dtype": "float32"}}).encode()
    with pytest.raises(BadAudio, match="NaN"):
        wire.decode_request([header, struct.pack("<f", math.inf)])


def test_the_osc_reference_lists_every_address_and_option() -> None:
    text = osc.reference()
    for address in [*osc.REQUEST_ADDRESSES, *osc.EVENT_ADDRESSES]:
        assert f"  {address} ," in text
    assert "seed (int)" in text and "melody (path)" in text and "/riffd/chunk ,sisiisf JOB INDEX PATH OFFSET_SAMPLES FRAMES STAGE BEAT\n" in text


def test_events_grow_at_the_end_of_their_osc_form_and_older_layouts_still_decode() -> None:
    """Patches unpack events positionally: fields added later come after the ones they know."""
    started = Started(job="j", model="m", sample_rate=32000, channels=1, seed=1234)
    ((address, args),) = osc.parse_packet(osc.encode(started))
    assert (address, args) == ("/riffd/started", ["j", "m", 32000, 1, 1234])
    assert osc.decode_event(address, args) == started
    # A daemon from before the seed sends four arguments.
    assert osc.decode_event(address, args[:4]) == Started(job="j", model="m", sample_rate=32000, channels=1)
    # A seed past 32 bits (a client may choose one) would be an OSC `h`, which Pd cannot parse:
    # that started goes in the older layout.
    big = dataclasses.replace(started, seed=2**40)
    assert osc.parse_packet(osc.encode(big)) == [("/riffd/started", ["j", "m", 32000, 1])]
    assert osc.parse_packet(osc.encode(dataclasses.replace(started, seed=2**31 - 1)))[0][1][4] == 2**31 - 1
    chunk = Chunk(job="j", index=3, offset_samples=48000, sample_rate=32000, channels=1, frames=16000,
                  path="/out/j/preview-00003.wav", stage="preview")
    ((address, args),) = osc.parse_packet(osc.encode(chunk))
    assert args == ["j", 3, "/out/j/preview-00003.wav", 48000, 16000, "preview"]
    decoded = osc.decode_event(address, args)
    assert (decoded.offset_samples, decoded.frames, decoded.stage) == (48000, 16000, "preview")
    assert osc.decode_event(address, args[:3]).offset_samples == 0  # an older daemon's chunk
    done = Done(job="j", path="", frames=96000, sample_rate=32000)
    ((address, args),) = osc.parse_packet(osc.encode(done))
    assert args == ["j", "", 96000, 32000]
    assert osc.decode_event(address, args) == Done(job="j", path=None, frames=96000, sample_rate=32000)
    assert osc.decode_event(address, args[:2]) == Done(job="j")
