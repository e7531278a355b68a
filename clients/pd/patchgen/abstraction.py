"""riffd.pd, the abstraction: the top canvas, the network subpatch and the event router."""

from __future__ import annotations

from clients.pd.patchgen.audio import load, playback
from clients.pd.patchgen.follow import follow
from clients.pd.patchgen.pdfile import Canvas
from clients.pd.patchgen.requests import options, request_sender, requests


def abstraction() -> Canvas:
    """riffd.pd."""
    top = Canvas(size=(760, 520))
    top.text(20, 10, "riffd - ask a riffd daemon for music over OSC \\, load what comes back into an array "
             "and play it. Usage and messages: see riffd-help.pd. Arguments: the arrays to load the left "
             "and right channels into (default: local ones).", 90)
    top.obj("in", 20, 70, "inlet")
    top.obj("rt", 20, 100, "route bang generate continue cancel status subscribe unsubscribe connect disconnect "
            "array stop clear unset autoplay clock tempo onbar", 90)
    names = ["playbang", "generate", "continue", "cancel", "status", "subscribe", "unsubscribe", "connect",
             "disconnect", "setarrays", "stop", "clear", "unset", "autoplay", "clock", "tempo", "onbar", "option"]
    as_list = {"generate", "continue", "cancel", "connect", "setarrays", "unset", "tempo", "onbar", "option"}
    top.wire("in", "rt")
    for i, name in enumerate(names):
        x = 20 + 40 * i
        y = 150 + (i % 3) * 50
        if name in as_list:
            top.obj(f"l{i}", x, y, "list append")
            top.obj(f"s{i}", x, y + 25, f"s \\$0-{name}")
            top.chain(f"rt:{i}", f"l{i}", f"s{i}")
        else:
            top.obj(f"s{i}", x, y + 25, f"s \\$0-{name}")
            top.wire(f"rt:{i}", f"s{i}")

    top.obj("ev", 500, 380, "r \\$0-event")
    top.obj("evout", 520, 440, "outlet")
    top.wire("ev", "evout")

    requests(top.sub("preq", 20, 320, "requests", (1300, 700)))
    request_sender(top.sub("psend", 20, 345, "send", (800, 560)))
    options(top.sub("popt", 20, 370, "options", (1200, 640)))
    network(top.sub("pnet", 160, 320, "network", (700, 480)))
    incoming(top.sub("pinc", 160, 345, "events", (800, 480)))
    follow(top.sub("pfol", 160, 395, "follow", (1000, 820)))
    load(top.sub("pload", 160, 370, "load", (900, 700)))
    play = top.sub("pplay", 300, 320, "play", (700, 480))
    playback(play)
    top.obj("aout", 300, 440, "outlet~")
    top.obj("aoutr", 400, 440, "outlet~")
    top.wire("pplay", "aout")
    top.wire("pplay:1", "aoutr")
    return top


def network(c: Canvas) -> None:
    c.text(20, 10, "One UDP socket: requests go out \\, and the daemon answers to the address they came from \\, "
           "so events come back through [netsend]'s right outlet (no listening port needed).", 90)
    c.obj("lb", 20, 60, "loadbang")
    c.msg("def", 20, 85, "connect 127.0.0.1 7400")
    c.obj("rc", 220, 60, "r \\$0-connect")
    c.obj("tc", 220, 85, "t l b")
    c.msg("cm", 220, 115, "connect \\$1 \\$2")
    c.obj("rd", 400, 60, "r \\$0-disconnect")
    c.msg("dm", 330, 115, "disconnect")
    c.obj("rp", 500, 115, "r \\$0-packet")
    c.obj("ns", 20, 160, "netsend -u -b")
    c.msg("conn", 20, 195, "connected \\$1")
    c.obj("parse", 200, 195, "oscparse")
    c.obj("trim", 200, 220, "list trim")
    c.obj("rr", 200, 245, "route riffd")
    c.obj("inc", 200, 270, "s \\$0-incoming")
    c.obj("ev", 20, 300, "s \\$0-event")
    c.chain("lb", "def", "ns")
    c.chain("rc", "tc", "cm", "ns")
    c.wire("tc:1", "dm")
    c.chain("rd", "dm", "ns")
    c.wire("rp", "ns")
    c.wire("ns", "conn")
    c.wire("conn", "ev")
    c.wire("ns:1", "parse")
    c.chain("parse", "trim", "rr", "inc")


def incoming(c: Canvas) -> None:
    c.text(20, 10, "Every event goes out of the right outlet as it came (done JOB PATH ...). Before that \\, an "
           "accepted job becomes the one a bare cancel cancels (so a patch may cancel on accepted). Only the "
           "newest request's job (see the follow subpatch) has its chunk and done load the array. After the "
           "event \\, chunk and done drive the loading (so loaded follows done).", 90)
    c.obj("r", 20, 60, "r \\$0-incoming")
    c.obj("t", 20, 85, "t a a a")
    c.obj("ev", 200, 115, "s \\$0-event")
    c.obj("ra", 380, 115, "route accepted")
    c.obj("la", 380, 145, "list append")
    c.obj("ls", 380, 170, "list split 1")
    c.obj("sa", 380, 195, "s \\$0-accepted-job")
    c.obj("rl", 20, 145, "list append")
    c.obj("rlt", 20, 170, "t l l")
    c.obj("rj", 120, 195, "list split 1")
    c.obj("rj2", 120, 220, "list split 1")
    c.obj("newest", 120, 245, "sel none")
    c.obj("racc", 220, 220, "r \\$0-newest-job")
    c.msg("open", 120, 270, "1")
    c.msg("shut", 180, 270, "0")
    c.obj("gate", 20, 300, "spigot")
    c.obj("trim", 20, 325, "list trim")
    c.obj("kind", 20, 350, "route chunk done")
    c.obj("kc", 20, 375, "list append")
    c.obj("kd", 150, 375, "list append")
    c.obj("sc", 20, 400, "s \\$0-chunk")
    c.obj("sd", 150, 400, "s \\$0-done")
    c.chain("r", "t")
    c.wire("t:2", "ra")
    c.chain("ra", "la", "ls", "sa")
    c.wire("t:1", "ev")
    # The job is the first argument of every event: open the gate for the newest one only.
    c.chain("t", "rl", "rlt")
    c.wire("rlt:1", "rj")
    c.wire("rj:1", "rj2")
    c.wire("rj2", "newest")
    c.wire("racc", "newest:1")
    c.wire("newest", "open")
    c.wire("newest:1", "shut")
    c.wire("open", "gate:1")
    c.wire("shut", "gate:1")
    c.chain("rlt", "gate", "trim", "kind")  # [route] matches the first word of a message, not of a list
    c.chain("kind:0", "kc", "sc")
    c.chain("kind:1", "kd", "sd")
