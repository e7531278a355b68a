"""Python side of `sampling.c`: a step's guided, tempered, top-k-cut scores in one native pass, and the
exponential race drawn from the streams' own torch generators in another."""

from __future__ import annotations

import ctypes
import functools
import logging
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import torch

from daemon.native import NativeUnavailable, library, optional_function

log = logging.getLogger(__name__)

_i64, _ptr = ctypes.c_int64, ctypes.c_void_p

#: `race`'s bound on PyTorch's float rounding of one p / E, relative, per unit of |score - best score|
#: + 1 (sampling.c): 2^-17 covers the subtraction's 2^-24 per unit, an exp 32 ulp off, the softmax's
#: scaling and the division. A row whose winner is not ahead by that much goes to PyTorch's race
#: (about one row in 10^4 on MusicGen's scores).
RACE_SLACK = 2.0**-17


@functools.cache
def _function() -> Callable[..., Any] | None:
    """The C function, or None where riffd's library cannot be built or loaded here (then PyTorch's path)."""
    return optional_function("riffd_sampling_scores",
                             [_ptr, _i64, _i64, ctypes.c_int, ctypes.c_float, ctypes.c_float, _i64, _ptr, _ptr], _i64)


def scores_into(out: torch.Tensor, logits: torch.Tensor, *, guided: bool, guidance_scale: float, temperature: float,
                top_k: int) -> bool:
    """Write `out` `[R, V]` = (guidance, then / temperature, then every code below the row's k-th best
    at -inf) of `logits` (`[2R, V]`, conditional rows first, when `guided`; else `[R, V]`): the bits of
    `apply_guidance` then `distribution`'s first steps in PyTorch. False where it cannot here (no
    library, not contiguous float32 CPU tensors, a NaN in the scores): then `out` means nothing."""
    function = _function()
    rows, vocab = out.shape
    if (function is None or out.dtype != torch.float32 or logits.dtype != torch.float32 or not out.is_cpu
            or not logits.is_cpu or not out.is_contiguous() or not logits.is_contiguous()
            or tuple(logits.shape) != ((2 * rows if guided else rows), vocab)):
        return False
    work = torch.empty(vocab, dtype=torch.float32)
    nans = function(logits.data_ptr(), rows, vocab, int(guided), guidance_scale, temperature, top_k, out.data_ptr(),
                    work.data_ptr())
    return nans == 0


@functools.cache
def _race_functions() -> tuple[ctypes._CFuncPtr, ctypes._CFuncPtr, ctypes._CFuncPtr] | None:  # type: ignore[name-defined]
    """`riffd_sampling_race` and `riffd_sampling_exponentials`, where the library runs and its reading
    of a torch generator's state gives this torch's `exponential_` to the bit (checked here once:
    another PyTorch may draw otherwise, and then its own race runs); else None."""
    try:
        loaded = library()
    except NativeUnavailable:
        return None
    race_function, exponentials = loaded.riffd_sampling_race, loaded.riffd_sampling_exponentials
    race_function.argtypes = [_ptr, _i64, _i64, _ptr, ctypes.c_double, _ptr, _ptr, _ptr, _ptr]
    race_function.restype = _i64
    draw_function = loaded.riffd_sampling_draw
    draw_function.argtypes = [_ptr, _i64, _i64, ctypes.c_int, ctypes.c_float, ctypes.c_float, _i64, _ptr,
                              ctypes.c_double, _ptr, _ptr, _ptr, _ptr, _ptr]  # one generator state for every row
    draw_function.restype = _i64
    exponentials.argtypes = [_ptr, _i64, _ptr]
    exponentials.restype = None
    loaded.riffd_sampling_state_bytes.restype = _i64
    reason = _exponentials_differ(exponentials, int(loaded.riffd_sampling_state_bytes()))
    if reason:
        log.info("sampling: PyTorch's exponential race (%s)", reason)
        return None
    return race_function, exponentials, draw_function


def _exponentials_differ(exponentials: ctypes._CFuncPtr, state_bytes: int) -> str:  # type: ignore[name-defined]
    """Why sampling.c's exponentials are not this torch's (empty when they are, bits and state alike):
    several seeds, past the twister's refills, and a generator state saved part way."""
    for seed, count in ((0, 1), (1, 5000), (2**40 + 7, 3 * 2048 + 5)):
        expected_rng, native_rng = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        torch.empty(seed % 311, dtype=torch.float32).exponential_(1, generator=expected_rng)
        torch.empty(seed % 311, dtype=torch.float32).exponential_(1, generator=native_rng)
        expected = torch.empty(count, dtype=torch.float32).exponential_(1, generator=expected_rng)
        state = native_rng.get_state()
        if state.dtype != torch.uint8 or state.numel() != state_bytes or not state.is_contiguous():
            return f"its generator state is {state.numel()} {state.dtype}, not {state_bytes} bytes"
        drawn = torch.empty(count, dtype=torch.float32)
        exponentials(state.data_ptr(), count, drawn.data_ptr())
        try:
            native_rng.set_state(state)
        except RuntimeError as exc:
            return f"its generator takes no state written here: {exc}"
        if not torch.equal(drawn, expected) or not torch.equal(native_rng.get_state(), expected_rng.get_state()):
            return f"its exponential_ draws other numbers than sampling.c's (seed {seed})"
    return ""


#: Codes tensors a thread's scratch makes at once for `draw` (one allocation, then views of its rows):
#: a fresh torch.empty each step cost ~20 us with the caches cold from the native step's weights.
CODES_AHEAD = 64


class DrawScratch:
    """A thread's scratch for draws of `[rows, vocab]`, kept between steps: scores and noise, the race's
    bits and work (with their addresses, read once), and codes tensors made ahead, each a row of its own
    of one allocation (given away: nothing here holds a code tensor once it is handed out)."""

    def __init__(self, rows: int, vocab: int) -> None:
        self.rows = rows
        self.scores = torch.empty((rows, vocab), dtype=torch.float32)
        self.noise = torch.empty((rows, vocab), dtype=torch.float32)
        self.bits = torch.empty(vocab, dtype=torch.int64)
        self.work = torch.empty(3 * vocab, dtype=torch.float64)
        self.addresses = (self.scores.data_ptr(), self.noise.data_ptr(), self.bits.data_ptr(), self.work.data_ptr())
        self.spare_codes: list[tuple[torch.Tensor, int]] = []

    def codes(self) -> tuple[torch.Tensor, int]:
        """A fresh int64 tensor of `rows` codes and its address."""
        if not self.spare_codes:
            block = torch.empty((CODES_AHEAD, self.rows), dtype=torch.int64)
            start, row_bytes = block.data_ptr(), self.rows * block.element_size()
            self.spare_codes = [(row, start + i * row_bytes) for i, row in enumerate(block.unbind(0))][::-1]
        return self.spare_codes.pop()


class _Buffers(threading.local):
    """A thread's `DrawScratch` by `[rows, vocab]` and its array of state addresses by rows."""

    def __init__(self) -> None:
        self.kept: dict[tuple[int, int], DrawScratch] = {}
        self.addresses: dict[int, ctypes.Array[ctypes.c_void_p]] = {}

    def pointers(self, rows: int) -> ctypes.Array[ctypes.c_void_p]:
        """The thread's array of `rows` state addresses, for `_states` to fill (used by one call at a time)."""
        array = self.addresses.get(rows)
        if array is None:
            if len(self.addresses) > 8:
                self.addresses.clear()
            array = self.addresses[rows] = (ctypes.c_void_p * rows)()
        return array

    def get(self, rows: int, vocab: int) -> DrawScratch:
        scratch = self.kept.get((rows, vocab))
        if scratch is None:
            if len(self.kept) > 8:  # a few window shapes step on a thread; more is a change of model
                self.kept.clear()
            scratch = self.kept[(rows, vocab)] = DrawScratch(rows, vocab)
        return scratch


_buffers = _Buffers()

#: The generators found to be CPU ones (torch.Generator.device makes a torch.device each time: ~20 us
#: a step with the caches cold), weakly, so that a stream's generator goes when the stream does.
_cpu_generators: weakref.WeakSet[torch.Generator] = weakref.WeakSet()


def on_cpu(generator: torch.Generator) -> bool:
    """Whether `generator` is a CPU one (looked at once a generator)."""
    if generator in _cpu_generators:
        return True
    if generator.device.type != "cpu":
        return False
    _cpu_generators.add(generator)
    return True


def _states(generators: Sequence[tuple[torch.Generator | None, int]], rows: int,
            ) -> tuple[ctypes.Array[ctypes.c_void_p], list[tuple[torch.Generator, torch.Tensor]]] | None:
    """Each row's generator state address (rows of one generator share its one state) and the states to
    write back; None where a generator is not a CPU one or the rows do not add up."""
    states: dict[int, tuple[torch.Generator, torch.Tensor]] = {}
    # The thread's address array for `rows`, filled in place (a fresh ctypes array each step cost ~15 us
    # with the caches cold from the native step's weights).
    pointers = _buffers.pointers(rows)
    start = 0
    for generator, count in generators:
        generator = torch.default_generator if generator is None else generator
        if not on_cpu(generator) or start + count > rows:
            return None
        if id(generator) not in states:
            states[id(generator)] = (generator, generator.get_state())
        address = states[id(generator)][1].data_ptr()
        for row in range(start, start + count):
            pointers[row] = address
        start += count
    return (pointers, list(states.values())) if start == rows else None


def finish(codes: torch.Tensor, undecided: int, scores: torch.Tensor, noise: torch.Tensor,
            states: list[tuple[torch.Generator, torch.Tensor]]) -> torch.Tensor:
    """The generators moved to where the draw left them; the undecided rows raced by PyTorch on their very E
    (a row's softmax is its own in PyTorch's kernel)."""
    for generator, state in states:
        generator.set_state(state)
    if undecided:
        for row in (codes < 0).nonzero()[:, 0].tolist():
            codes[row] = (torch.softmax(scores[row:row + 1], dim=-1) / noise[row:row + 1]).argmax(dim=-1)[0]
    return codes


def race(scores: torch.Tensor, generators: Sequence[tuple[torch.Generator | None, int]], *,
         slack: float = RACE_SLACK) -> torch.Tensor | None:
    """Each row's code of `(softmax(scores) / E).argmax(-1)`, E drawn as `torch.empty_like(rows).exponential_(1,
    generator=g)` for each `(g, rows)` of `generators` in order (None: torch's default generator), which
    moves to where those calls leave it: `loop.next_columns`' codes to the bit. `scores` `[R, V]` float32
    (guided, tempered, cut; no NaN). None where it cannot here (then nothing was drawn)."""
    functions = _race_functions()
    rows, vocab = scores.shape
    if functions is None or scores.dtype != torch.float32 or not scores.is_cpu or not scores.is_contiguous():
        return None
    bound = _states(generators, rows)
    if bound is None:
        return None
    pointers, states = bound
    scratch = _buffers.get(rows, vocab)
    _, noise, bits, work = scratch.addresses
    codes = torch.empty(rows, dtype=torch.int64)
    undecided = functions[0](scores.data_ptr(), rows, vocab, pointers, slack, codes.data_ptr(), noise, bits, work)
    return finish(codes, undecided, scores, scratch.noise, states)


def draw(logits: torch.Tensor, generator: torch.Generator | None, *, guided: bool, guidance_scale: float,
         temperature: float, top_k: int, slack: float = RACE_SLACK) -> torch.Tensor | None:
    """`race` of `scores_into`'s scores of `logits` (`[2R, V]` guided, conditional rows first; else `[R, V]`)
    in one native call, every row's exponentials from `generator` (None: torch's default one): a window's
    whole draw where no top-p cut follows. None where it cannot here (no library, other tensors, a NaN in
    the scores): then the generator did not move.

    This runs once a step right after the native step has streamed its weights through the caches, where
    each torch call costs tens of microseconds: it makes only the calls it needs (the scratch's addresses
    are kept, the codes come from a block made ahead, the generator's device is looked at once)."""
    functions = _race_functions()
    if (functions is None or logits.dtype != torch.float32 or not logits.is_cpu or not logits.is_contiguous()
            or logits.dim() != 2):
        return None
    shape = logits.shape
    if guided and shape[0] % 2:
        return None
    rows, vocab = (shape[0] // 2 if guided else shape[0]), shape[1]
    generator = torch.default_generator if generator is None else generator
    if not on_cpu(generator):
        return None
    state = generator.get_state()
    scratch = _buffers.get(rows, vocab)
    codes, codes_address = scratch.codes()
    scores, noise, bits, work = scratch.addresses
    undecided = functions[2](logits.data_ptr(), rows, vocab, int(guided), guidance_scale, temperature, top_k,
                             state.data_ptr(), slack, scores, codes_address, noise, bits, work)
    if undecided < 0:
        return None
    return finish(codes, undecided, scratch.scores, scratch.noise, [(generator, state)])


def draw_runs() -> bool:
    """Whether `draw` runs here (riffd's library, and its exponentials this torch's)."""
    return _race_functions() is not None
