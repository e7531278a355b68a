"""riffd-jam-help.pd, the patch users open, and the test patches tests/clients_pd runs."""

from __future__ import annotations

from clients.pd.patchgen.patches import event_log
from clients.pd.patchgen.pdfile import Canvas


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
    c.text(20, y, "1. options (kept until changed): seed \\, lead_s \\, context_s \\, play \\, gain \\, "
           "temperature \\, top_k \\, model \\, job ... for start \\; resume sends those a resume takes", 140)
    for i, text in enumerate(["option seed 7", "option lead_s 1", "option play 1", "unset play", "clear"]):
        c.msg(f"o{i}", 20 + i * 150, y + 30, text)
    y = 210
    c.text(20, y, "2. start \\, stop \\, save and recall (no commas in a prompt: in a message box a comma starts "
           "a new message):", 130)
    c.msg("start", 20, y + 25, "start dub techno with deep chords at 120 bpm")
    c.msg("stop", 360, y + 25, "stop")
    c.msg("snap", 420, y + 25, "snapshot verse-2")
    c.msg("resume", 560, y + 25, "resume verse-2")
    c.text(700, y + 25, "resume: go on exactly where the snapshot was taken", 40)
    y = 290
    c.text(20, y, "3. steer it while it plays:", 60)
    c.msg("t1", 20, y + 25, "set temperature 1.2")
    c.msg("t2", 180, y + 25, "set top_k 100")
    c.msg("t3", 310, y + 25, "set guidance_scale 4")
    c.msg("t4", 480, y + 25, "set prompt ambient pads without drums")
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
           "\\, ok jam_stop JAM \\, done JAM PATH FRAMES SAMPLE_RATE (then BEATS BARS BPM BEAT for a jam in time) "
           "\\, ended JAM (the last sample played) \\, "
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


def _recorded_jam(c: Canvas, name: str, first: str, events: str) -> None:
    """A [riffd-jam] ("jam") driven from `-send "NAME PORT LOG PLAYED"`: connected to PORT, sent `first`,
    every event logged, its outlets recorded into PLAYED; the events pass through [route EVENTS ended]
    ("rt"; its outlets before the last are the caller's), and on ended (or a timeout) the recording
    stops, the log is written to LOG and Pd quits."""
    event_log(c, f"{name}-log", 40000, 650, 300)
    c.text(20, 10, f"Test patch for tests/clients_pd: -send \"{name} PORT LOG PLAYED\".", 100)
    c.obj("r", 20, 60, f"r {name}")
    c.obj("t", 20, 85, "t l l l")
    c.obj("up", 200, 110, "unpack f s s")
    c.obj("splayed", 300, 140, "symbol")
    c.obj("port", 20, 110, "list split 1")
    c.msg("conn", 20, 140, "connect 127.0.0.1 \\$1")
    c.msg("go", 20, 170, first)
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
    c.obj("rt", 150, 320, f"route {events} ended")
    c.wire("jam", "ev")
    c.wire("ev", "rt")
    # Ended (or a timeout): stop recording, write the log, quit.
    c.obj("eb", 400, 380, "t b")
    c.obj("ed", 400, 405, "delay 300")
    c.obj("fin", 400, 430, "t b b b")
    c.msg("wstop", 520, 455, "stop")
    c.msg("quit", 400, 520, "\\; pd quit")
    c.wire(f"rt:{len(events.split())}", "eb")
    c.chain("eb", "ed", "fin")
    c.wire("fin:2", "wstop")
    c.wire("wstop", "wsf")
    c.wire("fin:1", "slog")
    # Quit a moment after the stop: writesf~ writes from a thread of its own, and a quit in the same
    # logical time could end Pd before that thread has written the file's samples.
    c.obj("qd", 400, 490, "delay 500")
    c.chain("fin", "qd", "quit")
    c.wire("to", "fin")


def jam_test_patch() -> Canvas:
    """A jam from Pd against a real daemon: start, a set, weighted prompts, a snapshot, stop; every event
    to LOG, the outlets recorded into PLAYED until the player says the jam ended."""
    c = Canvas(size=(900, 600))
    _recorded_jam(c, "riffd-jam-test", "option seed 5 \\, option job pdjam \\, start pd jam", "started")
    # On started, the script of changes.
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
    return c


def jam_two_test_patch() -> Canvas:
    """Two jams from one [riffd-jam]: a short first one (2.5 s), and, on its accepted, a second started
    while the first still runs, stopped 2.5 s after it started (a stop names the jam accepted last)."""
    c = Canvas(size=(900, 600))
    _recorded_jam(c, "riffd-jam-two", "option seed 3 \\, option job jam-a \\, option duration_s 2.5 \\, "
                  "start first jam", "accepted started")
    c.obj("isa", 20, 360, "route jam-a")
    c.msg("second", 20, 385, "option job jam-b \\, unset duration_s \\, start second jam")
    c.obj("isb", 150, 360, "route jam-b")
    c.obj("isbt", 150, 385, "t b")
    c.obj("later", 150, 410, "delay 2500")
    c.msg("stop", 150, 435, "stop")
    c.chain("rt", "isa", "second", "jam")
    c.chain("rt:1", "isb", "isbt", "later", "stop", "jam")
    return c


def jam_resume_test_patch() -> Canvas:
    """Controls before any jam, a line that is no message, a resume after options it must leave out,
    then (on accepted) stop and a new start, against a UDP socket playing the daemon."""
    c = Canvas(size=(800, 400))
    c.text(20, 10, "Test patch for tests/clients_pd: -send \"riffd-jam-resume PORT\". Quits 300 ms after the first "
           "accepted (or after 10 s).", 100)
    c.obj("r", 20, 60, "r riffd-jam-resume")
    c.obj("t", 20, 85, "t b l")
    c.msg("conn", 120, 110, "connect 127.0.0.1 \\$1")
    c.msg("script", 20, 135, "option seed 7 \\, option temperature 1.5 \\, option lead_s 1 \\, option job pdres "
          "\\, option play 1 \\, stop \\, set temperature 1.2 \\, snapshot early \\, deep chords \\, resume verse-2")
    c.obj("jam", 20, 200, "riffd-jam")
    c.obj("rt", 20, 230, "route accepted")
    c.obj("once", 20, 255, "spigot 1")
    c.obj("ot", 20, 280, "t b b b")
    c.msg("shut", 160, 305, "0")
    c.msg("next", 100, 330, "stop \\, start more dub")
    c.obj("wait", 20, 305, "delay 300")
    c.obj("lb", 400, 60, "loadbang")
    c.obj("to", 400, 85, "delay 10000")
    c.msg("quit", 20, 360, "\\; pd quit")
    c.chain("r", "t")
    c.chain("t:1", "conn", "jam")
    c.chain("t", "script", "jam")
    c.chain("jam", "rt", "once", "ot")
    c.wire("ot:2", "shut")
    c.wire("shut", "once:1")
    c.chain("ot:1", "next", "jam")
    c.chain("ot", "wait", "quit")
    c.chain("lb", "to", "quit")
    return c
