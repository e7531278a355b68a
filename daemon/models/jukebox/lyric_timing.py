"""When each word of the lyrics is sung, from the lyric alignment's rows as they become final.

Per top-level token (an alignment row), the lyric token the alignment head attends to most. A
column is a key's slot, and the prior's inputs are shifted by one (the key at lyric slot c holds
character c - 1), so attention on column c means character c - 1 (OpenAI's save_html shows the
lyrics shifted so) and column 0 none. Singing only moves forward: the position is the running
maximum of those characters. A word starts at the first row the position reaches its first
character and ends at the first row the position is past its last (at the piece's end for the word
still being sung); a word jumped over starts and ends on the same row. Words the position never
reaches are not sung in this piece and get no timing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .alignment import AlignedRows

_WORD = re.compile(r"\S+")  # the lyric separators are space, tab and newline


@dataclass(frozen=True)
class WordTiming:
    """Word `index` (from 0, in the lyrics) is sung over top-level tokens [start_row, end_row)."""

    index: int
    text: str
    start_row: int
    end_row: int


class LyricTimer:
    """Words of one sample timed row by row. `text` has one character per lyric token (the
    tokenizer's `lyric_text`); `total_rows` is the piece's top-level tokens."""

    def __init__(self, text: str, total_rows: int) -> None:
        self.words = [(match.start(), match.end() - 1, match.group()) for match in _WORD.finditer(text)]
        self.total_rows = total_rows
        self._position = -1  # the furthest character reached
        self._next_word = 0  # the first word not started
        self._sung: tuple[int, int] | None = None  # (word, start row) of the word being sung

    def rows(self, aligned: AlignedRows, item: int = 0) -> list[WordTiming]:
        """The words that ended within these rows (in order)."""
        values = aligned.values[item]
        if values.shape[1] == 0:
            return []
        best = values.argmax(axis=1)
        attended = values[np.arange(len(best)), best] > 0
        ended: list[WordTiming] = []
        for offset, (column, any_attention) in enumerate(zip(aligned.columns[best], attended)):
            if any_attention and column - 1 > self._position:
                self._move(int(column) - 1, aligned.start + offset, ended)
        return ended

    def finish(self) -> list[WordTiming]:
        """The word still being sung, ending with the piece."""
        if self._sung is None:
            return []
        word, start = self._sung
        self._sung = None
        return [WordTiming(word, self.words[word][2], start, self.total_rows)]

    def _move(self, position: int, row: int, ended: list[WordTiming]) -> None:
        self._position = position
        if self._sung is not None and position > self.words[self._sung[0]][1]:
            word, start = self._sung
            ended.append(WordTiming(word, self.words[word][2], start, row))
            self._sung = None
        while self._next_word < len(self.words) and self.words[self._next_word][0] <= position:
            word = self._next_word
            self._next_word += 1
            if position > self.words[word][1]:  # jumped over
                ended.append(WordTiming(word, self.words[word][2], row, row))
            else:
                self._sung = (word, row)
