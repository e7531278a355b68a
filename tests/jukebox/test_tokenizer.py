import json

import pytest
import torch

from daemon.models.jukebox import JukeboxTokenizer


@pytest.fixture
def tokenizer(fixture_dir):
    vocab = fixture_dir / "vocab"
    return JukeboxTokenizer(vocab / "artists.json", vocab / "genres.json", vocab / "lyrics.json", n_genres=1)


def test_matches_reference_labels(tokenizer, expected, meta):
    ids = tokenizer(artist=meta["artist"], genres=meta["genre"], lyrics=meta["lyrics"])["input_ids"]
    assert len(ids) == 3
    for i in range(3):
        assert ids[i].dtype == torch.long
        assert torch.equal(ids[i], expected[f"labels_{i}"])


def test_only_top_prior_gets_lyrics_and_genres_are_padded(fixture_dir):
    vocab = fixture_dir / "vocab"
    tok = JukeboxTokenizer(vocab / "artists.json", vocab / "genres.json", vocab / "lyrics.json", n_genres=3)
    top, mid, bottom = tok(artist="Zac Brown Band", genres="Country", lyrics="Hi")["input_ids"]
    assert top.tolist() == [[0, 0, 0, 3, 7, -1, -1, 8, 35]]  # 'H' = 8, 'i' = 35
    assert mid.tolist() == bottom.tolist() == [[0, 0, 0, 5, 4, -1, -1]]


def test_lyrics_are_normalised(tokenizer, fixture_dir):
    chars = json.loads((fixture_dir / "vocab" / "lyrics.json").read_text())
    lyrics = tokenizer(artist="x", genres="y", lyrics="Café* @1\\b+")["input_ids"][0][0, 5:].tolist()
    # accents stripped, '*' and '@' dropped, backslash becomes a newline; '+' survives the
    # filter but is not in the 79-entry v3 charset, so it becomes the unknown id 0
    assert lyrics == [chars[c] for c in "Cafe 1\nb"] + [0]


def test_v2_names_are_normalised_and_unknowns_map_to_zero(tokenizer):
    ids = tokenizer(artist="  ZAC brown--band!! ", genres="Country", lyrics="")["input_ids"]
    assert ids[1][0, 3].item() == 5  # zac_brown_band.v2
    assert ids[0][0, 3].item() == 0  # v3 looks up the lowercased raw name: unknown
    ids = tokenizer(artist="Nobody", genres="Polka", lyrics="")["input_ids"]
    assert [t[0, 3:5].tolist() for t in ids] == [[0, 0]] * 3


def test_too_many_genres_is_an_error(tokenizer):
    with pytest.raises(ValueError, match="at most 1 genres"):
        tokenizer(artist="Zac Brown Band", genres="country_rock", lyrics="")


def test_from_pretrained_reads_vocab_folder(fixture_dir, expected, meta):
    tok = JukeboxTokenizer.from_pretrained(fixture_dir)
    assert tok.n_genres == 5  # the fixture has no tokenizer_config.json: defaults
    ids = tok(artist=meta["artist"], genres=meta["genre"], lyrics=meta["lyrics"])["input_ids"]
    assert ids[0][0, :5].tolist() == expected["labels_0"][0, :5].tolist()
    assert ids[0][0, 5:9].tolist() == [-1, -1, -1, -1]


def test_from_pretrained_vocab_only_folder(fixture_dir, tmp_path, expected, meta):
    import shutil

    for name in ("artists.json", "genres.json", "lyrics.json"):
        shutil.copy(fixture_dir / "vocab" / name, tmp_path)
    (tmp_path / "tokenizer_config.json").write_text('{"n_genres": 1}')
    ids = JukeboxTokenizer.from_pretrained(tmp_path)(artist=meta["artist"], genres=meta["genre"], lyrics=meta["lyrics"])
    assert all(torch.equal(ids["input_ids"][i], expected[f"labels_{i}"]) for i in range(3))
