"""riffd-jam.pd: a jam from Pure Data (start, steer with words and weight sliders, save, stop) and its
audio played gaplessly through a ring buffer; its help patch and its test patch."""

from __future__ import annotations

from clients.pd.patchgen.abstraction import network
from clients.pd.patchgen.pdfile import Canvas
from clients.pd.patchgen.requests import join_words, options, request_sender

#: Weighted prompt slots (`prompt N words...`, `weight N VALUE`).
SLOTS = 4
#: Seconds of audio the ring holds: more than the jam's lead plus the prebuffer plus a chunk.
RING_S = 8
#: Milliseconds of audio buffered after the first chunk before playback starts (`latency MS`).
PREBUFFER_MS = 600
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
    top.obj("ev", 20, 440, "r \\$0-event")
    top.obj("evout", 20, 470, "outlet")
    top.wire("ev", "evout")
    jam_requests(top.sub("preq", 20, 320, "requests", (1000, 700)))
    blend(top.sub("pblend", 20, 345, "blend", (1000, 600)))
    request_sender(top.sub("psend", 20, 370, "send", (800, 560)))
    options(top.sub("popt", 20, 395, "options", (900, 640)))
    network(top.sub("pnet", 180, 320, "network", (700, 480)))
    jam_events(top.sub("pev", 180, 345, "events", (900, 600)))
    ring(top.sub("pring", 180, 370, "ring", (1000, 600)))
    play = top.sub("pplay", 340, 320, "play", (800, 500))
    player(play)
    top.obj("aout", 340, 470, "outlet~")
    top.obj("aoutr", 440, 470, "outlet~")
    top.wire("pplay", "aout")
    top.wire("pplay:1", "aoutr")
    return top


def _with_jam(c: Canvas, key: str, x: int, y: int) -> str:
    """A [list prepend] whose right inlet holds the jam's id (set on accepted): what every control names."""
    c.obj(key, x, y, "list prepend")
    c.obj(f"{key}r", x + 110, y - 25, "r \\$0-jam")
    c.wire(f"{key}r", f"{key}:1")
    return key


def jam_requests(c: Canvas) -> None:
    c.text(20, 10, "Each request becomes ADDRESS TYPES OPTIONS ARGS... for [pd send] (OSC address under /riffd/). "
           "start and resume carry the stored options (seed \\, lead_s \\, play ...) \\; the controls name the "
           "jam the daemon accepted last.", 110)
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
    # resume NAME: an empty prompt, then resume NAME (the snapshot's own prompt and settings).
    c.obj("rr", 250, 70, "r \\$0-resume")
    c.obj("rt", 250, 95, "t b l b")
    c.obj("rreset", 350, 120, "s \\$0-reset")
    c.obj("rname", 300, 125, "symbol")
    c.msg("rempty", 250, 155, "symbol")
    c.obj("rpack", 250, 185, "pack s s")
    c.msg("rm", 250, 215, "list jam/start sss 1 \\$1 resume \\$2")
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
    c.msg("xf", 500, 250, "list jam/set ssf 0 \\$1 \\$2 \\$3")
    c.msg("xi", 700, 250, "list jam/set ssi 0 \\$1 \\$2 \\$3")
    c.msg("xs", 850, 250, "list jam/set sss 0 \\$1 \\$2 \\$3")
    c.obj("xsend", 500, 280, "s \\$0-request")
    c.chain("xr", "xtrim", "xroute")
    for index, name in enumerate((*_SET_FLOATS, "top_k")):
        c.obj(f"xk{index}", 500 + 70 * index, 170, f"list prepend {name}")
        _with_jam(c, f"xj{index}", 500 + 70 * index, 210)
        c.chain(f"xroute:{index}", f"xk{index}", f"xj{index}", "xi" if name == "top_k" else "xf")
    first, last = join_words(c, "xw", 850, 60)
    c.obj("xkp", 850, 190, "list prepend prompt")
    _with_jam(c, "xjp", 850, 220)
    c.wire(f"xroute:{len(_SET_FLOATS) + 1}", first)
    c.chain(last, "xkp", "xjp", "xs")
    for key in ("xf", "xi", "xs"):
        c.wire(key, "xsend")
    # stop, snapshot [NAME].
    c.obj("pr", 20, 340, "r \\$0-stop")
    _with_jam(c, "pj", 20, 390)
    c.msg("pm", 20, 420, "list jam/stop s 0 \\$1")
    c.obj("psend", 20, 450, "s \\$0-request")
    c.chain("pr", "pj", "pm", "psend")
    c.obj("nr", 250, 340, "r \\$0-snapshot")
    c.obj("nroute", 250, 365, "route bang")
    _with_jam(c, "nj0", 250, 415)
    _with_jam(c, "nj1", 400, 415)
    c.msg("nm0", 250, 445, "list jam/snapshot s 0 \\$1")
    c.msg("nm1", 400, 445, "list jam/snapshot sss 0 \\$1 name \\$2")
    c.obj("nsend", 250, 475, "s \\$0-request")
    c.chain("nr", "nroute", "nj0", "nm0", "nsend")
    c.chain("nroute:1", "nj1", "nm1", "nsend")
    c.obj("lr", 600, 340, "r \\$0-latency")
    c.obj("ls", 600, 365, "s \\$0-prebuffer")
    c.wire("lr", "ls")


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
    c.msg("bclear", 900, 110, "set")
    c.msg("bzero", 960, 110, "0")
    c.obj("bacc", 600, 420, "list store")
    c.obj("bcount", 760, 420, "f")
    c.obj("binc", 810, 420, "+ 1")
    c.wire("binc", "bcount:1")
    c.wire("bcount", "binc")
    c.chain("br", "bt")
    c.wire(f"bt:{SLOTS + 1}", "bclear")
    c.wire(f"bt:{SLOTS + 1}", "bzero")
    c.wire("bclear", "bacc")
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
    _with_jam(c, "bjam", 600, 560)
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
    c.chain("bacc", "bjam", "bpre", "bpk", "bpa", "bsend")


def jam_events(c: Canvas) -> None:
    c.text(20, 10, "Every event goes out of the left outlet as it came. accepted sets the jam the controls name \\; "
           "started sizes the ring for the jam's rate \\; each chunk is written into the ring after the last "
           f"\\; the first starts playback {PREBUFFER_MS} ms later (latency MS) \\; done stops it where the "
           "jam's audio ends (then: ended JAM).", 110)
    c.obj("r", 20, 70, "r \\$0-incoming")
    c.obj("t", 20, 95, "t a a")
    c.obj("ev", 140, 120, "s \\$0-event")
    c.obj("trim", 20, 125, "list trim")
    c.obj("route", 20, 150, "route accepted started chunk done")
    c.chain("r", "t")
    c.wire("t:1", "ev")
    c.chain("t", "trim", "route")
    # accepted JAM N: the jam every control names from now on.
    c.obj("acc", 20, 190, "list split 1")
    c.obj("accs", 20, 215, "s \\$0-jam")
    c.chain("route", "acc", "accs")
    # started JAM MODEL RATE CHANNELS SEED: the rate and channels of what comes.
    c.obj("stl", 200, 190, "list append")
    c.obj("stu", 200, 215, "unpack s s f f")
    c.obj("srate", 200, 245, "s \\$0-rate")
    c.obj("sch", 300, 245, "s \\$0-channels")
    c.chain("route:1", "stl", "stu")
    c.wire("stu:2", "srate")
    c.wire("stu:3", "sch")
    # chunk JAM INDEX PATH OFFSET FRAMES STAGE: into the ring; the first starts the player.
    c.obj("chl", 400, 190, "list append")
    c.obj("chu", 400, 215, "unpack s f s")
    c.obj("chp", 480, 245, "s \\$0-chunk-path")
    c.obj("chi", 440, 270, "sel 0")
    c.obj("chpre", 440, 300, "r \\$0-prebuffer")
    c.obj("chdel", 440, 325, f"delay {PREBUFFER_MS}")
    c.obj("chstart", 440, 350, "s \\$0-play-start")
    c.chain("route:2", "chl", "chu")
    c.wire("chu:2", "chp")
    c.wire("chu:1", "chi")
    c.wire("chpre", "chdel:1")
    c.chain("chi", "chdel", "chstart")
    # done JAM [PATH] FRAMES RATE (an empty path does not come through [oscparse]): the player stops
    # where the jam's audio ends, FRAMES being the last but one atom.
    c.obj("dl", 650, 190, "list append")
    c.obj("dt", 650, 215, "t l l")
    c.obj("dlen", 750, 240, "list length")
    c.obj("dm2", 750, 265, "- 2")
    c.obj("dsplit", 650, 290, "list split")
    c.obj("du", 700, 320, "unpack f f")
    c.obj("dend", 700, 350, "s \\$0-play-end")
    c.chain("route:3", "dl", "dt")
    c.wire("dt:1", "dlen")
    c.chain("dlen", "dm2")
    c.wire("dm2", "dsplit:1")
    c.wire("dt", "dsplit")
    c.wire("dsplit:1", "du")
    c.wire("du", "dend")
    # A new jam (start, resume) stops what plays and forgets the old one's audio.
    c.obj("rr", 20, 300, "r \\$0-reset")
    c.obj("rstop", 20, 325, "s \\$0-play-stop")
    c.msg("rdel", 120, 325, "stop")
    c.wire("rr", "rstop")
    c.wire("rr", "rdel")
    c.wire("rdel", "chdel")


def ring(c: Canvas) -> None:
    c.text(20, 10, f"The ring: {RING_S} s of the jam's audio at its own rate (left \\, right). A chunk file is read "
           "into the chunk arrays and copied in after the last one (wrapping at the end): chunks are written in "
           "order \\, so positions stay exact however long the jam runs (a float offset would not past 2^24).", 110)
    for key, y, name in (("ca", 40, "chunk"), ("car", 65, "chunk-r"), ("ra", 90, "ring"), ("rar", 115, "ring-r")):
        c.obj(key, 760, y, f"array define \\$0-{name}")
    # The ring's size follows the jam's rate; a new jam clears it and writes from its start.
    c.obj("rate", 20, 60, "r \\$0-rate")
    c.obj("size", 20, 85, f"* {RING_S}")
    c.obj("sizet", 20, 110, "t b b f f")
    c.obj("rsize", 20, 170, "s \\$0-ring-size")
    c.msg("resize", 120, 140, "resize \\$1")
    c.msg("clear", 220, 140, "const 0")
    c.obj("sl", 120, 170, "s \\$0-ring")
    c.obj("slr", 220, 170, "s \\$0-ring-r")
    c.msg("zero", 320, 140, "0")
    c.chain("rate", "size", "sizet")
    c.wire("sizet:3", "rsize")
    c.wire("sizet:2", "resize")
    c.wire("sizet:1", "clear")
    c.wire("sizet", "zero")
    for target in ("sl", "slr"):
        c.wire("resize", target)
        c.wire("clear", target)
    # Read the chunk file into the chunk arrays (a mono file leaves the right one silent).
    c.obj("pr", 20, 220, "r \\$0-chunk-path")
    c.obj("lb", 180, 170, "loadbang")
    c.obj("d0", 180, 195, "f \\$0")
    c.obj("mk", 180, 220, "makefilename %d-chunk")
    c.obj("mkr", 300, 220, "makefilename %d-chunk-r")
    c.obj("pk", 20, 250, "pack s s s")
    c.msg("read", 20, 275, "read -resize \\$1 \\$2 \\$3")
    c.obj("sf", 20, 300, "soundfiler")
    c.chain("lb", "d0")
    c.wire("d0", "mk")
    c.wire("d0", "mkr")
    c.wire("mk", "pk:1")
    c.wire("mkr", "pk:2")
    c.chain("pr", "pk", "read", "sf")
    # Its n frames go to the write position p: n1 = min(n, size - p) there, the rest to the start.
    c.obj("nt", 20, 330, "t f f f f")
    # The write position, shared by the boxes below ([v] reads it on a bang, stores a float).
    c.obj("p", 20, 400, "v \\$0-write")
    c.obj("rsz", 420, 300, "r \\$0-ring-size")
    c.wire("zero", "p")
    c.obj("go", 20, 360, "t b b b b")
    c.obj("room", 120, 430, "expr min(\\$f2 \\, \\$f3 - \\$f1)")
    c.obj("rest", 320, 430, "expr \\$f2 - \\$f1")
    c.obj("adv", 500, 430, "expr fmod(\\$f1 + \\$f2 \\, \\$f3)")
    c.chain("sf", "nt")
    c.wire("nt:3", "room:1")
    c.wire("nt:2", "rest:1")
    c.wire("nt:1", "adv:1")
    c.wire("rsz", "room:2")
    c.wire("rsz", "adv:2")
    c.wire("nt", "go")
    # go:3 -> n1 (the first part's length) and the rest's, kept for the copies.
    c.obj("pa", 120, 400, "v \\$0-write")
    c.wire("go:3", "pa")
    c.wire("pa", "room")
    c.obj("n1t", 120, 460, "t f f")
    c.wire("room", "n1t")
    c.obj("n1keep", 220, 490, "f")
    c.wire("n1t:1", "n1keep:1")
    c.wire("n1t", "rest")
    c.obj("restkeep", 320, 490, "f")
    c.wire("rest", "restkeep:1")
    # go:2 -> the first part: n1 frames from 0 to p.
    c.obj("c1", 20, 520, "t b b")
    # [array get]: a float in its left inlet is the onset and outputs; its middle inlet is how many.
    c.obj("gl", 20, 580, "array get \\$0-chunk")
    c.obj("gr", 160, 580, "array get \\$0-chunk-r")
    c.msg("from0", 20, 550, "0")
    c.obj("stl", 20, 610, "array set \\$0-ring")
    c.obj("str", 160, 610, "array set \\$0-ring-r")
    c.obj("pb", 100, 550, "v \\$0-write")
    c.wire("go:2", "c1")
    c.wire("c1:1", "pb")
    c.wire("pb", "stl:1")
    c.wire("pb", "str:1")
    c.wire("n1t:1", "gl:1")
    c.wire("n1t:1", "gr:1")
    c.wire("c1", "from0")
    c.wire("from0", "gl")
    c.wire("from0", "gr")
    c.wire("gl", "stl")
    c.wire("gr", "str")
    # go:1 -> the rest, if any: frames n1 .. n to the ring's start.
    c.obj("rb", 320, 520, "t b")
    c.wire("go:1", "rb")
    c.wire("rb", "restkeep")
    c.obj("restmo", 320, 545, "moses 1")
    c.obj("rt", 380, 570, "t b f")
    c.wire("restkeep", "restmo")
    c.wire("restmo:1", "rt")
    c.obj("g2l", 320, 630, "array get \\$0-chunk")
    c.obj("g2r", 460, 630, "array get \\$0-chunk-r")
    c.obj("s2l", 320, 660, "array set \\$0-ring")
    c.obj("s2r", 460, 660, "array set \\$0-ring-r")
    c.wire("rt:1", "g2l:1")
    c.wire("rt:1", "g2r:1")
    c.wire("rt", "n1keep")
    c.wire("n1keep", "g2l")
    c.wire("n1keep", "g2r")
    c.wire("g2l", "s2l")
    c.wire("g2r", "s2r")
    # go:0 -> p = (p + n) mod size.
    c.obj("pc", 500, 400, "v \\$0-write")
    c.wire("go", "pc")
    c.wire("pc", "adv")
    c.wire("adv", "p")


def player(c: Canvas) -> None:
    c.text(20, 10, "The read head: a phasor over the ring at the jam's own rate (so a 32 kHz jam sounds right at any "
           "Pd rate) \\, started by the first chunk after the prebuffer \\, stopped where the jam's audio ends "
           "(done) or when a new jam starts. A mono jam plays on both outlets.", 100)
    # The ring holds RING_S seconds at the jam's rate: the head goes round once every RING_S seconds.
    c.obj("fkeep", 20, 120, f"f {1 / RING_S:g}")
    # Start: phase 0, the ring's frequency, gain up over 5 ms; a timer from now (for where done ends).
    c.obj("start", 20, 150, "r \\$0-play-start")
    c.obj("st", 20, 175, "t b b b b")
    c.msg("ph0", 200, 205, "0")
    c.msg("up", 300, 205, "1 5")
    c.obj("timer", 400, 205, "timer")
    c.obj("ph", 20, 240, "phasor~")
    c.obj("idx", 20, 270, "*~")
    c.obj("sig", 120, 240, "r \\$0-ring-size")
    c.obj("tl", 20, 300, "tabread4~ \\$0-ring")
    c.obj("tr", 160, 300, "tabread4~ \\$0-ring-r")
    c.obj("gain", 300, 270, "line~")
    c.obj("ml", 20, 330, "*~")
    c.obj("mr", 160, 330, "*~")
    c.obj("ol", 20, 360, "outlet~")
    c.obj("or", 160, 360, "outlet~")
    c.chain("start", "st")
    c.wire("st:3", "timer")
    c.wire("st:2", "up")
    c.wire("st:1", "ph0")
    c.wire("st", "fkeep")
    c.wire("fkeep", "ph")
    c.wire("ph0", "ph:1")
    c.wire("up", "gain")
    c.chain("ph", "idx", "tl", "ml", "ol")
    c.wire("sig", "idx:1")
    c.wire("idx", "tr")
    c.chain("tr", "mr", "or")
    c.wire("gain", "ml:1")
    c.wire("gain", "mr:1")
    # done FRAMES: stop when the head gets there (FRAMES / rate from the start), then say so.
    c.obj("end", 450, 60, "r \\$0-play-end")
    c.obj("rate2", 560, 60, "r \\$0-rate")
    c.obj("et", 450, 90, "t f b")
    c.obj("ems", 450, 150, "expr \\$f1 * 1000 / \\$f2 - \\$f3")
    c.wire("rate2", "ems:1")
    c.wire("end", "et")
    c.wire("et:1", "timer:1")
    c.wire("timer", "ems:2")
    c.wire("et", "ems")
    c.obj("emax", 450, 180, "max 0")
    c.obj("edel", 450, 210, "delay")
    c.wire("ems", "emax")
    c.wire("emax", "edel")
    c.obj("stop", 600, 150, "r \\$0-play-stop")
    c.msg("sdel", 700, 180, "stop")
    c.wire("stop", "sdel")
    c.wire("sdel", "edel")
    c.obj("halt", 600, 240, "t b b")
    c.wire("edel", "halt")
    c.wire("stop", "halt")
    c.msg("down", 600, 270, "0 5")
    c.msg("f0", 700, 270, "0")
    c.wire("halt:1", "down")
    c.wire("down", "gain")
    c.wire("halt", "f0")
    c.wire("f0", "ph")
    c.obj("jam", 450, 300, "symbol")
    c.obj("rjam", 550, 270, "r \\$0-jam")
    c.wire("rjam", "jam:1")
    c.msg("ended", 450, 330, "ended \\$1")
    c.obj("evs", 450, 360, "s \\$0-event")
    c.wire("edel", "jam")
    c.chain("jam", "ended", "evs")
    # The right outlet reads the right ring only for a stereo jam.
    c.obj("rch", 300, 60, "r \\$0-channels")
    c.obj("mono", 300, 90, "sel 1")
    c.obj("d0", 380, 90, "f \\$0")
    c.obj("lname", 300, 120, "makefilename %d-ring")
    c.obj("rname", 380, 120, "makefilename %d-ring-r")
    c.msg("setr", 300, 150, "set \\$1")
    c.obj("dz", 300, 115, "f \\$0")
    c.obj("mt", 380, 65, "t b")
    c.chain("rch", "mono", "dz", "lname", "setr", "tr")
    c.chain("mono:1", "mt", "d0", "rname", "setr")


def jam_help_patch() -> Canvas:
    c = Canvas(size=(1000, 720))
    c.obj(None, 20, 15, "riffd-jam")
    c.text(110, 15, "- an endless jam from a riffd daemon \\, steered while it plays", 70)
    c.text(20, 45, "Start the daemon first (riffd serve --model facebook/musicgen-small --engine int8). [riffd-jam] "
           "talks to it over OSC/UDP (default 127.0.0.1 port 7400) and plays the jam's audio from its outlets "
           "as the chunks come (a ring buffer \\, played at the jam's own rate). Add play 1 to hear it on the "
           "daemon's sound card instead. Every change answers with applied JAM OFFSET_SAMPLES: from there on "
           "the music has it (a lead of about a second).", 130)
    y = 140
    c.text(20, y, "1. options for start (kept until changed): seed \\, lead_s \\, context_s \\, play \\, gain "
           "\\, temperature \\, top_k \\, guidance_scale \\, model \\, job ...", 120)
    for i, text in enumerate(["option seed 7", "option lead_s 1", "option play 1", "unset play", "clear"]):
        c.msg(f"o{i}", 20 + i * 150, y + 30, text)
    y = 210
    c.text(20, y, "2. start \\, stop \\, save and recall:", 60)
    c.msg("start", 20, y + 25, "start dub techno \\, deep chords \\, 120 bpm")
    c.msg("stop", 360, y + 25, "stop")
    c.msg("snap", 420, y + 25, "snapshot verse-2")
    c.msg("resume", 560, y + 25, "resume verse-2")
    c.text(700, y + 25, "resume: go on exactly where the snapshot was taken", 40)
    y = 290
    c.text(20, y, "3. steer it while it plays:", 60)
    c.msg("t1", 20, y + 25, "set temperature 1.2")
    c.msg("t2", 180, y + 25, "set top_k 100")
    c.msg("t3", 310, y + 25, "set guidance_scale 4")
    c.msg("t4", 480, y + 25, "set prompt ambient pads \\, no drums")
    c.msg("t5", 760, y + 25, "set gain 0.5")
    y = 360
    c.text(20, y, "4. weighted prompts: a text per slot \\, a slider per weight (relative: 0.7 and 0.3 is 70/30):", 100)
    c.msg("p1", 20, y + 25, "prompt 1 dub techno")
    c.msg("p2", 200, y + 25, "prompt 2 tabla groove")
    c.msg("p3", 400, y + 25, "prompt 3 bright bells")
    for n in range(1, 4):
        x = 20 + (n - 1) * 190
        c.obj(f"hsl{n}", x, y + 60, "hsl 150 15 0 1 0 0 empty empty empty -2 -8 0 10 #fcfcfc #000000 #000000 0 1")
        c.msg(f"w{n}", x, y + 85, f"weight {n} \\$1")
        c.wire(f"hsl{n}", f"w{n}")
    y = 480
    c.obj("jam", 20, y, "riffd-jam")
    c.obj("vol", 20, y + 40, "*~ 0.5")
    c.obj("volr", 120, y + 40, "*~ 0.5")
    c.obj("dac", 20, y + 70, "dac~")
    c.obj("pr", 250, y + 40, "print riffd-jam")
    c.text(250, y + 70, "events: accepted JAM 0 \\, started JAM MODEL SAMPLE_RATE CHANNELS SEED \\, chunk JAM INDEX "
           "PATH OFFSET_SAMPLES FRAMES STAGE \\, applied JAM OFFSET_SAMPLES \\, snapshot JAM PATH OFFSET_SAMPLES "
           "\\, ok jam_stop JAM \\, done JAM PATH FRAMES SAMPLE_RATE \\, ended JAM (the last sample played) \\, "
           "error JAM CODE MESSAGE", 90)
    c.msg("lat", 20, y + 110, "latency 800")
    c.text(120, y + 110, "ms buffered after the first chunk before playing (default 600)", 60)
    for key in ["o0", "o1", "o2", "o3", "o4", "start", "stop", "snap", "resume", "t1", "t2", "t3", "t4", "t5",
                "p1", "p2", "p3", "w1", "w2", "w3", "lat"]:
        c.wire(key, "jam")
    c.chain("jam:1", "vol", "dac")
    c.wire("jam:2", "volr")
    c.wire("volr", "dac:1")
    c.wire("jam", "pr")
    return c


def jam_test_patch() -> Canvas:
    """A jam from Pd against a real daemon: start, a set, weighted prompts, a snapshot, stop; every event
    to LOG, the outlets recorded into PLAYED until the player says the jam ended."""
    c = Canvas(size=(900, 600))
    c.text(20, 10, "Test patch for tests/clients_pd: -send \"riffd-jam-test PORT LOG PLAYED\".", 100)
    c.obj("log", 600, 40, "text define riffd-jam-test-log")
    c.obj("r", 20, 60, "r riffd-jam-test")
    c.obj("t", 20, 85, "t l l l")
    c.obj("up", 200, 110, "unpack f s s")
    c.obj("slog", 200, 140, "symbol")
    c.obj("splayed", 300, 140, "symbol")
    c.obj("port", 20, 110, "list split 1")
    c.msg("conn", 20, 140, "connect 127.0.0.1 \\$1")
    c.msg("go", 20, 170, "option seed 5 \\, option job pdjam \\, start pd jam")
    c.obj("jam", 20, 230, "riffd-jam")
    c.msg("dsp", 420, 110, "\\; pd dsp 1")
    c.msg("wopen", 300, 170, "open -bytes 4 \\$1 \\, start")
    c.obj("wsf", 300, 260, "writesf~ 2")
    c.chain("r", "t")
    c.wire("t:2", "up")
    c.wire("up:1", "slog:1")
    c.wire("up:2", "splayed:1")
    c.wire("t:1", "dsp")
    c.obj("tb", 300, 110, "t b")
    c.wire("t:1", "tb")
    c.chain("tb", "splayed", "wopen", "wsf")
    c.chain("t", "port", "conn", "jam")
    c.obj("gt", 20, 200, "t b")
    c.wire("conn", "gt")
    c.chain("gt", "go", "jam")
    c.wire("jam:1", "wsf")
    c.wire("jam:2", "wsf:1")
    # Every event into the log; on started, the script of changes; on ended, finish.
    c.obj("ev", 150, 290, "t a a")
    c.obj("evl", 250, 320, "list")
    c.obj("evset", 250, 345, "text set riffd-jam-test-log 1e+06")
    c.obj("rt", 150, 320, "route started ended")
    c.wire("jam", "ev")
    c.wire("ev:1", "evl")
    c.wire("evl", "evset")
    c.wire("ev", "rt")
    c.obj("d1", 20, 360, "delay 1200")
    c.msg("m1", 20, 385, "set temperature 1.2")
    c.obj("d2", 20, 410, "delay 400")
    c.msg("m2", 20, 435, "prompt 1 dub techno \\, prompt 2 tabla groove \\, weight 2 0.3")
    c.obj("d3", 20, 460, "delay 600")
    c.msg("m3", 20, 485, "snapshot pdsnap")
    c.obj("d4", 20, 510, "delay 800")
    c.msg("m4", 20, 535, "stop")
    c.obj("sb", 150, 345, "t b")
    c.wire("rt", "sb")
    c.wire("sb", "d1")
    c.chain("d1", "m1", "jam")
    c.wire("d1", "d2")
    c.chain("d2", "m2", "jam")
    c.wire("d2", "d3")
    c.chain("d3", "m3", "jam")
    c.wire("d3", "d4")
    c.chain("d4", "m4", "jam")
    # Ended (or a timeout): stop recording, write the log, quit.
    c.obj("eb", 400, 380, "t b")
    c.obj("ed", 400, 405, "delay 300")
    c.obj("fin", 400, 430, "t b b b")
    c.msg("wstop", 520, 455, "stop")
    c.msg("wlog", 460, 480, "write \\$1")
    c.msg("quit", 400, 520, "\\; pd quit")
    c.obj("lb", 650, 380, "loadbang")
    c.obj("to", 650, 405, "delay 40000")
    c.msg("tomsg", 650, 430, "list timeout")
    c.wire("rt:1", "eb")
    c.chain("eb", "ed", "fin")
    c.wire("fin:2", "wstop")
    c.wire("wstop", "wsf")
    c.wire("fin:1", "slog")
    c.chain("slog", "wlog", "log")
    c.wire("fin", "quit")
    c.chain("lb", "to", "tomsg", "evset")
    c.wire("to", "fin")
    return c
