"""The help patch users open, and the patches the Pd tests run (tests/clients_pd)."""

from __future__ import annotations

from clients.pd.patchgen.pdfile import Canvas


def event_log(c: Canvas, text: str, timeout_ms: int, x: int, y: int) -> None:
    """A test patch's log of events: wire events into "ev" ([t a a]; its left outlet passes them on),
    each becomes a line of [text define TEXT] ("log"); "to" bangs after `timeout_ms`, a line
    `timeout` logged (wire it to the patch's finish); banging "slog" (its right inlet: the file)
    writes the log."""
    c.obj("log", x, y, f"text define {text}")
    c.obj("ev", x, y + 30, "t a a")
    c.obj("evl", x + 100, y + 55, "list")
    c.obj("evset", x + 100, y + 80, f"text set {text} 1e+06")
    c.obj("lb", x + 300, y + 30, "loadbang")
    c.obj("to", x + 300, y + 55, f"delay {timeout_ms}")
    c.msg("tomsg", x + 300, y + 80, "list timeout")
    c.obj("slog", x, y + 110, "symbol")
    c.msg("wlog", x, y + 135, "write \\$1")
    c.chain("ev:1", "evl", "evset")
    c.chain("lb", "to", "tomsg", "evset")
    c.chain("slog", "wlog", "log")


def help_patch() -> Canvas:
    c = Canvas(size=(1000, 900))
    c.obj(None, 20, 15, "riffd")
    c.text(80, 15, "- music from a riffd daemon \\, in Pd", 60)
    c.text(20, 45, "Start the daemon first (riffd serve --model facebook/musicgen-small). [riffd] talks to it over "
           "OSC/UDP (default 127.0.0.1 port 7400) \\, writes no files itself \\, and loads what the daemon "
           "generates into the arrays named by its arguments (left \\, right). Each request carries "
           "every stored option \\, so "
           "the daemon never depends on an earlier request.", 130)
    y = 120
    c.text(20, y, "1. where the daemon is (needed only when it is not 127.0.0.1:7400):", 80)
    c.msg("conn", 20, y + 25, "connect 127.0.0.1 7400")
    y = 180
    c.text(20, y, "2. options \\, kept until changed and sent with every generate/continue. Any field of the "
           "protocol's generate request works (see docs/protocol.md): seed \\, model \\, job \\, priority \\, "
           "top_k \\, top_p \\, temperature \\, guidance_scale \\, play \\, gain \\, save \\, chunks ...", 130)
    opts = ["seed 42", "model debug/musicgen", "job loop1", "temperature 1.1", "play 1", "gain 0.8",
            "priority 5", "unset seed", "clear"]
    for i, text in enumerate(opts):
        c.msg(f"o{i}", 20 + (i % 5) * 170, y + 50 + (i // 5) * 30, text)
    c.text(20, y + 115, "play 1 plays the job on the daemon's sound card as it is generated (lowest latency); "
           "job NAME makes the files NAME.wav (reused each time: a slot); clear forgets every option.", 130)
    y = 330
    c.text(20, y, "3. requests:", 40)
    c.msg("g", 20, y + 25, "generate 8 lo-fi hip hop beat with warm keys")
    c.msg("g2", 20, y + 55, "generate 4 90 bpm funk drums")
    c.msg("c", 400, y + 25, "continue 8 /path/to/loop.wav add a bass line")
    c.msg("c2", 400, y + 55, "continue 8 /path/to/loop.wav")
    c.msg("x", 20, y + 85, "cancel")
    c.msg("x2", 90, y + 85, "cancel loop1")
    c.msg("st", 210, y + 85, "status")
    c.msg("sub", 280, y + 85, "subscribe")
    c.msg("unsub", 370, y + 85, "unsubscribe")
    c.text(480, y + 85, "cancel: the last job accepted; subscribe: also get other clients' events", 70)
    y = 460
    c.text(20, y, "4. the audio: chunks fill the array as they come \\, done replaces them with the saved file "
           "(the array follows the newest request sent: use one [riffd] per slot to keep several).", 90)
    c.msg("play", 20, y + 25, "bang")
    c.msg("stop", 70, y + 25, "stop")
    c.msg("auto", 120, y + 25, "autoplay 1")
    c.msg("arr", 220, y + 25, "array riffd-help-audio riffd-help-audio-r")
    c.text(420, y + 25, "bang: play the array once; autoplay 1: play each job when loaded", 60)
    c.obj("r", 20, y + 80, "riffd riffd-help-audio riffd-help-audio-r")
    c.obj("vol", 20, y + 115, "*~ 0.5")
    c.obj("volr", 90, y + 115, "*~ 0.5")
    c.obj("dac", 20, y + 145, "dac~")
    c.obj("pr", 250, y + 115, "print riffd-event")
    c.obj("rt", 250, y + 145, "route progress loaded error")
    c.text(250, y + 175, "events: accepted JOB QUEUE_POSITION \\, started JOB MODEL SAMPLE_RATE CHANNELS SEED \\, "
           "progress JOB DONE TOTAL \\, chunk JOB INDEX PATH OFFSET_SAMPLES FRAMES STAGE \\, filled JOB FRAMES "
           "\\, done JOB PATH FRAMES SAMPLE_RATE \\, "
           "loaded JOB FRAMES SAMPLE_RATE \\, error JOB CODE MESSAGE \\, connected 0/1", 90)
    c.array("graph", 640, 500, "riffd-help-audio", 100, 300, 90)
    c.array("graphr", 640, 610, "riffd-help-audio-r", 100, 300, 90)
    y = 720
    c.text(20, y, "5. in time with Live \\, Bitwig or any Link app (riffd serve --link; without Link \\, tempo BPM "
           "sets riffd's own tempo): onbar BARS PROMPT generates BARS bars launched on the next bar; tempo BPM "
           "changes the session's tempo for every peer; clock 100 shows the timeline below \\, asked every 100 ms.",
           130)
    timed = ["clock 100", "clock 0", "tempo 120", "onbar 4 dub techno with deep chords", "loop 1", "unset loop"]
    for i, text in enumerate(timed):
        c.msg(f"t{i}", 20 + [0, 80, 145, 230, 500, 560][i], y + 50, text)
    c.obj("rc", 20, y + 90, "route clock")
    c.obj("clk", 20, y + 115, "unpack s f f f f f")
    c.symbolatom("csrc", 20, y + 145, 5, "clock")
    c.floatatom("ctempo", 120, y + 145, 7, "BPM")
    c.floatatom("cbeat", 220, y + 145, 9, "beat")
    c.floatatom("cphase", 340, y + 145, 6, "phase")
    c.floatatom("cpeers", 450, y + 145, 3, "peers")
    c.text(560, y + 90, "clock SOURCE TEMPO BEAT PHASE PEERS QUANTUM: SOURCE is link \\, own or none; PHASE "
           "counts the beats into the bar (0 is the one); PEERS are the other Link apps.", 60)
    c.wire("r:2", "rc")
    c.chain("rc", "clk", "csrc")
    for outlet, box in enumerate(("ctempo", "cbeat", "cphase", "cpeers"), start=1):
        c.wire(f"clk:{outlet}", box)
    for key in ["conn", *[f"o{i}" for i in range(len(opts))], "g", "g2", "c", "c2", "x", "x2", "st", "sub",
                "unsub", "play", "stop", "auto", "arr", *[f"t{i}" for i in range(len(timed))]]:
        c.wire(key, "r")
    c.chain("r", "vol", "dac")
    c.wire("r:1", "volr")
    c.wire("volr", "dac:1")
    c.wire("r:2", "pr")
    c.wire("r:2", "rt")
    return c


def requests_patch() -> Canvas:
    """Sends a fixed sequence of requests to the port given by -send "riffd-requests PORT", then quits."""
    c = Canvas(size=(800, 500))
    c.text(20, 10, "Test patch for tests/clients_pd: a fixed sequence of requests \\, sent to a Python UDP "
           "socket that checks each packet's OSC types against the protocol schema.", 100)
    steps = [
        "seed 7 \\, temperature 0.5 \\, job pd-a \\, play 1 \\, generate 2 hello world",
        "unset temperature \\, seed 8 \\, generate 3 90 bpm funk",
        "clear \\, gain 0.25 \\, job 12 \\, model debug/musicgen \\, generate 1",
        "clear \\, continue 2 /tmp/in.wav",
        "continue 2.5 /tmp/in.wav more drums",
        "cancel pd-a \\, status \\, subscribe \\, unsubscribe",
        "tempo 97 \\, clock \\, onbar 2 on the one \\, seed 3 \\, onbar 1",
    ]
    c.obj("r", 20, 60, "r riffd-requests")
    c.obj("t", 20, 85, "t b f")
    c.msg("conn", 120, 110, "connect 127.0.0.1 \\$1")
    c.obj("riffd", 20, 400, "riffd")
    c.chain("r", "t")
    c.wire("t:1", "conn")
    c.wire("conn", "riffd")
    c.obj("trig", 20, 140, "t " + " ".join("b" for _ in steps) + " b")
    c.wire("t", "trig")
    for i, text in enumerate(steps):
        c.msg(f"s{i}", 20, 170 + 35 * i, text)
        c.wire(f"trig:{len(steps) - i}", f"s{i}")
        c.wire(f"s{i}", "riffd")
    c.obj("del", 500, 300, "delay 300")
    c.msg("quit", 500, 330, "\\; pd quit")
    c.wire("trig", "del")
    c.wire("del", "quit")
    return c


def daemon_test_patch() -> Canvas:
    """Jobs against a real daemon: one loaded from its saved file and played, one from its chunks, a
    continuation of the first file, two back to back (the arrays follow the newer), a stereo one,
    and a long one cancelled once accepted."""
    c = Canvas(size=(900, 700))
    event_log(c, "riffd-test-log", 30000, 600, 110)
    c.text(20, 10, "Test patch for tests/clients_pd: started by pytest with -send \"riffd-test PORT LOG WAV1 WAV2 "
           "PLAYED STEREO DURATION_S\". Job 1 is saved by the daemon and loaded from its file \\, then played into "
           "PLAYED; job 2 (save 0) is assembled from its chunk files; job 3 continues WAV1; jobs 4 and 5 go "
           "back to back (only 5 loads); a stereo job fills both arrays (written to STEREO); job 6 is cancelled "
           "once accepted. Every event goes to LOG.", 120)
    c.obj("arr", 600, 60, "array define riffd-test-audio")
    c.obj("arrr", 600, 35, "array define riffd-test-audio-r")
    c.obj("r", 20, 80, "r riffd-test")
    c.obj("t", 20, 105, "t l l")
    c.obj("up", 120, 130, "unpack f s s s s s f")
    c.obj("sst", 470, 160, "symbol")
    c.obj("sw1", 190, 160, "symbol")
    c.obj("sw2", 260, 160, "symbol")
    c.obj("sw3", 330, 160, "symbol")
    c.obj("dur", 400, 160, "f")
    c.obj("dur2", 400, 480, "f")
    c.obj("dur3", 480, 555, "f")
    c.obj("port", 20, 160, "list split 1")
    c.msg("conn", 20, 190, "connect 127.0.0.1 \\$1")
    c.obj("tj1", 20, 220, "t b b")
    c.msg("o1", 120, 245, "seed 7 \\, job pdtest-1")
    c.msg("g1", 20, 275, "generate \\$1 warm pad from pd")
    c.obj("riffd", 20, 330, "riffd riffd-test-audio riffd-test-audio-r")
    c.obj("rt", 200, 390, "route loaded error accepted")
    c.obj("cnt", 200, 420, "f")
    c.obj("inc", 250, 420, "+ 1")
    c.obj("sel", 200, 445, "sel 0 1 2 3 4")
    # After job 1: write the array, play it into a file, then start job 2.
    c.obj("w1t", 20, 480, "t b b b b")
    c.msg("w1m", 20, 560, "write -bytes 4 \\$1 riffd-test-audio")
    c.obj("sf", 20, 590, "soundfiler")
    c.msg("dsp", 300, 480, "\\; pd dsp 1")
    c.msg("wopen", 160, 505, "open -bytes 4 \\$1 \\, start")
    c.obj("wsf", 160, 560, "writesf~ 2")
    c.obj("pdel", 400, 505, "expr \\$f1 * 1000 + 300")
    c.obj("del", 400, 530, "delay")
    c.msg("wstop", 400, 555, "stop")
    c.obj("tj2", 480, 580, "t b b")
    c.msg("o2", 580, 605, "save 0 \\, job pdtest-2")
    c.msg("g2", 480, 630, "generate \\$1 second take")
    # After job 2 (or an error, or the timeout): write the array and the log, quit.
    c.obj("w2t", 700, 480, "t b b")
    c.msg("w2m", 700, 505, "write -bytes 4 \\$1 riffd-test-audio")
    c.obj("fin", 700, 560, "t b b")
    c.msg("quit", 620, 640, "\\; pd quit")
    c.chain("r", "t")
    c.wire("t:1", "up")
    c.wire("up:1", "slog:1")
    c.wire("up:2", "sw1:1")
    c.wire("up:3", "sw2:1")
    c.wire("up:4", "sw3:1")
    c.wire("up:5", "sst:1")
    c.wire("up:6", "dur:1")
    c.wire("up:6", "dur2:1")
    c.wire("up:6", "dur3:1")
    c.chain("t", "port", "conn", "riffd")
    c.wire("conn", "tj1")
    c.wire("tj1:1", "o1")
    c.wire("o1", "riffd")
    c.wire("tj1", "dur")
    c.wire("dur", "g1")
    c.wire("g1", "riffd")
    c.wire("riffd:2", "ev")
    c.wire("ev", "rt")
    c.obj("rtb", 200, 405, "t b")
    c.chain("rt", "rtb", "cnt", "inc")
    c.wire("inc", "cnt:1")
    c.wire("cnt", "sel")
    c.wire("sel", "w1t")
    c.wire("w1t:3", "sw1")
    c.chain("sw1", "w1m", "sf")
    c.wire("w1t:2", "dsp")
    c.wire("w1t:1", "sw3")
    c.chain("sw3", "wopen", "wsf")
    c.msg("play", 100, 530, "bang")
    c.wire("w1t:1", "play")
    c.wire("play", "riffd")
    c.wire("riffd", "wsf")
    c.wire("riffd:1", "wsf:1")
    c.wire("w1t", "dur2")
    c.wire("dur2", "pdel")
    c.chain("pdel", "del", "wstop", "wsf")
    c.wire("del", "tj2")
    c.wire("tj2:1", "o2")
    c.wire("o2", "riffd")
    c.wire("tj2", "dur3")
    c.wire("dur3", "g2")
    c.wire("g2", "riffd")
    c.wire("sel:1", "w2t")
    c.wire("w2t:1", "sw2")
    c.wire("sw2", "w2m")
    c.wire("w2m", "sf")
    # Job 3 continues what Pd wrote as WAV1; job 4 is cancelled as soon as it is accepted.
    c.obj("sw1b", 700, 620, "symbol")
    c.obj("tj3", 700, 530, "t b b")
    c.msg("o3", 800, 555, "clear \\, job pdtest-3")
    c.msg("g3", 700, 650, "continue 0.5 \\$1 more of the same")
    c.wire("up:2", "sw1b:1")
    c.wire("w2t", "tj3")
    c.wire("tj3:1", "o3")
    c.wire("o3", "riffd")
    c.wire("tj3", "sw1b")
    c.chain("sw1b", "g3", "riffd")
    # Jobs 4 and 5 back to back: the array follows the newest sent, so job 4 loads nothing, whenever it is accepted.
    c.msg("g45", 500, 680, "job pdtest-4 \\, generate 1 older take \\, job pdtest-5 \\, generate 0.5 newer take")
    c.wire("sel:2", "g45")
    c.wire("g45", "riffd")
    # Job 6 is cancelled as soon as it is accepted (a bare cancel: the newest job).
    # A stereo model fills both arrays; write them as one stereo file.
    c.msg("gst", 700, 680, "model debug/musicgen-stereo \\, job pdtest-st \\, generate 0.5 stereo take")
    c.wire("sel:3", "gst")
    c.wire("gst", "riffd")
    c.obj("tst", 700, 710, "t b b")
    c.msg("wst", 780, 735, "write -bytes 4 \\$1 riffd-test-audio riffd-test-audio-r")
    c.wire("sel:4", "tst")
    c.wire("tst:1", "sst")
    c.chain("sst", "wst", "sf")
    c.msg("g6", 500, 730, "unset model \\, job pdtest-6 \\, generate 30 a long one")
    c.wire("tst", "g6")
    c.wire("g6", "riffd")
    c.obj("acc", 320, 680, "route pdtest-6")
    c.obj("accb", 320, 705, "t b")
    c.msg("cancel", 320, 730, "cancel")
    c.wire("rt:2", "acc")
    c.chain("acc", "accb", "cancel", "riffd")
    c.wire("rt:1", "fin")
    c.wire("to", "fin")
    c.wire("fin:1", "slog")
    c.wire("fin", "quit")
    return c


def gap_test_patch() -> Canvas:
    """Chunks placed at the offsets the daemon gives: a Python peer plays the daemon and leaves one
    chunk notice out, as a lost UDP packet would."""
    c = Canvas(size=(700, 450))
    c.text(20, 10, "Test patch for tests/clients_pd: started by pytest with -send \"riffd-gap PORT WAV\". Asks "
           "for one job; after the second filled event it writes the array to WAV and quits.", 100)
    c.obj("arr", 500, 60, "array define riffd-gap-audio")
    c.obj("arrr", 500, 85, "array define riffd-gap-audio-r")
    c.obj("r", 20, 60, "r riffd-gap")
    c.obj("t", 20, 85, "t l l")
    c.obj("up", 120, 110, "unpack f s")
    c.obj("swav", 120, 300, "symbol")
    c.obj("port", 20, 110, "list split 1")
    c.msg("conn", 20, 140, "connect 127.0.0.1 \\$1")
    c.obj("tj", 20, 170, "t b b")
    c.msg("opts", 120, 195, "save 0 \\, job gap")
    c.msg("gen", 20, 220, "generate 1 with a gap")
    c.obj("riffd", 20, 250, "riffd riffd-gap-audio riffd-gap-audio-r")
    c.obj("rt", 200, 280, "route filled")
    c.obj("tb", 200, 305, "t b")
    c.obj("cnt", 200, 330, "f")
    c.obj("inc", 250, 330, "+ 1")
    c.obj("sel", 200, 355, "sel 1")
    c.msg("wm", 120, 385, "write -bytes 4 \\$1 riffd-gap-audio")
    c.obj("sf", 120, 410, "soundfiler")
    c.msg("quit", 300, 410, "\\; pd quit")
    c.obj("lb", 450, 300, "loadbang")
    c.obj("to", 450, 325, "delay 10000")
    c.wire("t:1", "up")
    c.wire("up:1", "swav:1")
    c.chain("r", "t", "port", "conn", "riffd")
    c.wire("conn", "tj")
    c.wire("tj:1", "opts")
    c.wire("opts", "riffd")
    c.chain("tj", "gen", "riffd")
    c.wire("riffd:2", "rt")
    c.chain("rt", "tb", "cnt", "inc")
    c.wire("inc", "cnt:1")
    c.chain("cnt", "sel", "swav", "wm", "sf", "quit")
    c.chain("lb", "to", "quit")
    return c


def clock_test_patch() -> Canvas:
    """In time against a real daemon: tempo, the clock polled, a take launched on the bar."""
    c = Canvas(size=(800, 500))
    event_log(c, "riffd-clock-log", 20000, 560, 300)
    c.text(20, 10, "Test patch for tests/clients_pd: started by pytest with -send \"riffd-clock PORT LOG\". Sets the "
           "tempo to 97 \\, polls the clock every 50 ms \\, launches one bar on the bar (onbar); once it is done "
           "\\, polls a little longer \\, stops \\, writes every event to LOG and quits.", 110)
    c.obj("r", 20, 60, "r riffd-clock")
    c.obj("t", 20, 85, "t l l")
    c.obj("up", 120, 110, "unpack f s")
    c.obj("port", 20, 110, "list split 1")
    c.msg("conn", 20, 135, "connect 127.0.0.1 \\$1")
    c.obj("go", 20, 160, "t b b b")
    c.msg("setup", 260, 185, "conform 0 \\, job pd-onbar \\, tempo 97")
    c.msg("poll", 200, 210, "clock 50")
    c.obj("wait", 20, 185, "delay 300")
    c.msg("onbar", 20, 210, "onbar 1 on the one")
    c.obj("riffd", 20, 250, "riffd riffd-clock-audio riffd-clock-audio-r")
    c.obj("arr", 560, 85, "array define riffd-clock-audio")
    c.obj("arrr", 560, 110, "array define riffd-clock-audio-r")
    c.obj("rt", 200, 305, "route done error")
    c.obj("rtb", 200, 330, "t b")
    c.obj("more", 260, 330, "delay 500")
    c.msg("stop", 200, 355, "clock 0")
    c.obj("fin", 20, 380, "t b b")
    c.msg("quit", 20, 425, "\\; pd quit")
    c.chain("r", "t")
    c.wire("t:1", "up")
    c.wire("up:1", "slog:1")
    c.chain("t", "port", "conn", "riffd")
    c.wire("conn", "go")
    c.wire("go:2", "setup")
    c.wire("setup", "riffd")
    c.wire("go:1", "poll")
    c.wire("poll", "riffd")
    c.chain("go", "wait", "onbar", "riffd")
    c.wire("riffd:2", "ev")
    c.chain("ev", "rt")
    c.chain("rt", "rtb", "more", "stop", "riffd")
    c.wire("stop", "fin")
    c.wire("rt:1", "fin")
    c.wire("to", "fin")
    c.wire("fin:1", "slog")
    c.wire("fin", "quit")
    return c
