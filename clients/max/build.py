"""The Max patch and the Max for Live device layout: `python -m clients.max.build [--check]`.

Both are generated so that their OSC addresses, ports and argument layouts are reviewable as
code and checked against the protocol schema (tests/clients_max). Max sends a message box
`/riffd/generate $1 $2 ...` to [udpsend] as an OSC message whose type tags follow the atoms:
symbols as s, Max ints as i, Max floats (8.) as f. Max's [udpsend] cannot read replies, so
each request names a reply port (`reply_port` option, or the trailing int of cancel and
status): the daemon answers to this host at the port where [udpreceive] listens.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from clients.max.maxpat import Patcher
from clients.tools.generated import generator_main
from daemon.config import DEFAULT_OSC_PORT

HERE = Path(__file__).resolve().parent
#: Where the patch listens for the daemon's events (any free UDP port works; change both places).
REPLY_PORT = 7410
EVENTS = ("/riffd/accepted /riffd/started /riffd/progress /riffd/chunk /riffd/done /riffd/error /riffd/ok "
          "/riffd/status /riffd/applied /riffd/snapshot /riffd/clock")
#: The jam this patch starts and steers (one at a time; a fixed id, so no reply needs parsing first).
JAM = "maxjam"
#: Weighted prompt slots, each a text and a slider. No commas: the message box that sets a slot's text
#: would send what follows one as a message of its own.
JAM_SLOTS = (("dub techno with deep chords", 1.0), ("tabla and hand percussion", 0.0),
             ("bright bells and shimmer", 0.0))


def _core(p: Patcher, audio_out: str, *, device: bool) -> None:
    """Controls, the request messages, the event router, two buffers and their players."""
    pr = (lambda x, y, w, h: (x, y, w, h)) if device else (lambda *_: None)
    # Requests.
    p.comment(20, 60, "prompt (press return to generate)", 240)
    p.ui("prompt", "textedit", 20, 85, 300, presentation=pr(10, 10, 260, 40), io=(1, 4))
    # textedit's output may start with the word "text" (its default output mode): strip it if so.
    p.obj("untext", 20, 120, "route text")
    p.obj("tosym", 20, 145, "tosymbol")
    p.comment(340, 60, "seconds / seed / play on the daemon's sound card", 320)
    if device:
        p.ui("dur", "live.dial", 340, 85, 50, presentation=pr(280, 5, 44, 48), io=(1, 2),
             parameter_enable=1, saved_attribute_attributes={"valueof": {
                 "parameter_longname": "riffd duration", "parameter_shortname": "seconds",
                 "parameter_type": 0, "parameter_mmin": 1.0, "parameter_mmax": 30.0, "parameter_initial": [8.0],
                 "parameter_initial_enable": 1, "parameter_unitstyle": 1}})
        p.ui("seed", "live.numbox", 400, 85, 50, presentation=pr(330, 10, 44, 15), io=(1, 2),
             parameter_enable=1, saved_attribute_attributes={"valueof": {
                 "parameter_longname": "riffd seed", "parameter_shortname": "seed", "parameter_type": 1,
                 "parameter_mmin": 0.0, "parameter_mmax": 1000000.0}})
        p.ui("play", "live.toggle", 460, 85, 20, presentation=pr(330, 32, 15, 15), io=(1, 1),
             parameter_enable=1, saved_attribute_attributes={"valueof": {
                 "parameter_longname": "riffd play on daemon", "parameter_shortname": "daemon play",
                 "parameter_type": 2, "parameter_enum": ["off", "on"]}})
        p.ui("go", "live.text", 500, 85, 60, presentation=pr(10, 55, 80, 20), io=(1, 2),
             text="generate", mode=0, parameter_enable=0)
    else:
        p.ui("dur", "flonum", 340, 85, 50, io=(1, 2), minimum=0.5)
        p.ui("seed", "number", 400, 85, 50, io=(1, 2), minimum=0)
        p.ui("play", "toggle", 460, 85, 20, io=(1, 1))
        p.ui("go", "button", 500, 85, 24, io=(1, 1))
    p.obj("pack", 20, 170, "pack s 8. 0 0", 160)
    p.msg("gen", 20, 195, f"/riffd/generate $1 $2 seed $3 play $4 reply_port {REPLY_PORT}", 420)
    p.obj("send", 20, 420, f"udpsend 127.0.0.1 {DEFAULT_OSC_PORT}", 180)
    p.chain("prompt", "untext", "tosym", "pack", "gen", "send")
    p.wire("untext:1", "tosym")
    p.wire("dur", "pack:1")
    p.wire("seed", "pack:2")
    p.wire("play", "pack:3")
    p.wire("go", "pack")

    p.comment(480, 160, "continue a file (pick one)", 200)
    p.ui("pick", "button" if not device else "live.text", 480, 185, 24, io=(1, 2 if device else 1),
         presentation=pr(100, 55, 80, 20), **({"text": "continue...", "mode": 0} if device else {}))
    p.obj("dialog", 480, 215, "opendialog sound")
    p.obj("native", 480, 245, "conformpath native absolute", 180)
    p.obj("cpack", 480, 275, "pack s 8.")
    p.msg("cont", 480, 305, f"/riffd/continue $1 $2 reply_port {REPLY_PORT}", 320)
    p.chain("pick", "dialog", "native", "cpack", "cont", "send")
    p.wire("dur", "cpack:1")

    p.ui("stop", "button" if not device else "live.text", 480, 350, 24, io=(1, 2 if device else 1),
         presentation=pr(190, 55, 80, 20), **({"text": "cancel", "mode": 0} if device else {}))
    p.comment(510, 350, "cancel the last job", 160)
    p.obj("last", 480, 380, "zl reg")
    p.msg("cancel", 480, 410, f"/riffd/cancel $1 {REPLY_PORT}", 140)
    p.chain("stop", "last", "cancel", "send")
    p.ui("ask", "button" if not device else "live.text", 680, 350, 24, io=(1, 2 if device else 1),
         presentation=pr(190, 80, 80, 20), **({"text": "status", "mode": 0} if device else {}))
    p.comment(710, 350, "daemon status", 120)
    p.msg("status", 680, 410, f"/riffd/status {REPLY_PORT}", 140)
    p.chain("ask", "status", "send")

    # Events.
    p.obj("recv", 20, 470, f"udpreceive {REPLY_PORT}", 140)
    p.obj("route", 20, 500, f"route {EVENTS}", 620)
    p.chain("recv", "route")
    p.obj("acc", 20, 535, "unpack s i")
    p.chain("route:0", "acc")
    p.wire("acc", "last:1")
    p.obj("prog", 120, 535, "unpack s i i")
    p.obj("pct", 120, 565, "* 100")
    p.obj("ratio", 120, 595, "/ 1")
    p.ui("bar", "live.slider" if device else "slider", 120, 625, 120, presentation=pr(280, 55, 90, 20),
         io=(1, 2) if device else (1, 1), orientation=1, size=101.0)
    p.wire("route:2", "prog")
    p.wire("prog:1", "pct")
    p.wire("prog:2", "ratio:1")
    p.chain("pct", "ratio", "bar")
    p.obj("chunk", 240, 535, "unpack s i s")
    p.obj("creplace", 240, 565, "prepend replace")
    p.obj("cbuf", 240, 595, "buffer~ riffd-chunk")
    p.msg("cstart", 240, 625, "start", 50)
    p.obj("cplay", 240, 655, "play~ riffd-chunk")
    p.wire("route:3", "chunk")
    p.wire("chunk:2", "creplace")
    p.chain("creplace", "cbuf")
    p.wire("cbuf:1", "cstart")
    p.chain("cstart", "cplay")
    p.obj("done", 420, 535, "unpack s s")
    p.obj("dreplace", 420, 565, "prepend replace")
    p.obj("dbuf", 420, 595, "buffer~ riffd-take")
    p.msg("dstart", 420, 625, "start", 50)
    p.obj("dplay", 420, 655, "play~ riffd-take")
    p.wire("route:4", "done")
    p.wire("done:1", "dreplace")
    p.chain("dreplace", "dbuf")
    p.wire("dbuf:1", "dstart")
    p.chain("dstart", "dplay")
    p.obj("err", 600, 535, "unpack s s s")
    p.obj("errprint", 600, 565, "print riffd-error")
    p.wire("route:5", "err")
    p.wire("route:5", "errprint")
    p.obj("started", 720, 535, "unpack s s i i")
    p.wire("route:1", "started")
    p.obj("replies", 720, 565, "print riffd-reply")
    p.wire("route:6", "replies")
    p.wire("route:7", "replies")
    p.obj("applied", 840, 535, "unpack s i")
    p.wire("route:8", "applied")
    p.ui("appliedat", "number", 840, 565, 80, io=(1, 2))
    p.wire("applied:1", "appliedat")
    p.comment(930, 565, "applied at (samples)", 140)
    p.obj("saved", 840, 600, "unpack s s i")
    p.wire("route:9", "saved")
    p.wire("route:9", "replies")
    _in_time(p, pr, device=device)
    p.obj("gain", 240, 700, "*~ 0.8", 60)
    p.wire("cplay", "gain")
    p.wire("dplay", "gain")
    p.chain("gain", audio_out)
    p.wire("gain", f"{audio_out}:1")


def _jam(p: Patcher, x: int, y: int) -> None:
    """A jam played on the daemon's sound card: start, prompt sliders for weights, temperature, save,
    recall, stop. Its applied and snapshot events come back through [udpreceive] (the jam's events
    go to the reply_port its start named)."""
    port = f"reply_port {REPLY_PORT}"
    p.comment(x, y, "jam: an endless stream you steer while it plays (heard on the daemon's sound card, play 1). "
              "Type a text per slot, move its slider: the slots' weights blend the prompts (relative).", 520)
    p.ui("jstart", "button", x, y + 50, 24, io=(1, 1))
    p.comment(x + 30, y + 50, "start (seed)", 90)
    p.ui("jseed", "number", x + 120, y + 50, 50, io=(1, 2), minimum=0)
    p.obj("jpack", x, y + 80, "pack s 0", 90)
    p.msg("jgo", x, y + 110, f"/riffd/jam/start $1 seed $2 job {JAM} play 1 {port}", 460)
    p.wire("jseed", "jpack:1")
    p.ui("jstop", "button", x + 200, y + 50, 24, io=(1, 1))
    p.comment(x + 230, y + 50, "stop", 40)
    p.msg("jstopm", x + 200, y + 140, f"/riffd/jam/stop {JAM} {REPLY_PORT}", 200)
    p.ui("jsave", "button", x + 280, y + 50, 24, io=(1, 1))
    p.comment(x + 310, y + 50, "save", 40)
    p.msg("jsavem", x + 280, y + 170, f"/riffd/jam/snapshot {JAM} name {JAM}-saved {port}", 320)
    p.ui("jrecall", "button", x + 360, y + 50, 24, io=(1, 1))
    p.comment(x + 390, y + 50, "recall", 50)
    p.msg("jrecallm", x + 360, y + 200, f'/riffd/jam/start "" resume {JAM}-saved job {JAM} play 1 {port}', 420)
    p.chain("jstop", "jstopm", "send")
    p.chain("jsave", "jsavem", "send")
    p.chain("jrecall", "jrecallm", "send")
    p.chain("jpack", "jgo", "send")
    # Prompt slots: a text and a weight slider each; any change sends every slot's text and weight.
    values = " ".join(f"s {weight}" for _, weight in JAM_SLOTS)
    p.obj("jblend", x, y + 330, f"pack {values}", 300)
    pairs = " ".join(f"${2 * n + 1} ${2 * n + 2}" for n in range(len(JAM_SLOTS)))
    p.msg("jprompts", x, y + 360, f"/riffd/jam/prompts {JAM} {pairs} {port}", 460)
    p.chain("jblend", "jprompts", "send")
    p.obj("jlb", x + 480, y + 230, "loadbang")
    for n, (text, weight) in enumerate(JAM_SLOTS):
        sx = x + 170 * n
        p.ui(f"jtext{n}", "textedit", sx, y + 240, 160, io=(1, 4))
        p.obj(f"juntext{n}", sx, y + 270, "route text", 80)
        p.obj(f"jsym{n}", sx, y + 295, "tosymbol", 80)
        p.ui(f"jw{n}", "slider", sx + 90, y + 270, 70, io=(1, 1), floatoutput=1, size=1.0)
        p.obj(f"jwt{n}", sx + 90, y + 300, "t b f", 50)
        p.msg(f"jinit{n}", x + 480 + 0, y + 255 + 25 * n, f"set {text}", 200)
        p.chain("jlb", f"jinit{n}", f"jtext{n}")
        p.msg(f"jwinit{n}", x + 700, y + 255 + 25 * n, f"set {weight}", 60)
        p.chain("jlb", f"jwinit{n}", f"jw{n}")
        p.chain(f"jtext{n}", f"juntext{n}", f"jsym{n}")
        p.wire(f"juntext{n}:1", f"jsym{n}")
        # The first slot's text is the start's prompt too.
        if n == 0:
            p.wire(f"jsym{n}", "jpack")
            p.wire("jstart", f"jtext{n}")
        p.wire(f"jsym{n}", f"jblend:{2 * n}")
        p.chain(f"jw{n}", f"jwt{n}")
        p.wire(f"jwt{n}:1", f"jblend:{2 * n + 1}")
        p.wire(f"jwt{n}", "jblend")
    p.comment(x, y + 420, "temperature", 90)
    p.ui("jtemp", "flonum", x + 90, y + 420, 50, io=(1, 2), minimum=0.1, maximum=2.0)
    p.obj("jtpack", x + 150, y + 420, "pack 1.", 60)
    p.msg("jtempm", x, y + 450, f"/riffd/jam/set {JAM} temperature $1 {port}", 360)
    p.chain("jtemp", "jtpack", "jtempm", "send")


def _in_time(p: Patcher, pr: Callable[[int, int, int, int], tuple[int, int, int, int] | None], *,
             device: bool, x: int = 1450, y: int = 60) -> None:
    """Issue 15: a take of N bars launched on the next bar, and the Link tempo and beat shown (the
    clock polled every 100 ms while the toggle is on; `riffd serve --link` makes it the session's)."""
    p.comment(x, y, "bars, launched on the next bar (Ableton Link with riffd serve --link)", 300)
    p.ui("bars", "number", x, y + 25, 40, presentation=pr(100, 80, 40, 20), io=(1, 2), minimum=1, maximum=1024)
    p.ui("onbar", "live.text" if device else "button", x + 50, y + 25, 60 if device else 24,
         io=(1, 2 if device else 1), presentation=pr(145, 80, 40, 20), **({"text": "on bar", "mode": 0} if device else {}))
    # The prompt is kept here (the textedit's return generates a take in seconds).
    p.obj("lastprompt", x + 120, y + 25, "zl reg")
    p.wire("tosym", "lastprompt:1")
    p.obj("barpack", x, y + 60, "pack s 4 0 0", 160)
    p.msg("bargen", x, y + 85, f"/riffd/generate $1 0. bars $2 launch bar seed $3 play $4 reply_port {REPLY_PORT}",
          420)
    p.chain("onbar", "lastprompt", "barpack", "bargen", "send")
    p.wire("bars", "barpack:1")
    p.wire("seed", "barpack:2")
    p.wire("play", "barpack:3")

    p.comment(x, y + 140, "the Link tempo and beat (clock polled while on)", 300)
    p.ui("follow", "live.toggle" if device else "toggle", x, y + 165, 20, presentation=pr(280, 80, 15, 15),
         io=(1, 1), **({"parameter_enable": 0} if device else {}))
    p.obj("metro", x + 30, y + 165, "metro 100", 80)
    p.msg("clock", x + 30, y + 195, f"/riffd/clock {REPLY_PORT}", 140)
    p.chain("follow", "metro", "clock", "send")
    p.obj("clk", x, 535, "unpack s f f f i i", 160)
    p.wire(f"route:{EVENTS.split().index('/riffd/clock')}", "clk")
    p.ui("tempo", "flonum", x, 565, 60, presentation=pr(300, 80, 50, 20), io=(1, 2))
    p.ui("beat", "flonum", x + 70, 565, 70, presentation=pr(355, 80, 55, 20), io=(1, 2))
    p.ui("peers", "number", x + 150, 565, 40, io=(1, 2))
    p.comment(x, 595, "BPM / beat / Link peers", 200)
    p.wire("clk:1", "tempo")
    p.wire("clk:2", "beat")
    p.wire("clk:4", "peers")


def max_patch() -> Patcher:
    p = Patcher((80, 80, 1400, 800))
    p.comment(20, 15, "riffd for Max: chunks play as they arrive (buffer~ riffd-chunk), the finished take "
              "replaces buffer~ riffd-take. Start the daemon first: riffd serve --model facebook/musicgen-small",
              820)
    p.obj("dac", 240, 740, "dac~")
    _core(p, "dac", device=False)
    _jam(p, 900, 60)
    return p


def device_patch() -> Patcher:
    p = Patcher((80, 80, 900, 800), device=True)
    p.comment(20, 15, "riffd Max for Live device layout (audio effect): open in Max, then save as .amxd from "
              "Live's device editor. Takes play through plugout~ into the track.", 820,
              presentation=(10, 80, 400, 40))
    p.obj("dac", 240, 740, "plugout~")
    # The track's own audio passes through; the takes are mixed on top.
    p.obj("thru", 20, 740, "plugin~")
    p.wire("thru", "dac")
    p.wire("thru:1", "dac:1")
    _core(p, "dac", device=True)
    return p


PATCHES: dict[str, Callable[[], Patcher]] = {"riffd.maxpat": max_patch, "riffd-device.maxpat": device_patch}


def main(argv: list[str] | None = None) -> int:
    return generator_main(argv, prog="python -m clients.max.build", description=__doc__.splitlines()[0],
                          files={HERE / name: _renderer(build) for name, build in PATCHES.items()})


def _renderer(build: Callable[[], Patcher]) -> Callable[[], str]:
    return lambda: build().render()


if __name__ == "__main__":
    sys.exit(main())
