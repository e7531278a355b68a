"""Helpers shared by the cache and fixed-shape step tests."""

import copy

import torch

from daemon.models.jukebox import JukeboxModel
from daemon.models.jukebox.config import JukeboxConfig
from daemon.models.jukebox.presets import DEBUG_CONFIG, init_random


def cached_logits(prior, music_tokens, upper, metadata, prefill_len):
    """Prefill `prefill_len` positions of the sequence, then step through the rest feeding the
    known tokens; returns the step logits [B, T - prefill_len, V]."""
    cond = prior.conditioning(upper, metadata)
    sequence = prior.sequence(music_tokens, cond)
    cache = prior.new_cache(sequence.shape[0])
    if prefill_len:
        prior.prefill(sequence[:, :prefill_len], cond, cache)
    out = []
    for t in range(prefill_len, sequence.shape[1]):
        previous = sequence[:, t - 1 : t] if t else None
        out.append(prior.step_logits(previous, cond, cache))
    assert cache.position == sequence.shape[1]
    return torch.cat(out, dim=1)


def window_inputs(model, level, batch=1, seed=0):
    prior = model.priors[level]
    g = torch.Generator().manual_seed(seed)
    vocab = prior.music_vocab_size
    tokens = torch.randint(0, vocab, (batch, prior.n_ctx), generator=g)
    labels = torch.tensor([[0, 0, 0, 5, 4] + torch.randint(1, 79, (40,), generator=g).tolist()]).repeat(batch, 1)
    head = 4 + prior.config.max_nb_genres
    labels = labels[:, : head + (40 if prior.lyric_len else 0)]
    metadata = prior.window_metadata(labels, 0, 16384, 0)
    upper = None
    if level:
        upper = torch.randint(0, vocab, (batch, prior.n_ctx // prior.cond_downsample), generator=g)
    return prior, tokens, upper, metadata


def random_model(top_prior_changes: dict, seed: int = 0) -> JukeboxModel:
    """A random model in float64, so that any difference above rounding is a real one."""
    raw = copy.deepcopy(DEBUG_CONFIG)
    raw["prior_config_list"][0].update(top_prior_changes)
    torch.manual_seed(seed)
    model = JukeboxModel(JukeboxConfig.from_dict(raw)).eval()
    init_random(model)
    with torch.no_grad():  # make the conditioning and attention matter more than at init scale
        for p in model.priors[0].parameters():
            p.mul_(20.0)
    return model.double()


FIVE_B_LIKE = dict(
    attention_pattern="large_separated_enc_dec_w_lyrics",
    num_layers=20,  # layer 18 is a cross-attention layer
    is_encoder_decoder=False,
    merged_decoder=True,  # untied head, conditioning not added after the stack
    nb_relevant_lyric_tokens=8,
    encoder_config=dict(
        hidden_size=16, num_layers=3, n_heads=1, n_ctx=8, blocks=4, mask=True,
        attention_pattern="raw_column_previous_row_attention", nb_relevant_lyric_tokens=8,
        lyric_vocab_size=79, is_encoder_decoder=False, merged_decoder=False,
    ),
)
