"""Speculative decoding: a quantised copy of the model drafts columns, the full model checks them.

A float32 step on a CPU is bound by reading 1.4 GB of weights (musicgen-small), however the
step is written. Checking several columns costs one such read, not several: the draft engine
(int8, a quarter of the bytes) proposes `lookahead` columns, the float32 engine scores all of
them in one pass, and speculative sampling (`sampling.speculative_accept`) keeps each drafted
code with probability min(1, p / q) or redraws it from what is left of p. Every code that comes
out is distributed exactly as the float32 model's own sampling; with greedy decoding they are
the float32 engine's very codes. Codebooks of one column are drawn independently given the
past, so each is accepted on its own; the first column with a redrawn code ends the round.

Same contract as `MusicgenEngine.columns`: yields each column `[B, K]` of the window in order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import torch

from daemon.models.musicgen.conditioning import Conditioning
from daemon.models.musicgen.sampling import apply_guidance, distribution, speculative_accept
from protocol.errors import Cancelled
from protocol.params import GenerationParams

if TYPE_CHECKING:
    from daemon.models.musicgen.engine import MusicgenEngine


def speculative_columns(
    verifier: "MusicgenEngine",
    draft: "MusicgenEngine",
    cond: Conditioning,
    prompt: torch.Tensor | None,
    new_frames: int,
    params: GenerationParams,
    generator: torch.Generator | None,
    should_stop: Callable[[], bool] | None,
    lookahead: int,
) -> Iterator[torch.Tensor]:
    batch, num_codebooks, vocab = cond.batch_size, verifier.bundle.num_codebooks, verifier.vocab
    pattern, start = verifier.plan_window(cond, prompt, new_frames)  # start: the first sampled column's slot
    steps = pattern.steps

    def scores_of(logits: torch.Tensor) -> torch.Tensor:
        """Guided scores `[B * K, V]` from one row of logits `[N, K, V]`."""
        flat = logits.reshape(-1, vocab)
        return apply_guidance(flat, params.guidance_scale) if cond.guided else flat

    def finish(step: int, codes: torch.Tensor) -> torch.Tensor:
        """Column `step` of the window from codes `[B * K]`: the delay pattern and the prompt forced."""
        return pattern.column(step, codes.view(batch, num_codebooks))

    def draw(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Codes `[B * K]` and the distribution they came from (None when greedy)."""
        if params.greedy:
            return scores.argmax(dim=-1), None
        probs = distribution(scores, params)
        return torch.multinomial(probs, 1, generator=generator)[:, 0], probs

    def check(step: int, target_scores: torch.Tensor, drawn: torch.Tensor,
              draft_probs: torch.Tensor | None) -> tuple[torch.Tensor, bool]:
        """The float32 verdict on the codes `[B * K]` the draft drew for column `step` (before the
        pattern's forcing): the column to keep and whether all of it was the draft's."""
        if params.greedy:
            codes = target_scores.argmax(dim=-1)
            kept = codes == drawn
        else:
            codes, kept = speculative_accept(distribution(target_scores, params), draft_probs, drawn, generator)
        # Codes the delay pattern or the prompt force are the same whatever was drawn.
        kept = kept.view(batch, num_codebooks) | pattern.forced(step).to(kept.device)
        return finish(step, codes), bool(kept.all())

    # Both caches hold every slot up to the window's last column: a round may feed it.
    with verifier.open_cache(cond, start + steps) as v_cache, draft.open_cache(cond, start + steps) as d_cache:
        logits = verifier.prefill(v_cache, cond, pattern.inputs)
        draft.prefill(d_cache, cond, pattern.inputs)
        known = finish(0, draw(scores_of(logits))[0])  # column `step`, fed to neither engine yet
        step = 0
        draft_behind: list[torch.Tensor] = []  # accepted columns before `known` the draft has not seen
        while True:
            yield known
            if should_stop is not None and should_stop():
                raise Cancelled("generation cancelled")
            if step + 1 >= steps:
                return
            slot = start + step
            for offset, column in enumerate(draft_behind, start=-len(draft_behind)):
                draft.decode_one_step(d_cache, column, slot + offset)
            draft_behind = []

            # Draft: the draft engine's own steps, from `known` on.
            count = min(lookahead, steps - 1 - step)
            drafted: list[torch.Tensor] = []  # columns, as fed
            drawn: list[torch.Tensor] = []  # the codes the draft drew for them, before the pattern's forcing
            draft_probs: list[torch.Tensor | None] = []
            column = known
            for i in range(count):
                d_logits = draft.decode_one_step(d_cache, column, slot + i)
                codes, probs = draw(scores_of(d_logits))
                column = finish(step + 1 + i, codes)
                drafted.append(column)
                drawn.append(codes)
                draft_probs.append(probs)
                if should_stop is not None and should_stop():
                    raise Cancelled("generation cancelled")

            # Verify: `known` and every draft through the float32 model in one pass.
            v_logits = verifier.extend(v_cache, torch.stack([known, *drafted], dim=-1), slot)  # [N, T, K, V]
            for i in range(count):
                column, all_kept = check(step + 1 + i, scores_of(v_logits[:, i]), drawn[i], draft_probs[i])
                if not all_kept:
                    known, step = column, step + 1 + i  # redrawn: fed to neither engine yet
                    break
                yield column
                if should_stop is not None and should_stop():
                    raise Cancelled("generation cancelled")
            else:
                if step + count + 1 >= steps:
                    return
                # Every draft kept: the float32 pass already scored the next column, a free one.
                draft_behind = [drafted[-1]] if count else []
                known, step = finish(step + count + 1, draw(scores_of(v_logits[:, count]))[0]), step + count + 1
