import torch

from daemon.models.jukebox import WindowSampled
from daemon.models.jukebox.streaming import StreamingDecoder, receptive_radius_tokens


def test_radius_bounds_a_single_token_influence(model):
    tokens = torch.randint(0, 64, (1, 512), generator=torch.Generator().manual_seed(0))
    changed = tokens.clone()
    changed[0, 256] = (changed[0, 256] + 7) % 64
    difference = (model.vqvae.decode([changed]) - model.vqvae.decode([tokens])).abs()[0, :, 0]
    touched = (difference > 0).nonzero()[:, 0] // 8
    radius = receptive_radius_tokens(model.vqvae, 0)
    assert 256 - radius <= touched.min() and touched.max() <= 256 + radius
    assert radius < 2 * max(256 - touched.min().item(), touched.max().item() - 256)  # a bound, not a wild one


def test_chunks_join_to_the_full_decode(model):
    tokens = torch.randint(0, 64, (2, 1000), generator=torch.Generator().manual_seed(1))
    decoder = StreamingDecoder(model.vqvae, vqvae_level=0)
    chunks = [decoder.push(tokens[:, :end]) for end in (10, 200, 230, 600, 999)]
    chunks.append(decoder.finish(tokens))
    assert chunks[0].shape[1] == 0  # not enough right context yet
    joined = torch.cat(chunks, dim=1)
    torch.testing.assert_close(joined, model.vqvae.decode([tokens]), atol=1e-5, rtol=0)


def test_streaming_an_upsampling_job(model, labels, expected):
    top = expected["upsample_in_top"]
    empty = torch.zeros(1, 0, dtype=torch.long)
    decoder = StreamingDecoder(model.vqvae, vqvae_level=0)
    chunks = []
    for event in model.sample_windows([top, empty, empty], labels, sample_levels=[1, 2], sample_length=16384, seed=0):
        if isinstance(event, WindowSampled) and event.level == 2:
            chunks.append(decoder.push(event.music_tokens[2]))
    final = event.music_tokens[2]
    chunks.append(decoder.finish(final))
    assert sum(c.shape[1] > 0 for c in chunks) > 10  # audio arrives while sampling goes on
    torch.testing.assert_close(torch.cat(chunks, dim=1), model.decode_level(event.music_tokens, 2), atol=1e-5, rtol=0)
