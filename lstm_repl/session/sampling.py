"""Choosing the next token (temperature, repetition penalty, top-k, top-p, min-p) and generating
text as a stream that ends at a stop string."""

from __future__ import annotations

import hashlib
import math
from collections import deque
from typing import Iterable, Iterator

import torch

from lstm_repl.config import SampleConfig
from lstm_repl.model.interventions import Interventions
from lstm_repl.model import LanguageModel, State
from lstm_repl.model.packed import pick_token
from lstm_repl.model.precision import resolve_generation_precision
from lstm_repl.data.vocab import UNK_ID, Vocab


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0, min_p: float = 0.0) -> torch.Tensor:
    """Mask (to -inf) every token outside the top-k, outside the top-p nucleus, and less likely
    than min_p times the most likely token. logits: (V,)"""
    if min_p > 0:  # a ratio of probabilities: the same before or after the other filters renormalise
        probabilities = logits.softmax(-1)
        logits = logits.masked_fill(probabilities < min_p * probabilities.max(), float("-inf"))
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        # drop a token once the tokens before it already reach top_p; the first always stays (a
        # top_p below float32's smallest number, 1e-320, would otherwise compare as 0 and drop it)
        drop_sorted = (cumulative - sorted_logits.softmax(-1)) >= top_p
        drop_sorted[0] = False
        logits = logits.masked_fill(drop_sorted.scatter(0, order, drop_sorted), float("-inf"))
    return logits


def penalise(logits: torch.Tensor, recent: Iterable[int], penalty: float) -> torch.Tensor:
    """logits (V,) less log(penalty) at each token among `recent` (once, however often it came):
    under softmax, each of those tokens is exactly `penalty` times less likely relative to the
    others. (llama.cpp's --repeat-penalty divides a positive logit and multiplies a negative one,
    so its effect on a probability depends on the logit's scale; this one does not.)"""
    seen = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
    seen[torch.tensor(sorted(set(recent)), dtype=torch.long, device=logits.device)] = True
    return logits - math.log(penalty) * seen


class Sampler:
    """Chooses each next token of one generation: greedy at temperature 0, else a draw from
    softmax(logits / T), each token among the last `repeat_window` seen made `repeat_penalty`
    times less likely, kept to the top-k / top-p / min-p tokens; never <unk>.

    The rule is pick_token (model/packed.py), one uniform number a token, so that a packed model
    can apply it itself, token after token, given the uniforms (PackedLSTM.decode)."""

    def __init__(self, config: SampleConfig, generator: torch.Generator | None = None, block: int = 256):
        config.check()  # a NaN temperature would pick an index past the vocabulary
        self.config = config
        self.generator = generator  # made on the first draw: greedy choices never need one
        self.block = block
        self._uniforms: list[float] = []
        self._masks: dict[tuple[int, torch.device], torch.Tensor] = {}
        self.recent: deque[int] = deque(maxlen=config.repeat_window)  # the tokens the penalty looks back over

    @property
    def filters(self) -> bool:
        """True when a choice needs every logit shaped first (penalty, top-k, top-p, min-p)."""
        c = self.config
        return c.penalises or (c.temperature > 0 and bool(c.top_k or c.top_p < 1.0 or c.min_p > 0))

    def saw(self, ids: Iterable[int]) -> None:
        """Tokens read before the first choice (the prompt): the repetition penalty counts them."""
        if self.config.penalises:
            self.recent.extend(ids)

    def choose(self, logits: torch.Tensor) -> int:
        """One token id from logits (V,)."""
        shaped, temperature = self.shaped(logits)
        token = pick_token(shaped, self.mask(logits.shape[-1], logits.device), temperature, self.uniforms(1)[0])
        if self.config.penalises:
            self.recent.append(token)
        return token

    def shaped(self, logits: torch.Tensor) -> tuple[torch.Tensor, float]:
        """The logits (V,) a choice reads, and the temperature it reads them at: as given, or
        (when filters) with <unk> out, over the temperature, the recent tokens penalised, and
        what top-k, top-p and min-p drop at -inf."""
        config, mask = self.config, self.mask(logits.shape[-1], logits.device)
        temperature = config.temperature
        if not self.filters:
            return logits, temperature
        logits = (logits.float() + mask) / (temperature or 1.0)  # the nucleus is of what can be chosen
        if config.penalises and self.recent:
            logits = penalise(logits, self.recent, config.repeat_penalty)
        if temperature == 0:
            return logits, 0.0
        return filter_logits(logits, config.top_k, config.top_p, config.min_p), 1.0

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """(V,): the probability choose() picks each token with now (one-hot at temperature 0)."""
        shaped, temperature = self.shaped(logits)
        shaped = shaped.float() + self.mask(logits.shape[-1], logits.device)
        if temperature == 0:
            return torch.nn.functional.one_hot(shaped.argmax(), shaped.shape[-1]).float()
        return (shaped / temperature).softmax(-1)

    def uniforms(self, count: int) -> list[float]:
        """The next `count` numbers in [0, 1) of this generation's stream (zeros when greedy)."""
        if self.config.temperature == 0:
            return [0.0] * count
        if len(self._uniforms) < count:
            if self.generator is None:
                self.generator = make_generator(self.config.seed)
            fresh = torch.rand(max(count, self.block), generator=self.generator, dtype=torch.float64)
            self._uniforms += fresh.tolist()
        taken, self._uniforms = self._uniforms[:count], self._uniforms[count:]
        return taken

    def mask(self, vocab_size: int, device: torch.device) -> torch.Tensor:
        """(V,): 0, and -inf at <unk>, which is never chosen."""
        key = (vocab_size, device)
        if key not in self._masks:
            mask = torch.zeros(vocab_size, device=device)
            mask[UNK_ID] = float("-inf")
            self._masks[key] = mask
        return self._masks[key]


def choose(logits: torch.Tensor, config: SampleConfig, generator: torch.Generator | None,
           recent: Iterable[int] = ()) -> int:
    """One token id from logits (V,), for a caller that keeps its own generator (greedy needs
    none) and its own text (`recent`: the tokens before, for the repetition penalty)."""
    if generator is None and config.temperature > 0:
        raise ValueError("choose() draws from the caller's generator: pass one, or keep a Sampler")
    sampler = Sampler(config, generator, block=1)
    sampler.saw(recent)
    return sampler.choose(logits)


def derived_seed(seed: int, index: int) -> int:
    """The seed of sample `index` (0-based) of several drawn with `seed`: the first is `seed`
    itself, the others come from a hash of both, so no two samples share a stream."""
    if index == 0:
        return seed
    digest = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def make_generator(seed: int | None) -> torch.Generator:
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def read_prompt(
    model: LanguageModel, ids: list[int], state: State | None = None, edits: Interventions | None = None
) -> tuple[torch.Tensor | None, State | None]:
    """Run a prompt through the fused path in one call (with interventions, the gate path step by
    step): logits after its last token, and state."""
    if not ids:
        return None, state
    if edits:
        for token in ids:
            logits, state, _ = model.step(torch.tensor([token], device=model.device), state, edits=edits)
        return logits[0], state
    tokens = torch.tensor([ids], dtype=torch.long, device=model.device)
    top, state = model.read(tokens, state)  # every position's logits would be T x V: GBs at word level
    return model.decoder(top[0, -1:])[0], state


DECODE_CHUNK = 32  # tokens a packed model generates per call (5-10 ms at batch 1 here)


@torch.inference_mode()
def generate(
    model: LanguageModel,
    prompt_ids: list[int],
    config: SampleConfig,
    state: State | None = None,
    start_id: int = 0,
    edits: Interventions | None = None,
) -> Iterator[int]:
    """Yield token ids as they are chosen (the gate path, batch 1).

    The prompt is read by the fused path in one call. Without a prompt, generation starts from
    `start_id` (say, a newline) and the zero state. `edits`: interventions on every step.
    """
    model.eval()
    precision = resolve_generation_precision(config.precision, model.device, model.config.cell)
    logits, state = read_prompt(model, prompt_ids, state, edits)
    if logits is None:
        logits, state, _ = model.step(torch.tensor([start_id], device=model.device), state, precision, edits)
        logits = logits[0]
    sampler = Sampler(config)
    sampler.saw(prompt_ids[-config.repeat_window:] if prompt_ids else [start_id])
    yield from _continue(model, logits, state, sampler, config.length, precision, edits)


@torch.inference_mode()
def greedy_ids(model: LanguageModel, logits: torch.Tensor, state: State, count: int,
               edits: Interventions | None = None) -> list[int]:
    """The `count` most likely next token ids in turn after logits (V,) and state, as temperature 0
    would generate them (the shell's ghost text)."""
    return list(_continue(model, logits, state, Sampler(SampleConfig(temperature=0)), count, "fp32", edits))


@torch.inference_mode()
def continue_from(model: LanguageModel, logits: torch.Tensor, state: State, sampler: Sampler,
                  length: int) -> Iterator[int]:
    """`length` token ids chosen after logits (V,) and state, at the sampler's precision."""
    precision = resolve_generation_precision(sampler.config.precision, model.device, model.config.cell)
    yield from _continue(model, logits, state, sampler, length, precision)


def _continue(model: LanguageModel, logits: torch.Tensor, state: State, sampler: Sampler, length: int,
              precision: str, edits: Interventions | None = None) -> Iterator[int]:
    """`length` tokens chosen after logits (V,) and state. A kind with a packed form generates
    stretches of DECODE_CHUNK tokens without returning to Python, unless the penalty or
    top-k/top-p/min-p need every logit; otherwise a step per token."""
    if length <= 0:
        return
    token = sampler.choose(logits)
    yield token
    packed = None if edits else model.packed(precision)
    if packed is not None and not sampler.filters:
        yield from _decode(packed, token, state, sampler, length - 1, len(logits))
        return
    for _ in range(length - 1):
        step_logits, state, _ = model.step(torch.tensor([token], device=model.device), state, precision, edits)
        token = sampler.choose(step_logits[0])
        yield token


def _decode(packed, token: int, state: State, sampler: Sampler, length: int, vocab_size: int) -> Iterator[int]:
    """`length` more tokens after `token`, DECODE_CHUNK per call of the packed model."""
    state = list(state)
    mask = sampler.mask(vocab_size, state[0].device)
    while length > 0:
        uniforms = sampler.uniforms(min(DECODE_CHUNK, length))
        chosen, state = packed.decode(token, state, uniforms, mask, sampler.config.temperature)
        yield from chosen
        token, length = chosen[-1], length - len(chosen)


class StopText:
    """Watches generated text for the stop strings: the piece that completes one is cut just
    after it, and generation ends there (the stop string is written, nothing past it)."""

    def __init__(self, stops: tuple[str, ...]):
        self.stops = stops
        self.keep = max((len(s) for s in stops), default=1) - 1  # characters a stop may start before a piece
        self.tail = ""

    def cut(self, piece: str) -> tuple[str, bool]:
        """-> (what of `piece` to write, whether a stop string ended in it)."""
        if not self.stops:
            return piece, False
        text = self.tail + piece
        ends = [text.find(stop) + len(stop) for stop in self.stops if stop in text]
        if ends:
            return piece[: min(ends) - len(self.tail)], True
        self.tail = text[len(text) - self.keep :] if self.keep else ""
        return piece, False


def generate_text(model: LanguageModel, vocab: Vocab, prompt: str, config: SampleConfig,
                  edits: Interventions | None = None) -> Iterator[str]:
    """Yield the text of each generated token; stop early once the output reaches a stop string
    (config.stops), cut just after it."""
    stops = StopText(config.stops)
    for token in generate(model, vocab.encode(prompt), config, start_id=vocab.primer_id(), edits=edits):
        piece, stopped = stops.cut(vocab.token_text(token))
        yield piece
        if stopped:
            return
