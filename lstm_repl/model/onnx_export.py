"""The model as an ONNX file (`lstm-repl export --onnx`): the gate path's one-token step, the
state the shell carries from token to token an input and an output, so any ONNX runtime can
generate or score with it:

    inputs:  token (batch,) int64;  h (layers, batch, hidden) float32;  c (same; LSTM kinds only)
    outputs: logits (batch, vocab): the next-token scores, whose softmax is the distribution
             (log-probabilities with the adaptive softmax);  h_out, c_out: the state after the token

Start from zeros for h and c (or run the primer token, as the shell does). The graph is traced
from the cell kind's own step equations (model/lstm.py, peephole.py, ...), the same weights; a
test holds onnxruntime's logits to PyTorch's within 1e-4 over 300 steps for every kind.
Needs the onnx package (the `onnx` extra): torch's TorchScript-based exporter writes through it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from lstm_repl.errors import ConfigError
from lstm_repl.model.lm import LanguageModel

ONNX_FILE = "model.onnx"
OPSET = 17  # onnxruntime 1.18 and later run it
MISSING_EXTRA = ("export --onnx needs the onnx package: pip install 'lstm-repl[onnx]' (scripts/setup "
                 "installs it)")


def require_onnx() -> None:
    """ConfigError, in one line naming the extra, when the onnx package is not installed."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ConfigError(MISSING_EXTRA) from None


class OneStep(nn.Module):
    """token, *state -> logits, *new state: LanguageModel.step on the plain gate path."""

    def __init__(self, model: LanguageModel):
        super().__init__()
        self.model = model

    def forward(self, token: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        top, new_state, _ = self.model.rnn.step(self.model.embedding(token), tuple(state))
        return (self.model.decoder(top), *new_state)


def write_onnx(model: LanguageModel, path: Path) -> None:
    """Write the one-token step of `model` (eval mode, on the CPU) to `path`."""
    require_onnx()
    model = model.eval()
    names = list(model.rnn.state_names)  # ["h", "c"] or ["h"]
    outputs = [f"{name}_out" for name in names]
    batch = {"token": {0: "batch"}, "logits": {0: "batch"}, **{name: {1: "batch"} for name in names + outputs}}
    example = (torch.zeros(1, dtype=torch.long, device=model.device), *model.zero_state(1))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python values; the graph is checked by the test
        torch.onnx.export(OneStep(model), example, str(path), dynamo=False, input_names=["token", *names],
                          output_names=["logits", *outputs], dynamic_axes=batch, opset_version=OPSET)
