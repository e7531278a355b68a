"""riffd-jam.pd's gate on incoming events: only its own jam's go on.

The daemon sends a jam's events to the socket that started it, so one [riffd-jam] hears every jam it
started: a second start while a jam plays (or a stop and a start: the first jam's last chunks and its
done come after) brings two jams' chunks into one ring; an address subscribed to the daemon hears
every client's jams besides.
"""

from __future__ import annotations

from clients.pd.patchgen.pdfile import Canvas
from protocol.errors import InvalidArgument
from protocol.messages import check_job_id

#: The jam before any was accepted: a name no job has (the gate's [select] needs a symbol to start with).
NO_JAM = "-none-"
try:
    check_job_id(NO_JAM)
except InvalidArgument:
    pass
else:
    raise AssertionError(f"{NO_JAM!r} is a valid job id: a jam of that name would pass before any was accepted")


def own_events(c: Canvas) -> None:
    """[r \\$0-incoming] -> [s \\$0-own]: an event passes when it names the jam accepted last (its JOB, an
    ok its SUBJECT); or, while starts (and resumes) sent wait for their answers, when it is an accepted
    (its jam becomes the one followed) or an error (a start refused). Anything else is dropped. Over OSC
    an accepted names no request, so one from elsewhere that came between a start and its answer would be
    taken for it: the daemon answers a start at once, and only a subscribed address hears others' jams."""
    c.text(20, 10, "Only this patch's jam goes on (to [pd events] and the left outlet): an event naming the jam "
           "accepted last (ok jam_stop JAM: its third word) \\; or \\, while a start or resume sent waits for its "
           "answer \\, an accepted (the new jam) or an error (the start refused). The daemon sends every jam's "
           "events to the socket that started it: a jam started while another runs (or the tail of a stopped "
           "one) would play into the same ring.", 110)
    c.obj("r", 20, 70, "r \\$0-incoming")
    c.obj("tolist", 20, 95, "list append")
    c.obj("t", 20, 120, "t l l")
    c.obj("keep", 20, 450, "list append")
    c.obj("out", 20, 475, "list trim")
    c.obj("s", 20, 500, "s \\$0-own")
    c.chain("r", "tolist", "t")
    c.wire("t:1", "keep:1")
    c.chain("keep", "out", "s")
    # The event's type, kept for when the jam it names is not the one followed.
    c.obj("vt", 100, 150, "t l l")
    c.obj("type", 300, 180, "list split 1")
    c.obj("typekeep", 300, 330, "symbol")
    c.wire("t", "vt")
    c.wire("vt:1", "type")
    c.wire("type", "typekeep:1")
    # The jam it names: the second word ([route] matches a message's first word, not a list's), an ok's third.
    c.obj("trim", 100, 180, "list trim")
    c.obj("isok", 100, 205, "route ok")
    c.obj("okrest", 100, 230, "list split 1")
    c.obj("rest", 200, 230, "list split 1")
    c.obj("jam", 100, 260, "list split 1")
    c.obj("followed", 100, 300, f"sel {NO_JAM}")
    c.obj("rjam", 200, 275, "r \\$0-jam")
    c.chain("vt", "trim", "isok", "okrest")
    c.wire("isok:1", "rest")
    c.wire("okrest:1", "jam")
    c.wire("rest:1", "jam")
    c.wire("jam", "followed")
    c.wire("rjam", "followed:1")
    c.wire("followed", "keep")
    # Another jam's: an accepted or an error passes only as the answer to a start that waits for one.
    c.obj("other", 180, 330, "t b")
    c.obj("answer", 300, 355, "sel accepted error")
    c.obj("waiting", 300, 380, "v \\$0-waiting")
    c.obj("some", 300, 405, "> 0")
    c.obj("yes", 300, 430, "sel 1")
    c.obj("take", 300, 455, "t b b")
    c.obj("left", 400, 480, "v \\$0-waiting")
    c.obj("minus", 400, 505, "- 1")
    c.obj("setleft", 400, 530, "v \\$0-waiting")
    c.wire("followed:1", "other")
    c.chain("other", "typekeep", "answer", "waiting", "some", "yes", "take")
    c.wire("answer:1", "waiting")
    c.chain("take:1", "left", "minus", "setleft")
    c.wire("take", "keep")
    # Each start and resume sent (they reset the player) waits for one answer.
    c.obj("rreset", 550, 70, "r \\$0-reset")
    c.obj("sent", 550, 95, "v \\$0-waiting")
    c.obj("plus", 550, 120, "+ 1")
    c.obj("setsent", 550, 145, "v \\$0-waiting")
    c.chain("rreset", "sent", "plus", "setsent")
