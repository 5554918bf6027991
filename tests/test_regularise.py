"""AWD-LSTM's regularisers: in training only, locked across time, whole tokens, DropConnect on W_hh."""

from __future__ import annotations

import pytest
import torch

from lstm_repl.cells import cell_kinds
from lstm_repl.config import ModelConfig
from lstm_repl.errors import ConfigError
from lstm_repl.model import LanguageModel
from lstm_repl.model.regularise import embedding_dropout, locked_dropout

AWD = dict(input_dropout=0.3, output_dropout=0.3, embed_dropout=0.2, weight_drop=0.5)


def _model(cell: str = "lstm", **settings) -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(ModelConfig(vocab_size=13, cell=cell, hidden=16, embed=8, layers=2, **settings))


def test_locked_dropout_keeps_one_mask_for_every_time_step():
    x = torch.ones(3, 7, 5)
    dropped = locked_dropout(x, 0.5, True)
    assert torch.equal(dropped, dropped[:, :1].expand_as(dropped))  # the same at every step
    assert set(dropped.unique().tolist()) <= {0.0, 2.0} and (dropped == 0).any()
    assert torch.equal(locked_dropout(x, 0.5, False), x)


def test_embedding_dropout_drops_a_token_everywhere_it_occurs():
    embedding = torch.nn.Embedding(50, 4)
    tokens = torch.arange(50).repeat(2, 3)
    torch.manual_seed(1)
    out = embedding_dropout(embedding, tokens, 0.5, True)
    zeroed = {int(t) for t, row in zip(tokens.flatten(), out.reshape(-1, 4)) if not row.any()}
    assert 0 < len(zeroed) < 50
    assert all(not out.reshape(-1, 4)[i].any() for i, t in enumerate(tokens.flatten()) if int(t) in zeroed)


@pytest.mark.parametrize("cell", cell_kinds())
def test_every_cell_kind_trains_with_them_and_evaluates_without_them(cell):
    plain, awd = _model(cell), _model(cell, **AWD)
    awd.load_state_dict(plain.state_dict())
    tokens = torch.randint(0, 13, (2, 9))
    plain.eval(), awd.eval()
    with torch.no_grad():
        assert torch.allclose(plain(tokens)[0], awd(tokens)[0])  # evaluation: no dropout of any kind
    awd.train()
    torch.manual_seed(3)
    loss, _ = awd(tokens[:, :-1], targets=tokens[:, 1:])
    loss.backward()
    assert awd.rnn.weight_hh_l0.grad is not None and awd.rnn.weight_hh_l0.grad.abs().sum() > 0
    with torch.no_grad():
        torch.manual_seed(4)
        first = awd(tokens)[0]
        torch.manual_seed(5)
        assert not torch.allclose(first, awd(tokens)[0])  # training: the masks differ per batch


def test_weight_drop_leaves_the_stored_matrices_untouched():
    model = _model(weight_drop=0.9).train()
    before = model.rnn.weight_hh_l0.detach().clone()
    model(torch.randint(0, 13, (2, 5)))
    assert torch.equal(model.rnn.weight_hh_l0, before) and isinstance(model.rnn.weight_hh_l0, torch.nn.Parameter)


@pytest.mark.parametrize("name", list(AWD))
def test_each_is_a_fraction_below_one(name):
    with pytest.raises(ConfigError, match=name.replace("_", " ")):
        _model(**{name: 1.0})
