"""The request side of riffd.pd: Pd messages to OSC requests, the stored options, the OSC sender."""

from __future__ import annotations

from clients.pd.patchgen.pdfile import Canvas
from protocol.messages import JAM_SNAPSHOT_SETTINGS, Continue, Generate
from protocol.schema import fields_of


def _keys(*kinds: str) -> str:
    """Option names of generate and continue whose wire kind is one of `kinds`, from the schema."""
    names = {spec.name: None for cls in (Generate, Continue) for spec in fields_of(cls)
             if spec.kind in kinds and spec.name not in ("id", "duration_s", "audio", "reply_port")}
    return " ".join(names)


#: Fields of kind int or bool, and bit_depth's number: a number is sent with the OSC type tag i (a word,
#: bit_depth float, goes as s like any word).
INT_KEYS = _keys("int", "bool", "int|str")
#: Fields of kind str: a number given for one (job 12) is sent as a string.
STR_KEYS = _keys("str", "audio")


def join_words(c: Canvas, prefix: str, x: int, y: int) -> tuple[str, str]:
    """Boxes turning a list of words into one symbol (spaces kept): returns (first, last)."""
    c.obj(f"{prefix}p", x, y, "list prepend x")
    c.obj(f"{prefix}t", x, y + 25, "list trim")
    c.obj(f"{prefix}f", x, y + 50, "fudiformat -u")
    c.obj(f"{prefix}s", x, y + 75, "list split 2")
    c.obj(f"{prefix}y", x, y + 100, "list tosymbol")
    c.chain(f"{prefix}p", f"{prefix}t", f"{prefix}f", f"{prefix}s")
    c.wire(f"{prefix}s:1", f"{prefix}y")
    return f"{prefix}p", f"{prefix}y"


def number_then_words(c: Canvas, prefix: str, name: str, request: str, usage: str, x: int, y: int) -> None:
    """`NAME NUMBER words...` (from [r \\$0-NAME]) to [s \\$0-request] as `request`, whose \\$1 is the
    words joined into one symbol (empty when none) and \\$2 the number; without a number, `usage` is
    printed. Box names start with `prefix`."""
    c.obj(f"{prefix}r", x, y, f"r \\$0-{name}")
    c.obj(f"{prefix}t", x, y + 25, "t l b")
    c.msg(f"{prefix}clr", x + 100, y + 50, "symbol")
    c.obj(f"{prefix}s", x, y + 75, "list split 1")
    c.obj(f"{prefix}b", x + 80, y + 105, "route bang")
    first, last = join_words(c, f"{prefix}j", x + 140, y + 130)
    c.obj(f"{prefix}p", x, y + 260, "list append")
    c.msg(f"{prefix}m", x, y + 290, request)
    c.msg(f"{prefix}u", x + 160, y + 260, usage)
    c.obj(f"{prefix}pr", x + 160, y + 290, "print riffd")
    c.obj(f"{prefix}send", x, y + 320, "s \\$0-request")
    c.chain(f"{prefix}r", f"{prefix}t", f"{prefix}s")
    c.wire(f"{prefix}t:1", f"{prefix}clr")  # first: a request without words gets an empty prompt, not the last one
    c.wire(f"{prefix}clr", f"{prefix}p:1")
    c.wire(f"{prefix}s:1", f"{prefix}b")
    c.wire(f"{prefix}b:1", first)
    c.wire(last, f"{prefix}p:1")
    c.chain(f"{prefix}s", f"{prefix}p", f"{prefix}m", f"{prefix}send")
    c.wire(f"{prefix}s:2", f"{prefix}u")
    c.wire(f"{prefix}u", f"{prefix}pr")


def requests(c: Canvas) -> None:
    c.text(20, 10, "Each request becomes a list ADDRESS TYPES OPTIONS? ARGS... for [pd send]: the OSC address under "
           "/riffd/ \\, the OSC type tags of the positional arguments \\, whether the stored options follow.", 100)
    number_then_words(c, "g", "generate", "list generate sf 1 \\$2 \\$1",
                      "generate needs DURATION_S and then the prompt", 20, 70)

    # continue DURATION_S PATH words...
    c.obj("cr", 420, 70, "r \\$0-continue")
    c.obj("ct", 420, 95, "t l b")
    c.obj("ctb", 520, 95, "t b b")
    c.msg("cclr", 520, 120, "symbol")
    c.msg("c0", 600, 120, "0")
    c.obj("cs", 420, 145, "list split 2")
    c.obj("cb", 500, 175, "route bang")
    c.obj("cbt", 560, 200, "t l b")
    c.msg("c1", 680, 225, "1")
    first, last = join_words(c, "cj", 560, 250)
    c.obj("cp", 420, 390, "list append")
    c.obj("chp", 420, 415, "list prepend")
    c.obj("crt", 420, 440, "route 0 1")
    c.msg("cm0", 420, 470, "list continue sf 1 \\$2 \\$1")
    c.msg("cm1", 600, 470, "list continue sfss 1 \\$2 \\$1 prompt \\$3")
    c.msg("cu", 700, 390, "continue needs DURATION_S and PATH (then an optional prompt)")
    c.obj("cpr", 700, 415, "print riffd")
    c.obj("csend", 420, 510, "s \\$0-request")
    c.chain("cr", "ct", "cs")
    c.wire("ct:1", "ctb")
    c.wire("ctb:1", "cclr")
    c.wire("ctb:0", "c0")
    c.wire("cclr", "cp:1")
    c.wire("c0", "chp:1")
    c.wire("cs:1", "cb")
    c.wire("cb:1", "cbt")
    c.wire("cbt:1", "c1")
    c.wire("c1", "chp:1")
    c.wire("cbt:0", first)
    c.wire(last, "cp:1")
    c.chain("cs", "cp", "chp", "crt")
    c.wire("crt:0", "cm0")
    c.wire("crt:1", "cm1")
    c.wire("cm0", "csend")
    c.wire("cm1", "csend")
    c.wire("cs:2", "cu")
    c.wire("cu", "cpr")

    # cancel [JOB]: without a job, the last one the daemon accepted from us.
    c.obj("xr", 20, 460, "r \\$0-cancel")
    c.obj("xb", 20, 485, "route bang")
    c.obj("xlast", 20, 515, "symbol")
    c.obj("xacc", 120, 460, "r \\$0-accepted-job")
    c.obj("xs", 120, 515, "list split 1")
    c.msg("xm", 20, 545, "list cancel s 0 \\$1")
    c.obj("xsend", 20, 575, "s \\$0-request")
    c.chain("xr", "xb", "xlast", "xm", "xsend")
    c.wire("xacc", "xlast:1")
    c.wire("xb:1", "xs")
    c.wire("xs", "xm")

    # Requests without arguments.
    for i, name in enumerate(("status", "subscribe", "unsubscribe")):
        c.obj(f"n{i}", 260 + 130 * i, 560, f"r \\$0-{name}")
        c.msg(f"nm{i}", 260 + 130 * i, 585, f"set riffd {name} \\, format \\, bang")
        c.obj(f"ns{i}", 260 + 130 * i, 610, "s \\$0-osc")
        c.chain(f"n{i}", f"nm{i}", f"ns{i}")

    in_time(c)


def in_time(c: Canvas) -> None:
    """onbar, tempo and clock: playing in time with the daemon's timeline (Ableton Link with --link)."""
    c.text(880, 10, "In time (issue 15): onbar BARS words... generates BARS bars (duration 0) launched on the next "
           "bar \\, with the stored options (which must not hold bars or launch); tempo BPM sets the Link "
           "session's tempo; clock asks for the timeline once \\, clock MS every MS ms (0 stops).", 60)
    number_then_words(c, "b", "onbar", "list generate sfsiss 1 \\$2 0 bars \\$1 launch bar",
                      "onbar needs BARS and then the prompt", 880, 110)
    # tempo BPM
    c.obj("tr", 880, 480, "r \\$0-tempo")
    c.msg("tm", 880, 505, "list tempo f 0 \\$1")
    c.obj("tsend", 880, 530, "s \\$0-request")
    c.chain("tr", "tm", "tsend")
    # clock, or clock MS: once, or polled (a Link timeline moves on its own: a display asks again and again).
    c.obj("kr", 1040, 480, "r \\$0-clock")
    c.obj("kb", 1040, 505, "route bang")
    c.obj("kt", 1120, 530, "t f f")
    c.obj("kon", 1120, 555, "!= 0")
    c.obj("kmet", 1120, 580, "metro 100")
    c.msg("km", 1040, 610, "set riffd clock \\, format \\, bang")
    c.obj("kos", 1040, 640, "s \\$0-osc")
    c.chain("kr", "kb", "km", "kos")
    c.wire("kb:1", "kt")
    c.wire("kt:1", "kmet:1")
    c.chain("kt", "kon", "kmet", "km")


def request_sender(c: Canvas) -> None:
    c.text(20, 10, "ADDRESS TYPES OPTIONS ARGS... -> one OSC packet: the arguments \\, then (OPTIONS 1) every stored "
           "option as a key/value pair \\, or (OPTIONS 2 \\, a jam's resume) those a resume takes \\, with OSC "
           "type tags that say int \\, float or string.", 100)
    c.obj("r", 20, 60, "r \\$0-request")
    c.obj("sp", 20, 85, "list split 3")
    c.obj("up", 20, 115, "unpack s s f")
    c.obj("tr", 20, 145, "t b b b s")
    c.obj("opt", 200, 180, "f")
    c.obj("withopts", 200, 205, "moses 1")
    c.obj("selt", 200, 230, "t f b")
    c.obj("asked", 280, 255, "s \\$0-asked")  # a job request (it carries the options): see follow.py
    c.obj("addopts", 200, 255, "s \\$0-add-options")
    c.obj("fromsym", 320, 145, "list fromsymbol")
    c.obj("codes", 320, 260, "list store")
    c.obj("args", 20, 260, "list store")
    c.obj("ca", 470, 200, "r \\$0-codes-append")
    c.obj("aa", 150, 200, "r \\$0-args-append")
    c.obj("tosym", 320, 290, "list tosymbol")
    c.msg("fmt", 320, 320, "format \\$1")
    c.msg("addr", 560, 200, "set riffd \\$1")
    c.obj("osc", 20, 380, "oscformat riffd")
    c.obj("rosc", 180, 350, "r \\$0-osc")
    c.obj("out", 20, 410, "s \\$0-packet")
    c.chain("r", "sp", "up", "tr")
    c.wire("sp:1", "args:1")
    c.wire("up:2", "opt:1")
    c.wire("up:1", "fromsym")
    c.wire("fromsym", "codes:1")
    c.wire("tr:3", "addr")
    c.wire("addr", "osc")
    c.wire("tr:2", "opt")
    c.wire("opt", "withopts")
    c.chain("withopts:1", "selt", "addopts")
    c.wire("selt:1", "asked")
    c.wire("tr:1", "codes")
    c.chain("codes", "tosym", "fmt", "osc")
    c.wire("tr:0", "args")
    c.wire("args", "osc")
    c.wire("ca", "codes")
    c.wire("aa", "args")
    c.wire("rosc", "osc")
    c.wire("osc", "out")


def options(c: Canvas) -> None:
    c.text(20, 10, "Options (seed 42 \\, model NAME \\, job NAME \\, play 1 ...) are kept in a text \\, one line "
           "TAG KEY VALUE each \\, and sent with every generate and continue. The tag is the OSC type: i for the "
           "schema's integer and bool fields \\, f for other numbers \\, s for symbols.", 110)
    c.obj("tx", 620, 60, "text define \\$0-opts")
    c.obj("clr", 620, 30, "r \\$0-clear")
    c.msg("clrm", 720, 30, "clear")
    c.chain("clr", "clrm", "tx")
    # Set: KEY VALUE
    c.obj("r", 20, 80, "r \\$0-option")
    c.obj("os", 20, 105, "list split 2")
    c.obj("ot", 20, 135, "t l l l")
    c.obj("vs", 240, 165, "list split 1")
    c.obj("vr", 240, 190, "route float")
    c.msg("tf", 240, 215, "102")
    c.msg("ts", 300, 215, "115")
    c.obj("ks", 130, 250, "list split 1")
    c.obj("ksel", 130, 275, f"sel {INT_KEYS}", 60)
    c.obj("kf", 130, 330, "f")
    c.obj("ksel2", 130, 355, "sel 102")
    c.msg("ti", 130, 380, "105")
    c.obj("stc", 300, 410, "s \\$0-tc")
    c.obj("rtc", 420, 250, "r \\$0-tc")
    c.obj("lp", 20, 510, "list prepend")
    c.obj("st", 20, 535, "t l l")
    c.obj("k2", 120, 495, "list split 2")
    c.obj("k1", 120, 520, "list split 1")
    c.obj("search", 120, 545, "text search \\$0-opts 1")
    c.obj("mo", 120, 570, "moses 0")
    c.obj("size", 120, 595, "text size \\$0-opts")
    c.obj("set", 20, 620, "text set \\$0-opts")
    c.msg("usage", 400, 105, "an option is KEY VALUE")
    c.obj("upr", 400, 130, "print riffd")
    c.chain("r", "os", "ot")
    c.wire("os:2", "usage")
    c.wire("usage", "upr")
    c.wire("ot:2", "vs")
    c.wire("vs:1", "vr")
    c.wire("vr:0", "tf")
    c.wire("vr:1", "ts")
    c.wire("tf", "stc")
    c.wire("ts", "stc")
    c.wire("ot:1", "ks")
    c.wire("ks", "ksel")
    for i in range(len(INT_KEYS.split())):
        c.wire(f"ksel:{i}", "kf")
    c.chain("kf", "ksel2", "ti", "stc")
    c.wire("rtc", "kf:1")
    c.wire("rtc", "lp:1")
    # A number given for a string field (job 12) is sent as the string "12".
    c.obj("ssel", 330, 275, f"sel {STR_KEYS}", 50)
    c.obj("skf", 330, 305, "f")
    c.obj("sks", 330, 330, "sel 102")
    c.msg("sfl1", 330, 355, "1")
    c.msg("sfl0", 240, 240, "0")
    c.obj("sfp", 20, 355, "list prepend")
    c.obj("sfr", 20, 380, "route 0 1")
    c.obj("cvt", 80, 405, "t l b")
    c.msg("cv115", 160, 405, "115")
    c.obj("cvu", 80, 430, "unpack s f")
    c.obj("cvm", 130, 455, "makefilename %g")
    c.obj("cva", 80, 480, "list append")
    c.wire("ks", "ssel")
    for i in range(len(STR_KEYS.split())):
        c.wire(f"ssel:{i}", "skf")
    c.chain("skf", "sks", "sfl1")
    c.wire("rtc", "skf:1")
    c.wire("sfl1", "sfp:1")
    c.wire("tf", "sfl0")
    c.wire("ts", "sfl0")
    c.wire("sfl0", "sfp:1")
    c.wire("ot:0", "sfp")
    c.wire("sfp", "sfr")
    c.wire("sfr:0", "lp")
    c.obj("cvl", 80, 380, "list append")
    c.chain("sfr:1", "cvl", "cvt")
    c.wire("cvt:1", "cv115")
    c.wire("cv115", "stc")
    c.wire("cvt", "cvu")
    c.wire("cvu:1", "cvm")
    c.wire("cvm", "cva:1")
    c.wire("cvu", "cva")
    c.wire("cva", "lp")
    c.wire("lp", "st")
    c.wire("st:1", "k2")
    c.wire("k2", "k1")
    c.wire("k1:1", "search")
    c.wire("search", "mo")
    c.obj("mob", 60, 595, "t b")
    c.wire("mo", "mob")
    c.wire("mob", "size")
    c.wire("mo:1", "set:1")
    c.wire("size", "set:1")
    c.wire("st:0", "set")
    # Unset KEY: the line becomes a bare 0, which the sender skips.
    c.obj("ur", 480, 470, "r \\$0-unset")
    c.obj("usearch", 480, 495, "text search \\$0-opts 1")
    c.obj("umo", 480, 520, "moses 0")
    c.obj("ut", 520, 545, "t b f")
    c.msg("u0", 520, 570, "0")
    c.chain("ur", "usearch", "umo")
    c.wire("umo:1", "ut")
    c.wire("ut:1", "set:1")
    c.wire("ut:0", "u0")
    c.wire("u0", "set")
    # Append every stored option to the request being built (2: all but a snapshot's settings, for a resume).
    c.obj("ar", 620, 120, "r \\$0-add-options")
    c.obj("at", 620, 145, "t b b f")
    c.msg("a0", 700, 170, "0")
    c.obj("aresume", 780, 170, "== 2")
    c.obj("aonly", 780, 220, "f")
    c.wire("at:2", "aresume")
    c.wire("aresume", "aonly:1")
    c.obj("asize", 620, 195, "text size \\$0-opts")
    c.obj("until", 620, 220, "until")
    c.obj("cnt", 620, 245, "f")
    c.obj("inc", 670, 245, "+ 1")
    c.obj("get", 620, 275, "text get \\$0-opts")
    c.obj("l3", 620, 300, "list split 3")
    c.obj("l1", 620, 325, "list split 1")
    c.obj("aargs", 700, 355, "list prepend append")
    c.obj("aargst", 700, 380, "list trim")
    c.obj("aargss", 700, 405, "s \\$0-args-append")
    c.obj("acod", 620, 430, "list prepend append 115")
    c.obj("acodt", 620, 455, "list trim")
    c.obj("acods", 620, 480, "s \\$0-codes-append")
    c.chain("ar", "at")
    c.wire("at:1", "a0")
    c.wire("a0", "cnt:1")
    c.chain("at", "asize", "until", "cnt", "inc")
    c.wire("inc", "cnt:1")
    c.wire("cnt", "get")
    # Each line TAG KEY VALUE passes unless it is for a resume and KEY is a setting the snapshot keeps.
    c.obj("gt", 840, 275, "t l l")
    c.obj("gk", 940, 300, "list split 1")
    c.obj("gkt", 940, 325, "list trim")
    c.obj("gkr", 940, 350, "route " + " ".join(JAM_SNAPSHOT_SETTINGS), 60)
    c.obj("gkb", 940, 400, "t b")
    c.obj("gkeep", 940, 425, "== 0")
    c.msg("gpass", 1060, 400, "1")
    c.obj("gsp", 840, 450, "spigot")
    c.chain("get", "gt", "gsp", "l3", "l1")
    c.chain("gt:1", "gk")
    c.wire("gk:1", "gkt")
    c.wire("gkt", "gkr")
    for i in range(len(JAM_SNAPSHOT_SETTINGS)):
        c.wire(f"gkr:{i}", "gkb")
    c.chain("gkb", "aonly", "gkeep", "gsp:1")
    c.wire(f"gkr:{len(JAM_SNAPSHOT_SETTINGS)}", "gpass")
    c.wire("gpass", "gsp:1")
    c.wire("l1:1", "aargs")
    c.chain("aargs", "aargst", "aargss")
    c.chain("l1", "acod", "acodt", "acods")
