"""Jukebox labels: artist, genres and lyrics -> one id sequence per prior.

Same signature and output as transformers 4.40.2's `JukeboxTokenizer`. Each prior gets
`[0, 0, 0, artist_id, genre_id * n_genres, lyric ids...]`; the first three slots (total
length, offset, window length) are filled in per window by the sampler. Only the top prior
(index 0) gets lyric ids. Version "v3" looks names up lowercased; "v2" normalises them to
`[a-z0-9.]` words joined by "_" with a ".v2" suffix and splits genres on "_".
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from pathlib import Path
from collections.abc import Sequence

import torch

from . import loader

# characters the lyric models know; everything else is dropped before lookup
_V3_OUT_OF_VOCAB = re.compile(r"[^A-Za-z0-9.,:;!?\-+'\"()\[\] \t\n]+")
_V2_OUT_OF_VOCAB = re.compile(r"[^A-Za-z0-9.,:;!?\-'\"()\[\] \t\n]+")
_V2_LYRIC_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.,:;!?-+'\"()[] \t\n"
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.")


class JukeboxTokenizer:
    def __init__(
        self,
        artists_file: str | os.PathLike,
        genres_file: str | os.PathLike,
        lyrics_file: str | os.PathLike,
        version: Sequence[str] = ("v3", "v2", "v2"),
        max_n_lyric_tokens: int = 512,
        n_genres: int = 5,
    ):
        for name in version:
            if name not in ("v2", "v3"):
                raise ValueError(f"tokenizer versions are 'v2' or 'v3', got {name!r}")
        self.version = tuple(version)
        # kept for signature compatibility: like the reference, the whole lyrics are returned
        # and each window picks its `nb_relevant_lyric_tokens` around its midpoint
        self.max_n_lyric_tokens = max_n_lyric_tokens
        self.n_genres = n_genres
        self.artists_encoder = _read_json(artists_file)
        self.genres_encoder = _read_json(genres_file)
        self.lyrics_encoder = _read_json(lyrics_file)

    @classmethod
    def from_pretrained(
        cls, path_or_hub_id: str | os.PathLike, cache_dir: str | os.PathLike | None = None
    ) -> JukeboxTokenizer:
        """Read artists.json, genres.json, lyrics.json (and tokenizer_config.json if present)."""
        local = Path(path_or_hub_id).expanduser()
        folder = local if local.is_dir() else loader.resolve(path_or_hub_id, cache_dir)
        vocab = folder / "vocab" if not (folder / "artists.json").is_file() else folder
        options = {}
        config_file = folder / "tokenizer_config.json"
        if config_file.is_file():
            raw = json.loads(config_file.read_text(encoding="utf-8"))
            options = {k: raw[k] for k in ("version", "max_n_lyric_tokens", "n_genres") if k in raw}
        return cls(vocab / "artists.json", vocab / "genres.json", vocab / "lyrics.json", **options)

    def __call__(self, artist: str, genres: str, lyrics: str = "") -> dict[str, list[torch.Tensor]]:
        """-> {"input_ids": one LongTensor [1, 4 + n_genres (+ n_lyrics)] per prior}."""
        if not isinstance(artist, str) or not isinstance(genres, str) or not isinstance(lyrics, str):
            raise TypeError("artist, genres and lyrics must be strings")
        lyric_ids = self.lyric_ids(lyrics)
        input_ids = []
        for index, version in enumerate(self.version):
            row = [0, 0, 0, self.artist_id(artist, version), *self.genre_ids(genres, version)]
            if index == 0:
                row += lyric_ids
            input_ids.append(torch.tensor([row], dtype=torch.long))
        return {"input_ids": input_ids}

    def artist_id(self, artist: str, version: str) -> int:
        key = artist.lower() if version == "v3" else _normalize(artist) + ".v2"
        return self.artists_encoder.get(key, 0)

    def genre_ids(self, genres: str, version: str) -> list[int]:
        """Genre ids padded with -1 (empty slot) to n_genres. v2 composes genres joined by '_'."""
        names = [genres.lower()] if version == "v3" else [_normalize(g) + ".v2" for g in genres.split("_")]
        ids = [self.genres_encoder.get(name, 0) for name in names]
        if len(ids) > self.n_genres:
            raise ValueError(f"at most {self.n_genres} genres, got {len(ids)}")
        return ids + [-1] * (self.n_genres - len(ids))

    def lyric_ids(self, lyrics: str) -> list[int]:
        encoder = {c: i + 1 for i, c in enumerate(_V2_LYRIC_CHARS)} if self.version[0] == "v2" else self.lyrics_encoder
        return [encoder.get(c, 0) for c in self.lyric_text(lyrics)]

    def lyric_text(self, lyrics: str) -> str:
        """The lyrics as the top prior reads them, one character per lyric id (accents stripped,
        characters outside the vocabulary dropped)."""
        out_of_vocab = _V2_OUT_OF_VOCAB if self.version[0] == "v2" else _V3_OUT_OF_VOCAB
        text = "".join(c for c in unicodedata.normalize("NFD", lyrics) if unicodedata.category(c) != "Mn")
        return out_of_vocab.sub("", text.replace("\\", "\n"))


def _normalize(name: str) -> str:
    """v2 names: lowercase, every other character to '_', runs of '_' collapsed and trimmed."""
    text = "".join(c if c in _NAME_CHARS else "_" for c in name.lower())
    return re.sub(r"_+", "_", text).strip("_")


def _read_json(path: str | os.PathLike) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
