"""Speculative decoding: a quantised copy of the model drafts columns, the full model checks them.

A float32 step on a CPU is bound by reading 1.4 GB of weights (musicgen-small), however the
step is written. Checking several columns costs one such read, not several: the draft engine
(int8, a quarter of the bytes) proposes `lookahead` columns, the float32 engine scores all of
them in one pass, and speculative sampling (`sampling.speculative_accept`) keeps each drafted
code with probability min(1, p / q) or redraws it from what is left of p. Every code that comes
out is distributed exactly as the float32 model's own sampling; with greedy decoding they are
the float32 engine's very codes. Codebooks of one column are drawn independently given the
past, so each is accepted on its own; the first column with a redrawn code ends the round.

Same contract as `loop.decoder_columns`: yields each column `[B, K]` of the window in order. The
verifier and the draft are two independent decoders; the caller (`engine.MusicgenEngine`) pairs them.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from daemon.models.musicgen.conditioning import Conditioning
from daemon.models.musicgen.decoder import MusicgenDecoder
from daemon.models.musicgen.loader import MusicgenBundle
from daemon.models.musicgen.loop import StopFn, WindowSampler, check_stop, plan_window, window_sampler
from daemon.models.musicgen.sampling import distribution, speculative_accept
from protocol.params import GenerationParams


def speculative_columns(
    verifier: MusicgenDecoder,
    draft: MusicgenDecoder,
    bundle: MusicgenBundle,
    cond: Conditioning,
    prompt: torch.Tensor | None,
    new_frames: int,
    params: GenerationParams,
    rng: torch.Generator | None,
    should_stop: StopFn | None,
    lookahead: int,
) -> Iterator[torch.Tensor]:
    pattern, start = plan_window(bundle, cond, prompt, new_frames)  # start: the first sampled column's slot
    sampler = window_sampler(bundle, cond, pattern, params, rng, verifier.vocab)
    steps = pattern.steps
    rows = cond.hidden_states.shape[0]

    def check(step: int, target_scores: torch.Tensor, drawn: torch.Tensor,
              draft_probs: torch.Tensor | None) -> tuple[torch.Tensor, bool]:
        """The float32 verdict on the codes `[B * K]` the draft drew for column `step` (before the
        pattern's forcing): the column to keep and whether all of it was the draft's."""
        if params.greedy:
            codes = target_scores.argmax(dim=-1)
            kept = codes == drawn
        else:
            assert draft_probs is not None
            codes, kept = speculative_accept(distribution(target_scores, params), draft_probs, drawn, rng)
        # Codes the delay pattern or the prompt force are the same whatever was drawn.
        kept = kept.view(sampler.batch, sampler.num_codebooks) | pattern.forced(step).to(kept.device)
        return sampler.column(step, codes), bool(kept.all())

    # Both caches hold every slot up to the window's last column: a round may feed it.
    with verifier.open_cache(rows, start + steps) as v_cache, draft.open_cache(rows, start + steps) as d_cache:
        logits = verifier.prefill(v_cache, cond, pattern.inputs)
        draft.prefill(d_cache, cond, pattern.inputs)
        known = _first(sampler, logits)  # column `step`, fed to neither decoder yet
        step = 0
        draft_behind: list[torch.Tensor] = []  # accepted columns before `known` the draft has not seen
        while True:
            yield known
            check_stop(should_stop)
            if step + 1 >= steps:
                return
            slot = start + step
            for offset, column in enumerate(draft_behind, start=-len(draft_behind)):
                draft.step(d_cache, column, slot + offset)
            draft_behind = []

            # Draft: the draft decoder's own steps, from `known` on.
            count = min(lookahead, steps - 1 - step)
            drafted: list[torch.Tensor] = []  # columns, as fed
            drawn: list[torch.Tensor] = []  # the codes the draft drew for them, before the pattern's forcing
            draft_probs: list[torch.Tensor | None] = []
            column = known
            for i in range(count):
                codes, probs = sampler.draw(sampler.scores(draft.step(d_cache, column, slot + i)))
                column = sampler.column(step + 1 + i, codes)
                drafted.append(column)
                drawn.append(codes)
                draft_probs.append(probs)
                check_stop(should_stop)

            # Verify: `known` and every draft through the float32 decoder in one pass.
            v_logits = verifier.extend(v_cache, torch.stack([known, *drafted], dim=-1), slot)  # [N, T, K, V]
            for i in range(count):
                column, all_kept = check(step + 1 + i, sampler.scores(v_logits[:, i]), drawn[i], draft_probs[i])
                if not all_kept:
                    known, step = column, step + 1 + i  # redrawn: fed to neither decoder yet
                    break
                yield column
                check_stop(should_stop)
            else:
                if step + count + 1 >= steps:
                    return
                # Every draft kept: the float32 pass already scored the next column, a free one.
                draft_behind = [drafted[-1]] if count else []
                next_step = step + count + 1
                known, step = sampler.column(next_step, sampler.draw(sampler.scores(v_logits[:, count]))[0]), next_step


def _first(sampler: WindowSampler, logits: torch.Tensor) -> torch.Tensor:
    return sampler.column(0, sampler.draw(sampler.scores(logits))[0])
