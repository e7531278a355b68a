"""riffd-jam.pd: a jam from Pure Data (start, steer with words and weight sliders, save, stop), its
audio played gaplessly through a ring buffer (jam_audio); the top canvas and the requests."""

from __future__ import annotations

from clients.pd.patchgen.abstraction import network
from clients.pd.patchgen.jam_audio import jam_events, player, ring
from clients.pd.patchgen.jam_own import own_events
from clients.pd.patchgen.pdfile import Canvas
from clients.pd.patchgen.requests import join_words, options, request_sender

#: Weighted prompt slots (`prompt N words...`, `weight N VALUE`).
SLOTS = 4
#: Float options of jam_set; top_k is the int one, prompt the text one.
_SET_FLOATS = ("temperature", "top_p", "guidance_scale", "gain")


def jam_abstraction() -> Canvas:
    """riffd-jam.pd."""
    top = Canvas(size=(860, 520))
    top.text(20, 10, "riffd-jam - an endless jam from a riffd daemon \\, steered while it plays. Left outlet: "
             "every event \\; right outlets: the jam's audio (left \\, right) \\, streamed gaplessly. Usage: "
             "riffd-jam-help.pd.", 100)
    top.obj("in", 20, 70, "inlet")
    names = ["start", "resume", "set", "prompt", "weight", "blend", "stop", "snapshot", "option", "unset", "clear",
             "connect", "disconnect", "latency"]
    top.obj("rt", 20, 100, "route " + " ".join(names), 100)
    top.wire("in", "rt")
    for i, name in enumerate(names):
        x, y = 20 + 55 * i, 150 + (i % 3) * 50
        if name in ("blend", "stop", "clear", "disconnect"):
            top.obj(f"s{i}", x, y + 25, f"s \\$0-{name}")
            top.wire(f"rt:{i}", f"s{i}")
        else:
            top.obj(f"l{i}", x, y, "list append")
            top.obj(f"s{i}", x, y + 25, f"s \\$0-{name}")
            top.chain(f"rt:{i}", f"l{i}", f"s{i}")
    # Anything else (the words after a comma in a message box: a comma starts a new message) is said, not dropped.
    top.obj("unknown", 20 + 55 * len(names), 150, "list prepend unknown message:")
    top.obj("unknownt", 20 + 55 * len(names), 175, "list trim")
    top.obj("unknownp", 20 + 55 * len(names), 200, "print riffd-jam")
    top.chain(f"rt:{len(names)}", "unknown", "unknownt", "unknownp")
    top.obj("ev", 20, 440, "r \\$0-event")
    top.obj("evout", 20, 470, "outlet")
    top.wire("ev", "evout")
    jam_requests(top.sub("preq", 20, 320, "requests", (1000, 700)))
    blend(top.sub("pblend", 20, 345, "blend", (1000, 600)))
    request_sender(top.sub("psend", 20, 370, "send", (800, 560)))
    options(top.sub("popt", 20, 395, "options", (1200, 640)))
    network(top.sub("pnet", 180, 320, "network", (700, 480)))
    jam_events(top.sub("pev", 180, 345, "events", (900, 600)))
    own_events(top.sub("pown", 340, 345, "own", (800, 600)))
    ring(top.sub("pring", 180, 370, "ring", (1000, 600)))
    play = top.sub("pplay", 340, 320, "play", (800, 500))
    player(play)
    top.obj("aout", 340, 470, "outlet~")
    top.obj("aoutr", 440, 470, "outlet~")
    top.wire("pplay", "aout")
    top.wire("pplay:1", "aoutr")
    return top


def _with_jam(c: Canvas, key: str, x: int, y: int, *, say: bool = True) -> tuple[str, str]:
    """Boxes prepending the jam's id (set on accepted) to a control, the jam every control names; before
    any jam was accepted the control is dropped (and, with `say`, [pd requests] prints why). Returns
    (first, last)."""
    c.obj(f"{key}t", x, y - 50, "t l b")
    c.obj(f"{key}v", x + 60, y - 25, "v \\$0-has-jam")
    c.obj(f"{key}g", x, y - 25, "spigot")
    c.obj(key, x, y, "list prepend")
    c.obj(f"{key}r", x + 110, y - 25, "r \\$0-jam")
    c.wire(f"{key}t:1", f"{key}v")
    c.wire(f"{key}v", f"{key}g:1")
    if say:
        c.obj(f"{key}c", x + 60, y, "s \\$0-jam-check")
        c.wire(f"{key}v", f"{key}c")
    c.chain(f"{key}t", f"{key}g", key)
    c.wire(f"{key}r", f"{key}:1")
    return f"{key}t", key


def jam_requests(c: Canvas) -> None:
    c.text(20, 10, "Each request becomes ADDRESS TYPES OPTIONS ARGS... for [pd send] (OSC address under /riffd/). "
           "start carries the stored options (seed \\, lead_s \\, play ...) \\, resume those a resume takes (not "
           "the snapshot's own settings: seed \\, temperature ...) \\; the controls name the jam the daemon accepted "
           "last \\, and before one was accepted they are dropped with a print.", 110)
    # start words...: the prompt, one symbol.
    c.obj("sr", 20, 70, "r \\$0-start")
    c.obj("st", 20, 95, "t l b")
    c.obj("sreset", 120, 120, "s \\$0-reset")
    first, last = join_words(c, "sj", 20, 130)
    c.msg("sm", 20, 260, "list jam/start s 1 \\$1")
    c.obj("ssend", 20, 290, "s \\$0-request")
    c.chain("sr", "st")
    c.wire("st:1", "sreset")
    c.wire("st", first)
    c.chain(last, "sm", "ssend")
    # resume NAME: an empty prompt, then resume NAME (the snapshot's own prompt and settings: OPTIONS 2
    # leaves out the stored options a resume refuses).
    c.obj("rr", 250, 70, "r \\$0-resume")
    c.obj("rt", 250, 95, "t b l b")
    c.obj("rreset", 350, 120, "s \\$0-reset")
    c.obj("rname", 300, 125, "symbol")
    c.msg("rempty", 250, 155, "symbol")
    c.obj("rpack", 250, 185, "pack s s")
    c.msg("rm", 250, 215, "list jam/start sss 2 \\$1 resume \\$2")
    c.obj("rsend", 250, 245, "s \\$0-request")
    c.chain("rr", "rt")
    c.wire("rt:2", "rreset")
    c.wire("rt:1", "rname")
    c.wire("rname", "rpack:1")
    c.chain("rt", "rempty", "rpack", "rm", "rsend")
    # set KEY VALUE: numbers as f (top_k as i), prompt words as one symbol.
    c.obj("xr", 500, 70, "r \\$0-set")
    c.obj("xtrim", 500, 95, "list trim")
    c.obj("xroute", 500, 120, "route " + " ".join(_SET_FLOATS) + " top_k prompt", 60)
    c.msg("xf", 500, 290, "list jam/set ssf 0 \\$1 \\$2 \\$3")
    c.msg("xi", 700, 290, "list jam/set ssi 0 \\$1 \\$2 \\$3")
    c.msg("xs", 850, 290, "list jam/set sss 0 \\$1 \\$2 \\$3")
    c.obj("xsend", 500, 320, "s \\$0-request")
    c.chain("xr", "xtrim", "xroute")
    for index, name in enumerate((*_SET_FLOATS, "top_k")):
        c.obj(f"xk{index}", 500 + 70 * index, 170, f"list prepend {name}")
        into, out = _with_jam(c, f"xj{index}", 500 + 70 * index, 240)
        c.chain(f"xroute:{index}", f"xk{index}", into)
        c.wire(out, "xi" if name == "top_k" else "xf")
    first, last = join_words(c, "xw", 850, 60)
    c.obj("xkp", 850, 190, "list prepend prompt")
    into, out = _with_jam(c, "xjp", 850, 240)
    c.wire(f"xroute:{len(_SET_FLOATS) + 1}", first)
    c.chain(last, "xkp", into)
    c.wire(out, "xs")
    for key in ("xf", "xi", "xs"):
        c.wire(key, "xsend")
    # stop, snapshot [NAME].
    c.obj("pr", 20, 370, "r \\$0-stop")
    into, out = _with_jam(c, "pj", 20, 450)
    c.msg("pm", 20, 480, "list jam/stop s 0 \\$1")
    c.obj("psend", 20, 510, "s \\$0-request")
    c.chain("pr", into)
    c.chain(out, "pm", "psend")
    c.obj("nr", 250, 370, "r \\$0-snapshot")
    c.obj("nroute", 250, 395, "route bang")
    into0, out0 = _with_jam(c, "nj0", 250, 475)
    into1, out1 = _with_jam(c, "nj1", 400, 475)
    c.msg("nm0", 250, 505, "list jam/snapshot s 0 \\$1")
    c.msg("nm1", 400, 505, "list jam/snapshot sss 0 \\$1 name \\$2")
    c.obj("nsend", 250, 535, "s \\$0-request")
    c.chain("nr", "nroute", into0)
    c.chain(out0, "nm0", "nsend")
    c.chain("nroute:1", into1)
    c.chain(out1, "nm1", "nsend")
    c.obj("lr", 600, 370, "r \\$0-latency")
    c.obj("ls", 600, 395, "s \\$0-prebuffer")
    c.wire("lr", "ls")
    # A control before any jam was accepted (stop after a refused start or resume, say): a print, no request.
    c.obj("kr", 600, 450, "r \\$0-jam-check")
    c.obj("ksel", 600, 475, "sel 0")
    c.msg("km", 600, 500, "no jam yet: start or resume one first")
    c.obj("kpr", 600, 525, "print riffd-jam")
    c.chain("kr", "ksel", "km", "kpr")


def blend(c: Canvas) -> None:
    c.text(20, 10, f"Weighted prompts: prompt N words... sets slot N (1-{SLOTS}) \\, weight N VALUE its weight "
           "(relative \\, >= 0 \\, 1 until set). Either sends every slot that has a text to the jam as "
           "/riffd/jam/prompts TEXT WEIGHT ... (so a slider on a weight steers the blend) \\; blend sends "
           "them again.", 110)
    slots = " ".join(str(n) for n in range(1, SLOTS + 1))
    # prompt N words...: slot N's text (the words joined), then blend.
    c.obj("pr", 20, 80, "r \\$0-prompt")
    c.obj("pt", 20, 105, "t b l")
    c.obj("ps", 60, 130, "list split 1")
    first, last = join_words(c, "pw", 160, 155)
    c.obj("proute", 60, 290, f"route {slots}")
    c.obj("pblend", 20, 370, "s \\$0-blend")
    c.chain("pr", "pt")
    c.wire("pt:1", "ps")
    c.wire("ps:1", first)
    c.wire("ps", "proute")
    c.wire("pt", "pblend")
    # weight N VALUE: slot N's weight, then blend.
    c.obj("wr", 300, 80, "r \\$0-weight")
    c.obj("wt", 300, 105, "t b l")
    c.obj("wroute", 340, 130, f"route {slots}")
    c.obj("wblend", 300, 160, "s \\$0-blend")
    c.chain("wr", "wt")
    c.wire("wt:1", "wroute")
    c.wire("wt", "wblend")
    for n in range(1, SLOTS + 1):
        # The joined text waits in every slot's [symbol]; the slot number bangs out the one it names.
        c.obj(f"pkeep{n}", 60 + 70 * (n - 1), 320, "symbol")
        c.obj(f"pts{n}", 60 + 70 * (n - 1), 345, f"s \\$0-slot-text-{n}")
        c.obj(f"wts{n}", 340 + 60 * (n - 1), 190, f"s \\$0-slot-weight-{n}")
        c.wire(last, f"pkeep{n}:1")
        c.chain(f"proute:{n - 1}", f"pkeep{n}", f"pts{n}")
        c.wire(f"wroute:{n - 1}", f"wts{n}")
    # blend: the slots with a text, in order, into one list (and how many), then the request.
    c.obj("br", 600, 60, "r \\$0-blend")
    c.obj("bt", 600, 85, "t b " + "b " * SLOTS + "b")
    c.msg("bzero", 960, 110, "0")
    c.obj("bacc", 600, 420, "list store")
    c.obj("bcount", 760, 420, "f")
    c.obj("binc", 810, 420, "+ 1")
    c.wire("binc", "bcount:1")
    c.wire("bcount", "binc")
    c.chain("br", "bt")
    # A bang in [list store]'s right inlet empties it (a set message there only overwrites from an index).
    c.wire(f"bt:{SLOTS + 1}", "bacc:1")
    c.wire(f"bt:{SLOTS + 1}", "bzero")
    c.wire("bzero", "bcount:1")
    for n in range(1, SLOTS + 1):
        x = 600 + (SLOTS - n) * 80
        c.obj(f"rt{n}", x, 115, f"r \\$0-slot-text-{n}")
        c.obj(f"rw{n}", x + 40, 240, f"r \\$0-slot-weight-{n}")
        c.obj(f"rtt{n}", x, 140, "t s b")
        c.msg(f"one{n}", x + 40, 165, "1")
        c.obj(f"has{n}", x, 190, "f")
        c.obj(f"sel{n}", x, 215, "sel 1")
        c.obj(f"t{n}", x, 240, "t b b b")
        c.obj(f"text{n}", x, 270, "symbol")
        c.obj(f"w{n}", x + 40, 270, "f 1")
        c.obj(f"pk{n}", x, 300, "pack s f")
        c.obj(f"ap{n}", x, 325, "list prepend append")
        c.obj(f"tr{n}", x, 350, "list trim")
        c.chain(f"rt{n}", f"rtt{n}")
        c.wire(f"rtt{n}:1", f"one{n}")
        c.wire(f"one{n}", f"has{n}:1")
        c.wire(f"rtt{n}", f"text{n}:1")
        c.wire(f"rw{n}", f"w{n}:1")
        c.chain(f"bt:{SLOTS + 1 - n}", f"has{n}", f"sel{n}", f"t{n}")
        c.wire(f"t{n}:2", f"w{n}")
        c.wire(f"w{n}", f"pk{n}:1")
        c.wire(f"t{n}:1", f"text{n}")
        c.chain(f"text{n}", f"pk{n}", f"ap{n}", f"tr{n}", "bacc")
        c.wire(f"t{n}", "bcount")
    # Out: how many slots -> the OSC type tags, then JAM TEXT WEIGHT ... (nothing when no slot has a text).
    c.obj("bcur", 760, 460, "f")
    c.wire("binc", "bcur:1")
    c.wire("bzero", "bcur:1")
    c.obj("bmo", 760, 490, "moses 1")
    c.obj("bsplit", 830, 520, "t b b f")
    c.obj("btypes", 870, 550, f"sel {slots}")
    c.obj("btsym", 830, 610, "symbol")
    for n in range(1, SLOTS + 1):
        c.msg(f"bty{n}", 870 + 70 * (n - 1), 580, "symbol s" + "sf" * n)
        c.wire(f"btypes:{n - 1}", f"bty{n}")
        c.wire(f"bty{n}", "btsym:1")
    into, out = _with_jam(c, "bjam", 600, 560, say=False)  # the slots are kept for the next blend
    c.obj("bpre", 600, 590, "list prepend 0")
    c.obj("bpk", 600, 620, "list prepend")
    c.obj("bpa", 600, 650, "list prepend jam/prompts")
    c.obj("bsend", 600, 680, "s \\$0-request")
    c.wire("bt", "bcur")
    c.chain("bcur", "bmo")
    c.wire("bmo:1", "bsplit")
    c.wire("bsplit:2", "btypes")
    c.wire("bsplit:1", "btsym")
    c.wire("btsym", "bpk:1")
    c.wire("bsplit", "bacc")
    c.chain("bacc", into)
    c.chain(out, "bpre", "bpk", "bpa", "bsend")
