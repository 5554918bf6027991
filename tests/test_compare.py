"""lstm-repl compare: kinds trained alike, their sizes counted honestly, one table."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from lstm_repl.model import checkpoint
from lstm_repl.cli.main import cli
from lstm_repl.training.kinds_compared import compare, matched_hidden, parameter_counts, parse_cells, plan
from lstm_repl.cells import cell_kinds
from lstm_repl.config import ModelConfig, TrainConfig
from lstm_repl.errors import ConfigError
from lstm_repl.model import LanguageModel, count_parameters
from lstm_repl.training.trainer import LOG_FILE

TINY = ["--hidden", "16", "--embed", "8", "--batch-size", "4", "--seq-len", "16", "--precision", "fp32",
        "--eval-interval", "10", "--lr", "0.01"]


def _rows(output: str) -> dict[str, list[str]]:
    """Table rows by cell name: the cells of each '│ cell │ ... │' line."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if cells and cells[0] in cell_kinds():
            rows[cells[0]] = cells
    return rows


def assert_a_speed_of_the_run(tokens_per_s: float, log: list[dict]) -> None:
    """tokens_per_s is a training speed the run's log shows: within the range of its windows' speeds after the
    first (which carries one-off costs), each worked out from the window's tokens and seconds alone."""
    lows, highs = [], []
    for before, after in zip(log, log[1:]):
        tokens = after["tokens_seen"] - before["tokens_seen"]
        seconds = after["elapsed_s"] - before["elapsed_s"]  # both times rounded to the millisecond
        lows.append(tokens / (seconds + 0.001))
        highs.append(tokens / (seconds - 0.001) if seconds > 0.001 else math.inf)
    assert lows, "the run logged a single window"
    assert min(lows) / 1.5 <= tokens_per_s <= max(highs) * 1.5, (tokens_per_s, log)


def test_recurrent_parameters_against_the_plain_rnn_at_equal_hidden_size():
    plans = {p.cell: p for p in plan(list(cell_kinds()), 30, 16, 8, 2, match_params=False)}
    assert plans["lstm"].ratio == pytest.approx(4.0) and plans["gru"].ratio == pytest.approx(3.0)
    assert plans["coupled"].ratio == pytest.approx(3.0) and plans["rnn"].ratio == 1.0
    rnn_recurrent = plans["rnn"].recurrent
    assert plans["peephole"].recurrent == 4 * rnn_recurrent + 3 * 16 * 2  # plus the diagonal peepholes
    for p in plans.values():  # the counts are those of the real model
        real = count_parameters(LanguageModel(ModelConfig(vocab_size=30, cell=p.cell, hidden=16, embed=8, layers=2)))
        assert (p.parameters, p.recurrent) == (real["total"], real["rnn"])


def test_match_params_solves_each_kinds_hidden_size_for_the_lstms_total():
    target = parameter_counts("lstm", 65, 512, 128, 2)["total"]
    for cell in cell_kinds():
        hidden = matched_hidden(cell, target, 65, 128, 2)
        total = parameter_counts(cell, 65, hidden, 128, 2)["total"]
        step = parameter_counts(cell, 65, hidden + 1, 128, 2)["total"] - total
        assert abs(total - target) <= step, cell
    plans = {p.cell: p for p in plan(["lstm", "gru", "rnn"], 65, 512, 128, 2, match_params=True)}
    assert plans["lstm"].hidden == 512 and plans["rnn"].hidden > plans["gru"].hidden > 512
    assert plans["rnn"].ratio_matched == 1.0 and plans["lstm"].ratio == pytest.approx(4.0)


def test_cells_are_checked():
    assert parse_cells("lstm, gru") == ["lstm", "gru"]
    for bad in ("lstm,lstn", "", "gru,gru"):
        with pytest.raises(ConfigError):
            parse_cells(bad)
    result = CliRunner().invoke(cli, ["compare", "x.txt", "--cells", "lstm,transformer"])
    assert result.exit_code != 0 and "transformer" in result.output


def test_compare_prints_one_table_and_keeps_loadable_runs(tiny_corpus, tmp_path):
    out = tmp_path / "cmp"
    result = CliRunner().invoke(cli, ["compare", str(tiny_corpus), "--cells", "lstm,gru,rnn,peephole,coupled",
                                      "--steps", "20", "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    rows = _rows(result.output)
    assert list(rows) == ["lstm", "gru", "rnn", "peephole", "coupled"]
    header = next(line for line in result.output.splitlines() if "hidden" in line and "×rnn" in line)
    assert [h.strip() for h in header.strip().strip("┃").split("┃")] == [
        "cell", "hidden", "params", "recurrent", "×rnn", "steps", "tok/s", "val bpc", "val ppl/word"]
    ratio = {cell: float(cells[4]) for cell, cells in rows.items()}
    assert ratio["lstm"] == pytest.approx(4.0) and ratio["gru"] == pytest.approx(3.0) and ratio["rnn"] == 1.0
    assert ratio["coupled"] == pytest.approx(3.0) and 4.0 < ratio["peephole"] < 4.2
    for cell, cells in rows.items():
        assert cells[1] == "16" and cells[5] == "20"
        assert 0 < float(cells[7]) < 8
        log = [json.loads(line) for line in (out / cell / LOG_FILE).read_text("utf-8").splitlines()]
        assert log[-1]["step"] == 20 and log[-1]["tokens_seen"] == 20 * 4 * 16
        assert_a_speed_of_the_run(float(cells[6].replace(",", "")), log)
        loaded = checkpoint.load(out / cell)  # what `lstm-repl repl DIR/<cell>` opens
        assert loaded.model.config.cell == cell and loaded.info["metrics"]["step"] == 20
    assert f"lstm-repl repl {out}/lstm" in result.output
    again = CliRunner().invoke(cli, ["compare", str(tiny_corpus), "--cells", "rnn,gru", "--steps", "2",
                                     "--out", str(out), *TINY])
    assert again.exit_code != 0 and "--overwrite" in again.output and "rnn, gru" in again.output


def test_compare_with_matched_parameters_shows_both_ratios(tiny_corpus):
    result = CliRunner().invoke(cli, ["compare", str(tiny_corpus), "--cells", "lstm,rnn", "--steps", "4",
                                      "--match-params", *TINY])
    assert result.exit_code == 0, result.output
    rows = _rows(result.output)
    assert rows["lstm"][1] == "16" and int(rows["rnn"][1]) > 16
    assert float(rows["lstm"][4]) == pytest.approx(4.0) and float(rows["rnn"][5]) == 1.0
    assert 0.8 < float(rows["lstm"][5]) < 1.5  # recurrent parts near each other once the totals match


def test_compare_reports_through_events_and_keeps_nothing_without_out(tiny_corpus):
    events = []
    config = TrainConfig(batch_size=4, seq_len=16, max_steps=3, eval_interval=3, log_interval=1, precision="fp32")
    args = {"layers": 1, "hidden": 8, "embed": 8, "dropout": 0.0, "tie_weights": False}
    results = compare([str(tiny_corpus)], ["coupled", "rnn"], config, args, report=events.append)
    kinds = [e.kind for e in events if e.kind != "train"]
    assert kinds == ["plan", "start", "result", "start", "result", "end"]
    assert {e.train_event.kind for e in events if e.kind == "train"} >= {"start", "log", "eval", "end"}
    assert [r.cell for r in results] == ["coupled", "rnn"] and all(r.out_dir is None for r in results)
    for r in results:
        log = [e.train_event.record for e in events if e.kind == "train" and e.cell == r.cell
               and e.train_event.kind == "log"]
        assert r.steps == 3 and [record["tokens_seen"] for record in log] == [64, 128, 192]
        assert r.train_time_s == pytest.approx(log[-1]["elapsed_s"], abs=0.001)
        assert_a_speed_of_the_run(r.tokens_per_s, log)
