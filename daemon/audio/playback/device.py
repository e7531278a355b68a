"""Finding the output device through PortAudio (sounddevice), imported only when playback is asked for."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import ModuleType

from protocol.errors import PlaybackUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutputDevice:
    """A PortAudio output device as riffd will open it."""

    index: int
    name: str
    host_api: str
    max_channels: int
    default_sample_rate: int


def load_sounddevice() -> ModuleType:
    """Import sounddevice; PlaybackUnavailable when the PortAudio library is missing."""
    try:
        import sounddevice
    except OSError as exc:  # sounddevice raises OSError when it cannot load libportaudio
        raise PlaybackUnavailable(f"PortAudio is not available ({exc}); install libportaudio2 to play on the sound card") from exc
    except ImportError as exc:
        raise PlaybackUnavailable(f"the sounddevice package is not installed ({exc})") from exc
    return sounddevice


def rescan(sd: ModuleType) -> None:
    """Make PortAudio enumerate devices again (it does so only when initialised).

    A JACK server started after sounddevice was imported is invisible until then. Terminating
    PortAudio closes every stream it has open, so this is only done while it sees no output
    device at all (so no output stream can be open).
    """
    sd._terminate()
    sd._initialize()


def forget_portaudio(sd: ModuleType) -> None:
    """Leave PortAudio uninitialised at exit, after its device vanished under an open stream.

    Once a JACK server is gone, PortAudio's JACK host hangs in Pa_StopStream and hangs or fails
    an assertion in Pa_Terminate, which sounddevice calls at exit: the daemon would never exit.
    sounddevice has no public switch for this, so its init count is cleared (a private field).
    """
    if hasattr(sd, "_initialized"):
        vars(sd)["_initialized"] = 0


def output_devices(sd: ModuleType) -> list[OutputDevice]:
    """Every device PortAudio can play to."""
    host_apis = sd.query_hostapis()
    found = []
    for index, info in enumerate(sd.query_devices()):
        if info["max_output_channels"] > 0:
            found.append(
                OutputDevice(
                    index=index,
                    name=str(info["name"]),
                    host_api=str(host_apis[info["hostapi"]]["name"]),
                    max_channels=int(info["max_output_channels"]),
                    default_sample_rate=int(round(info["default_samplerate"])),
                )
            )
    return found


def find_output_device(sd: ModuleType, wanted: int | str | None) -> OutputDevice:
    """Resolve an index, a part of a name, or None (the default output) to one output device."""
    devices = output_devices(sd)
    if not devices:
        raise PlaybackUnavailable("PortAudio sees no output device (no sound card, no JACK or PulseAudio server)")
    if wanted is None:
        default = sd.default.device[1]
        for device in devices:
            if device.index == default:
                return device
        return devices[0]
    if isinstance(wanted, int) or (isinstance(wanted, str) and wanted.strip().isdigit()):
        index = int(wanted)
        for device in devices:
            if device.index == index:
                return device
        raise PlaybackUnavailable(f"no output device with index {index}; outputs are: {_describe(devices)}")
    needle = wanted.strip().lower()
    exact = [d for d in devices if d.name.lower() == needle]
    matches = exact or [d for d in devices if needle in d.name.lower() or needle in f"{d.name}, {d.host_api}".lower()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise PlaybackUnavailable(f"no output device matches {wanted!r}; outputs are: {_describe(devices)}")
    raise PlaybackUnavailable(f"{wanted!r} matches several output devices ({_describe(matches)}); give an index")


def resolve_output_device(wanted: int | str | None, *, fresh: bool = False) -> tuple[ModuleType, OutputDevice]:
    """sounddevice and the chosen device, rescanning first if PortAudio sees no output at all, or
    with `fresh` (the caller has no stream open: a device plugged in since is then seen too)."""
    sd = load_sounddevice()
    if fresh or not output_devices(sd):
        rescan(sd)
    return sd, find_output_device(sd, wanted)


def _describe(devices: list[OutputDevice]) -> str:
    return "; ".join(f"[{d.index}] {d.name} ({d.host_api}, {d.max_channels} ch)" for d in devices) or "none"
