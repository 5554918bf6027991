"""Dynamic evaluation (Krause et al. 2018, arXiv 1709.07432): the model learns from the text it
reads. The text is cut into segments of `segment` tokens; each segment is scored first, with the
weights as they are, and then the weights take one step on that segment's gradient:

    theta <- theta - lr * grad / (rms + eps)  +  decay * decay_rate * (theta_trained - theta)

`rms` is the root mean square of each weight's gradient and `decay_rate` = rms / (the mean of each
tensor's mean rms), clipped at 1/decay (the paper's "RMS-normalised update with a global prior").
The paper measures rms on the training data, which a checkpoint does not carry; here it is measured
on text the model samples itself (a fixed seed): the mean squared gradient under the model's own
distribution is the diagonal of its Fisher information, which is what the training-data figure
estimates for a model that fits its data. eps is taken relative to each tensor's mean rms, so a
weight whose gradient the samples never moved (a rare character's embedding row) does not take a
step of size grad / eps.

Everything here is a deterministic function of the tokens read (fp32, the fused path, batch 1):
the shell relies on it to replay a learning session to the same screens. Used by `eval --dynamic`,
`bench dynamic` and the shell's `:learn`.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch

from lstm_repl.config import DynamicConfig
from lstm_repl.errors import CorpusError
from lstm_repl.model import LanguageModel, State
from lstm_repl.data.vocab import UNK_ID, Vocab
from lstm_repl.training.evaluation import comparable_figures, token_extent

STAT_STREAMS = 16  # streams the model samples for its gradient statistics
STAT_SEGMENTS = 8  # segments of each, one gradient per segment (over all the streams)
STAT_SEED = 0


@dataclass
class GradientStats:
    """Per weight tensor: the rms of its gradient, and its decay rate before the clip at 1/decay
    (see the module's docstring). They depend on the segment length, not on lr or decay."""

    rms: list[torch.Tensor]
    decay_rate: list[torch.Tensor]


def _detached(state: State) -> State:
    """The state as a plain tensor outside autograd and inference mode (a session's states are
    inference tensors, which backward cannot save)."""
    return tuple(t.detach().clone() for t in state)


def gradient_stats(model: LanguageModel, config: DynamicConfig) -> GradientStats:
    """The rms of each weight's gradient over segments the model samples itself (fixed seed)."""
    params = list(model.parameters())
    generator = torch.Generator(device="cpu").manual_seed(STAT_SEED)
    tokens = _sampled(model, STAT_STREAMS, STAT_SEGMENTS * config.segment + 1, generator)
    squares = [torch.zeros_like(p) for p in params]
    state = None
    with torch.enable_grad():
        for k in range(STAT_SEGMENTS):
            x = tokens[:, k * config.segment:(k + 1) * config.segment]
            y = tokens[:, k * config.segment + 1:(k + 1) * config.segment + 1]
            model.zero_grad(set_to_none=True)
            loss, state = model(x, state, targets=y)
            loss.backward()
            state = _detached(state)
            for square, p in zip(squares, params):
                if p.grad is not None:
                    square += p.grad * p.grad
    model.zero_grad(set_to_none=True)
    rms = [(square / STAT_SEGMENTS).sqrt() for square in squares]
    overall = sum(float(r.mean()) for r in rms) / len(rms)
    return GradientStats(rms, [r / max(overall, 1e-30) for r in rms])


@torch.no_grad()
def _sampled(model: LanguageModel, streams: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """(streams, length) token ids the model writes at temperature 1 from its primer token, never <unk>."""
    model.eval()
    token = torch.zeros(streams, 1, dtype=torch.long, device=model.device)
    out, state = [token], None
    for _ in range(length - 1):
        scores, state = model(token, state)
        probs = scores[:, -1].float().softmax(-1) if model.config.softmax == "full" else scores[:, -1].float().exp()
        probs[:, UNK_ID] = 0
        token = torch.multinomial(probs.cpu(), 1, generator=generator).to(model.device)
        out.append(token)
    return torch.cat(out, 1)


class Adapter:
    """A model whose weights follow the text it reads, a segment at a time. It owns the model
    given (pass a copy to keep the original). The weights decay toward `anchor` (by default the
    weights the model has now: the trained ones)."""

    def __init__(self, model: LanguageModel, config: DynamicConfig, stats: GradientStats | None = None,
                 state: State | None = None, anchor: list[torch.Tensor] | None = None):
        self.model, self.config = model.eval(), config
        self.params = list(model.parameters())
        self.trained = anchor if anchor is not None else [p.detach().clone() for p in self.params]
        self.frozen = config.lr == 0  # scores only: the weights stay the trained ones
        self.stats = stats or (None if self.frozen else gradient_stats(model, config))
        self.state: State = _detached(state if state is not None else model.zero_state())
        self.segments = 0  # learned so far
        self._scale = [config.epsilon * float(r.mean()) for r in self.stats.rms] if self.stats else []
        ceiling = 1 / config.decay if config.decay else math.inf  # decay * rate <= 1: no overshoot past trained
        self._rates = [r.clamp(max=ceiling) for r in self.stats.decay_rate] if self.stats else []

    def learn(self, ids: list[int] | np.ndarray) -> torch.Tensor:
        """Score a segment (ids: its tokens and the one after it), then learn from it.
        -> the log-probability (nats) of each of ids[1:], as the weights before the step gave it."""
        x = torch.as_tensor(np.asarray(ids[:-1], dtype=np.int64), device=self.model.device)[None]
        y = torch.as_tensor(np.asarray(ids[1:], dtype=np.int64), device=self.model.device)[None]
        with torch.set_grad_enabled(not self.frozen):
            self.model.zero_grad(set_to_none=True)
            hidden, state = self.model.read(x, self.state)
            logp = self._log_probs(hidden[0], y[0])
            if not self.frozen:
                (-logp.mean()).backward()
        self.state = _detached(state)
        if not self.frozen:
            self._step()
        self.segments += 1
        return logp.detach()

    def _log_probs(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(T,) log-probabilities of the targets (the scores' softmax is the distribution, for
        either output layer)."""
        return self.model.decoder(hidden).float().log_softmax(-1).gather(1, targets[:, None])[:, 0]

    @torch.no_grad()
    def _step(self) -> None:
        lr, decay = self.config.lr, self.config.decay
        for p, start, rms, rate, eps in zip(self.params, self.trained, self.stats.rms, self._rates, self._scale):
            if p.grad is not None:
                p.addcdiv_(p.grad, rms + eps, value=-lr)
            if decay:
                p.add_(rate * (start - p), alpha=decay)
        self.model.zero_grad(set_to_none=True)

    # ------------------------------------------------------------ where it stands

    def distance(self) -> float:
        """How far the weights have moved: ||theta - theta_trained|| / ||theta_trained||."""
        moved = sum(float((p.detach() - t).pow(2).sum()) for p, t in zip(self.params, self.trained))
        size = sum(float(t.pow(2).sum()) for t in self.trained)
        return math.sqrt(moved / max(size, 1e-30))

    def weights(self) -> list[torch.Tensor]:
        return [p.detach().clone() for p in self.params]

    def mark(self) -> tuple[int, list[torch.Tensor], State]:
        """What restore() takes back to: segments learned, weights, state."""
        return self.segments, self.weights(), _detached(self.state)

    @torch.no_grad()
    def restore(self, mark: tuple[int, list[torch.Tensor], State]) -> None:
        segments, weights, state = mark
        for p, w in zip(self.params, weights):
            p.copy_(w)
        self.segments, self.state = segments, _detached(state)


# ---------------------------------------------------------------- eval --dynamic


def text_ids(vocab: Vocab, text: str) -> tuple[np.ndarray, list[str]]:
    pieces = vocab.split(text)
    ids = np.fromiter((vocab.ids.get(p, UNK_ID) for p in pieces), dtype=np.int64, count=len(pieces))
    if len(ids) < 2:
        raise CorpusError("the corpus holds fewer than 2 tokens; give it more text")
    return ids, pieces


def dynamic_evaluate(model: LanguageModel, vocab: Vocab, text: str, config: DynamicConfig,
                     stats: GradientStats | None = None, learn: bool = True) -> dict:
    """Bits per character (and perplexity per word) of `text` read once, start to end, each
    segment scored before the model learns from it. learn=False scores the same tokens with the
    same segments and the trained weights throughout: what the learning gains is the difference.
    The model's weights are the trained ones again afterwards."""
    ids, pieces = text_ids(vocab, text)
    adapter = Adapter(model, config if learn else _frozen(config), stats)  # from the zero state, as eval reads
    nats = np.zeros(len(ids) - 1)
    try:
        for start in range(0, len(ids) - 1, config.segment):
            chunk = ids[start:start + config.segment + 1]
            nats[start:start + len(chunk) - 1] = -adapter.learn(chunk).cpu().numpy()
        moved = adapter.distance()
    finally:
        adapter.restore((0, adapter.trained, adapter.state))
    characters, words = (int(values[1:].sum()) for values in token_extent(vocab, text, pieces))
    total = float(nats.sum())
    return {"loss_nats": total / len(nats), "tokens_scored": len(nats), "characters_scored": characters,
            "words_scored": words, **comparable_figures(total, characters, words), "weights_moved": moved,
            "dynamic": {"lr": config.lr, "decay": config.decay, "segment": config.segment, "learn": learn}}


def _frozen(config: DynamicConfig) -> DynamicConfig:
    return DynamicConfig(lr=0.0, decay=config.decay, segment=config.segment, epsilon=config.epsilon)


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
