"""Scoring a model on a corpus through the fused path: loss, bits per character, perplexity."""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from lstm_repl.data.corpus import validation_batches
from lstm_repl.errors import CorpusError
from lstm_repl.model import LanguageModel
from lstm_repl.data.vocab import UNK_ID, WORD_PATTERN, Vocab


@torch.inference_mode()
def summed_loss(model: LanguageModel, ids: np.ndarray, batch_size: int, seq_len: int,
                max_tokens: int | None = None) -> tuple[float, int]:
    """Cross-entropy in nats summed over (the first max_tokens of) ids, read as `batch_size`
    contiguous streams with the state carried, and the number of tokens it covers."""
    total, count, state = 0.0, 0, None
    for x, y in validation_batches(ids, batch_size, seq_len, max_tokens):
        x_t = torch.from_numpy(x.astype(np.int64)).to(model.device)
        y_t = torch.from_numpy(y.astype(np.int64)).to(model.device)
        loss, state = model(x_t, state, targets=y_t, reduction="sum")
        total += float(loss)
        count += y.size
    return total, count


@torch.inference_mode()
def evaluate_text(model: LanguageModel, vocab: Vocab, text: str, batch_size: int = 32, seq_len: int = 256) -> dict:
    """Figures that compare across models and levels, as the field reports them: bits per
    character over the characters of the scored tokens, and perplexity per word (the text's nats
    over its words, the spaces between them not counted as words), for char and word models alike;
    word level also gives perplexity per token (spaces counted)."""
    token_ids, pieces = vocab.tokenize(text)
    ids = np.asarray(token_ids, dtype=np.int64)
    if len(ids) < 2:
        raise CorpusError("the corpus holds fewer than 2 tokens; give it more text")
    model.eval()
    start = time.perf_counter()
    total, count = summed_loss(model, ids, batch_size, seq_len)
    elapsed = time.perf_counter() - start
    characters, words = (scored_sum(values, batch_size, seq_len) for values in token_extent(vocab, text, pieces))
    unknown = int(np.count_nonzero(ids == UNK_ID))
    result = {
        "loss_nats": total / count,
        "tokens_scored": count,
        "characters_scored": characters,
        "words_scored": words,
        **comparable_figures(total, characters, words),
        "tokens": int(len(ids)),
        "unknown_tokens": unknown,
        "unknown_fraction": unknown / len(ids),
        "tokens_per_s": count / max(elapsed, 1e-9),
        "level": vocab.level,
    }
    if vocab.level == "word":
        result["perplexity"] = math.exp(min(total / count, 50.0))  # per token, spaces counted
        result["bits_per_character_is_lower_bound"] = unknown > 0  # an <unk> does not pay for its spelling
    return result


def comparable_figures(total_nats: float, characters: int, words: int) -> dict:
    """What compares across models and levels: bits per character, perplexity per word."""
    return {"bits_per_character": total_nats / math.log(2) / max(characters, 1),
            "perplexity_per_word": math.exp(min(total_nats / max(words, 1), 50.0))}


def token_extent(vocab: Vocab, text: str, pieces: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per token: how many characters it covers, and how many words start in it (a word: a token
    of the word tokenizer that is not whitespace)."""
    lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
    if vocab.level == "word":
        return lengths, np.fromiter((not p.isspace() for p in pieces), dtype=np.int64, count=len(pieces))
    starts = np.zeros(len(text) + 1, dtype=np.int64)
    for match in WORD_PATTERN.finditer(text):
        if not match.group().isspace():
            starts[match.start() + 1] = 1
    if vocab.level == "char":
        return lengths, starts[1:]
    covered = np.cumsum(starts)[np.cumsum(lengths)]  # word starts up to each token's end (bpe)
    return lengths, np.diff(covered, prepend=0)


def scored_sum(per_token: np.ndarray, batch_size: int, seq_len: int, max_tokens: int | None = None) -> int:
    """The sum over the tokens summed_loss scores (the targets of validation_batches)."""
    return int(sum(int(y.sum()) for _, y in validation_batches(per_token, batch_size, seq_len, max_tokens)))


def validation_extent(vocab: Vocab, ids: np.ndarray, pieces: list[str] | None = None) -> tuple[np.ndarray, ...]:
    """token_extent of held-out tokens: from their text as written when given, else as the
    vocabulary spells them (an <unk> then counts as its own 5 characters)."""
    pieces = pieces if pieces is not None else vocab.pieces(int(i) for i in ids)
    return token_extent(vocab, "".join(pieces), pieces)
