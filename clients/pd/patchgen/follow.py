"""Which job riffd.pd's arrays follow: the newest job request *sent*, not the newest accepted.

A reply for an older request can arrive after a newer request went out (two requests in one
message, a loaded machine), so "the last accepted job" may be the older one. A request that
names its job (the `job` option) makes that job the newest as it goes out. One that does not
leaves the daemon to pick the id: nothing loads until the daemon's answer to that very request
names it. The daemon answers every job request with one `accepted` or one `error` (a refusal,
whose job is the request's, empty when it named none), in the order the requests came, so the
answers still owed are a queue: the answer that empties it is the newest request's.
"""

from __future__ import annotations

from clients.pd.patchgen.patches import event_log
from clients.pd.patchgen.pdfile import Canvas

#: An answer owed for longer than this was lost (UDP): it no longer holds the queue up.
ANSWER_TIMEOUT_MS = 10000


def follow(c: Canvas) -> None:
    """The `follow` subpatch: sets \\$0-newest-job (an empty symbol while the newest job's id is
    not known yet) from \\$0-asked (a job request is going out) and the daemon's answers."""
    c.text(20, 10, "The arrays follow the newest job request sent. A request naming its job (option job NAME) "
           "makes NAME the newest as it goes out; without one \\, the newest is unknown (nothing loads) until "
           "the daemon's answer to it. Answers (accepted \\, or error for a refused request) come in request "
           "order: a queue of the answers owed (TIME NAME \\, or TIME - for a request without a job) finds "
           f"the newest's. An answer owed for over {ANSWER_TIMEOUT_MS // 1000} s was lost and is dropped.", 110)
    c.obj("q", 900, 60, "text define \\$0-asked")
    c.obj("lb", 900, 90, "loadbang")
    c.obj("ts", 780, 120, "timer")
    c.obj("ta", 900, 120, "timer")
    c.wire("lb", "ts")
    c.wire("lb", "ta")
    _on_request(c)
    _on_answer(c)
    _prune(c)


def _on_request(c: Canvas) -> None:
    """A job request goes out: queue its answer, and name the newest (or leave it unknown)."""
    c.obj("ra", 20, 90, "r \\$0-asked")
    c.obj("rat", 20, 115, "t b b")
    c.msg("key", 20, 145, "list job")
    c.obj("find", 20, 170, "text search \\$0-opts 1")
    c.obj("has", 20, 195, "moses 0")
    # No job option: the newest is unknown until its answer; queue TIME -.
    c.obj("anon", 20, 225, "t b b")
    c.msg("unknown", 80, 250, "symbol")
    c.obj("anont", 20, 280, "f")
    c.obj("anonl", 20, 305, "list append -")
    # job NAME: NAME is the newest now; queue TIME NAME.
    c.obj("get", 200, 225, "text get \\$0-opts")
    c.obj("name", 200, 250, "list split 2")
    c.obj("namet", 200, 275, "t l l")
    c.obj("namel", 200, 305, "list prepend")
    c.obj("push", 20, 340, "text set \\$0-asked 1e+06")
    c.msg("pending1", 140, 250, "1")
    c.msg("pending0", 300, 250, "0")
    c.obj("spending", 140, 370, "s \\$0-pending")
    c.obj("newest", 320, 340, "s \\$0-newest-job")
    c.chain("ra", "rat")
    # The time first: [timer] gives the ms since load to both ways of queueing.
    c.wire("rat:1", "ts:1")
    c.wire("ts", "anont:1")
    c.wire("ts", "namel:1")
    c.chain("rat", "key", "find", "has")
    c.wire("has", "anon")
    c.wire("anon:1", "unknown")
    c.chain("anon:1", "pending1", "spending")
    c.chain("name:1", "pending0", "spending")
    c.wire("unknown", "newest")
    c.chain("anon", "anont", "anonl", "push")
    c.wire("has:1", "get")
    c.chain("get", "name")
    c.wire("name:1", "namet")
    c.wire("namet:1", "namel")
    c.wire("namel", "push")
    c.wire("namet", "newest")


def _on_answer(c: Canvas) -> None:
    """accepted JOB: dequeue; if that empties the queue and the newest request named no job, JOB is
    the newest. error JOB: dequeue if it refuses the queue's head (the head's name, or an empty job
    for a head without one)."""
    c.obj("rin", 20, 400, "r \\$0-incoming")
    c.obj("kind", 20, 425, "route accepted error")
    c.obj("aj", 20, 455, "list split 1")
    c.obj("at", 20, 480, "t b l")
    c.obj("ajob", 120, 600, "symbol")
    c.obj("asize", 20, 510, "text size \\$0-asked")
    c.obj("aowed", 20, 535, "moses 1")
    c.obj("apop", 80, 560, "t b b")
    c.msg("apop0", 140, 585, "0")
    c.obj("del", 300, 700, "text delete \\$0-asked")
    c.obj("aleft", 80, 600, "text size \\$0-asked")
    c.obj("alast", 80, 625, "sel 0")
    c.obj("anew", 120, 655, "s \\$0-newest-job")
    c.chain("rin", "kind", "aj")
    c.chain("aj", "at")
    c.wire("at:1", "ajob:1")
    c.obj("aprune", 60, 480, "s \\$0-prune")
    c.obj("atb", 20, 500, "t b b")
    c.wire("at", "atb")
    c.wire("atb:1", "aprune")
    c.wire("atb", "asize")
    c.chain("asize", "aowed")
    c.wire("aowed:1", "apop")
    c.wire("apop:1", "apop0")
    c.wire("apop0", "del")
    # Only a newest request without a name takes its job from the answer (a named one is known).
    c.obj("apending", 80, 655, "f")
    c.obj("rpending", 200, 625, "r \\$0-pending")
    c.obj("aunknown", 80, 680, "sel 1")
    c.wire("rpending", "apending:1")
    c.chain("apop", "aleft", "alast", "apending", "aunknown", "ajob", "anew")

    c.obj("ej", 400, 455, "list split 1")
    c.obj("et", 400, 480, "t b b l")
    c.obj("ejob", 400, 660, "symbol")
    c.obj("eprune", 460, 505, "s \\$0-prune")
    c.obj("esize", 400, 530, "text size \\$0-asked")
    c.obj("eowed", 400, 555, "moses 1")
    c.obj("ehead", 460, 580, "t b b")
    c.msg("eget0", 520, 605, "0")
    c.obj("eget", 520, 630, "text get \\$0-asked")
    c.obj("ename", 520, 655, "list split 1")
    c.obj("etrim", 600, 680, "list trim")
    c.obj("eanon", 600, 705, "route -")
    c.msg("eempty", 600, 730, "symbol")
    c.obj("esym", 680, 730, "symbol")
    c.obj("same", 400, 760, "sel -")
    c.msg("epop0", 400, 785, "0")
    c.wire("kind:1", "ej")
    c.chain("ej", "et")
    c.wire("et:2", "ejob:1")
    c.wire("et:1", "eprune")
    c.chain("et", "esize", "eowed")
    c.wire("eowed:1", "ehead")
    c.wire("ehead:1", "eget0")
    c.chain("eget0", "eget", "ename")
    c.wire("ename:1", "etrim")
    c.chain("etrim", "eanon", "eempty", "same:1")
    c.wire("eanon:1", "esym")
    c.wire("esym", "same:1")
    c.chain("ehead", "ejob", "same", "epop0", "del")


def _prune(c: Canvas) -> None:
    """Drop the queue's head while it is older than ANSWER_TIMEOUT_MS (its answer was lost)."""
    c.obj("rp", 700, 400, "r \\$0-prune")
    c.obj("pt", 700, 425, "t b b")
    c.wire("ta", "cut")
    c.obj("cut", 800, 480, f"- {ANSWER_TIMEOUT_MS}")
    c.obj("loop", 700, 480, "until")
    c.obj("psize", 700, 505, "text size \\$0-asked")
    c.obj("pempty", 700, 530, "sel 0")
    c.msg("p0", 760, 555, "0")
    c.obj("pget", 760, 580, "text get \\$0-asked")
    c.obj("ptime", 760, 605, "list split 1")
    c.obj("stale", 760, 630, "moses")
    c.msg("pdel0", 760, 655, "0")
    c.obj("pdel", 760, 680, "text delete \\$0-asked")
    c.msg("most", 700, 455, "1000")  # a bound, so that no queue line can make the loop endless
    c.chain("rp", "pt")
    c.wire("pt:1", "ta:1")
    c.wire("cut", "stale:1")
    c.chain("pt", "most", "loop", "psize", "pempty")
    c.wire("pempty", "loop:1")  # empty: stop
    c.wire("pempty:1", "p0")
    c.chain("p0", "pget", "ptime", "stale")
    c.chain("stale", "pdel0", "pdel")
    c.obj("fresh", 840, 655, "t b")
    c.chain("stale:1", "fresh", "loop:1")  # a fresh head: stop


def follow_test_patch() -> Canvas:
    """A Python peer plays the daemon and answers only once a message's requests have all gone out:
    the arrays must follow the newest request sent, named or not, through refusals."""
    c = Canvas(size=(800, 450))
    event_log(c, "riffd-follow-log", 15000, 560, 250)
    c.text(20, 10, "Test patch for tests/clients_pd: started by pytest with -send \"riffd-follow PORT LOG WAV\". "
           "Asks for jobs pd-a then pd-b; on the first ok event for pd-e and three jobs without a name (the "
           "peer refuses pd-e and the second); on the second ok writes the array to WAV and every event to "
           "LOG \\, and quits.", 110)
    c.obj("arr", 560, 60, "array define riffd-follow-audio")
    c.obj("arrr", 560, 85, "array define riffd-follow-audio-r")
    c.obj("r", 20, 60, "r riffd-follow")
    c.obj("t", 20, 85, "t l l")
    c.obj("up", 120, 110, "unpack f s s")
    c.obj("swav", 220, 380, "symbol")
    c.obj("port", 20, 110, "list split 1")
    c.msg("conn", 20, 135, "connect 127.0.0.1 \\$1")
    c.obj("go", 20, 160, "t b")
    c.msg("ab", 20, 185, "save 0 \\, job pd-a \\, generate 1 older \\, job pd-b \\, generate 1 newer")
    c.obj("riffd", 20, 230, "riffd riffd-follow-audio riffd-follow-audio-r")
    c.obj("rt", 200, 285, "route ok")
    c.obj("rtb", 200, 310, "t b")
    c.obj("cnt", 200, 335, "f")
    c.obj("inc", 250, 335, "+ 1")
    c.obj("sel", 200, 360, "sel 0 1")
    c.msg("more", 420, 185, "job pd-e \\, generate 1 refused \\, unset job \\, generate 1 third \\, "
          "generate 1 refused too \\, generate 1 fourth", 50)
    c.obj("fin", 20, 380, "t b b b")
    c.msg("wwav", 220, 405, "write -bytes 4 \\$1 riffd-follow-audio")
    c.obj("sf", 220, 430, "soundfiler")
    c.msg("quit", 20, 430, "\\; pd quit")
    c.chain("r", "t")
    c.wire("t:1", "up")
    c.wire("up:1", "slog:1")
    c.wire("up:2", "swav:1")
    c.chain("t", "port", "conn", "riffd")
    c.wire("conn", "go")
    c.chain("go", "ab", "riffd")
    c.wire("riffd:2", "ev")
    c.chain("ev", "rt", "rtb", "cnt", "inc")
    c.wire("inc", "cnt:1")
    c.wire("cnt", "sel")
    c.chain("sel", "more", "riffd")
    c.wire("sel:1", "fin")
    c.wire("to", "fin")
    c.wire("fin:2", "swav")
    c.chain("swav", "wwav", "sf")
    c.wire("fin:1", "slog")
    c.wire("fin", "quit")
    return c
