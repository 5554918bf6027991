"""The plan: settings follow the passes the budget buys on this machine, not the clock."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from click.testing import CliRunner

from lstm_repl.cli.main import cli
from lstm_repl.config import ModelConfig, TrainConfig
from lstm_repl.model import LanguageModel
from lstm_repl.model.precision import Probe, decide_training_precision
from lstm_repl.training.plan import (
    CHAR_REGIMES,
    MIN_PASSES,
    PLANNED,
    SIZES,
    WORD_REGIMES,
    Plan,
    make_plan,
    passes_for,
    regime_for,
)
from lstm_repl.training.step_rate import tokens_per_second

ALL = frozenset(PLANNED)


def _plan(rate: float, train_tokens: int = 1_000_000, planned=ALL, level: str = "char", **bounds):
    """rate: tokens a second of 2 x 512 at batch 32; a narrower model is faster by the square of the width."""
    config = TrainConfig(precision="fp32", level=level, **({"time_limit_s": 600.0} | bounds))

    def rate_at(batch: int, args: dict) -> tuple[str, float]:
        return "fp32", rate * batch / 32 * (512 / args["hidden"]) ** 2

    return make_plan(config, {"layers": 2, "hidden": 512, "embed": 64}, planned, train_tokens, rate_at)


def test_passes_are_the_budget_over_the_corpus_by_whichever_bound_comes_first():
    config = TrainConfig(time_limit_s=600, max_steps=1000, seq_len=100)
    assert passes_for(config, 32, 5000.0, 1_000_000) == pytest.approx(3.0)  # time: 600 s x 5,000 tok/s
    assert passes_for(config, 32, 50_000.0, 1_000_000) == pytest.approx(3.2)  # steps: 1,000 x 32 x 100
    assert passes_for(TrainConfig(epochs=7), 32, 1.0, 10) == 7


@pytest.mark.parametrize("regimes", [CHAR_REGIMES, WORD_REGIMES])
def test_more_passes_never_mean_less_regularisation(regimes):
    def strength(regime) -> float:
        return sum(v for k, v in regime.settings.items() if k != "batch_size")

    assert [strength(r) for r in regimes] == sorted(strength(r) for r in regimes)
    assert regimes[-1].up_to_passes == float("inf")


def test_a_faster_machine_sees_more_passes_in_the_same_minutes_and_regularises_more():
    slow_config, _, slow = _plan(rate=5_000)  # 3 passes of 1M tokens in 10 minutes
    fast_config, fast_args, fast = _plan(rate=15_000)  # three times as fast: 9 passes and more
    assert slow.passes < 4 < fast.passes
    assert slow.regime == regime_for("char", slow.passes).name != fast.regime
    assert fast_args["dropout"] > slow.chosen["dropout"]
    assert fast_config.batch_size == fast.chosen["batch_size"]


def test_a_smaller_corpus_is_more_passes_at_the_same_speed():
    _, _, whole = _plan(rate=5_000, train_tokens=1_000_000)
    _, _, tenth = _plan(rate=5_000, train_tokens=100_000)
    assert tenth.passes >= 10 * whole.passes  # (more still where its plan takes a larger batch)
    assert tenth.chosen["dropout"] > whole.chosen["dropout"]


def test_only_what_the_user_did_not_give_is_planned():
    config, args, plan = _plan(rate=50_000, planned=ALL - {"dropout", "batch_size"})
    assert "dropout" not in plan.chosen and "batch_size" not in plan.chosen
    assert "dropout" not in args and config.batch_size == TrainConfig().batch_size
    assert plan.chosen["weight_drop"] > 0  # tens of passes: AWD-LSTM's weight drop


def test_the_plan_is_one_line_naming_passes_speed_and_what_it_set():
    _, _, plan = _plan(rate=5_000)
    line = plan.line()
    assert "\n" not in line and line.startswith("plan: about 3")
    assert "10m at" in line and "tokens/s measured here" in line and "dropout" in line


def test_a_budget_too_short_to_read_the_corpus_a_few_times_trains_a_narrower_model():
    _, args, plan = _plan(rate=1_000)  # 2 x 512: 0.6 passes; 2 x 256: 2.4; 2 x 128: 9.6
    assert args["hidden"] == plan.chosen["hidden"] == 128
    assert plan.passes >= MIN_PASSES
    assert "2 x 256 would make 2.4 passes" in plan.line()
    _, args, plan = _plan(rate=5_000)  # 2 x 512 reads it 3 times: wide enough
    assert args["hidden"] == 512 and plan.wider == ""


def test_the_widest_size_is_taken_when_even_it_reads_the_corpus_often():
    _, args, plan = _plan(rate=50_000)
    assert args["hidden"] == max(hidden for hidden, _ in SIZES["char"])
    _, args, _ = _plan(rate=50_000, level="word")
    assert (args["hidden"], args["embed"]) == SIZES["word"][0]


def test_a_width_the_user_gave_is_kept_however_short_the_budget():
    _, args, plan = _plan(rate=1_000, planned=ALL - {"hidden", "embed"})
    assert args["hidden"] == 512 and "hidden" not in plan.chosen and plan.passes < 1


def test_a_narrower_model_reads_the_regimes_at_passes_scaled_by_its_width():
    _, args, plan = _plan(rate=1_000)  # 2 x 128 at 9.6 passes: as 2.4 passes of the 512-wide default
    assert args["hidden"] == 128 and plan.regime_passes == pytest.approx(plan.passes * 128 / 512, rel=0.01)
    assert plan.regime == regime_for("char", 9.6 * 128 / 512).name != regime_for("char", 9.6).name
    assert "read as 2.4 at its width" in plan.line()
    _, _, wide = _plan(rate=5_000)
    assert wide.regime_passes is None and "read as" not in wide.line()
    config, _, doubled = _plan(rate=20_000)  # 12 passes at the default width: batch 64, and more passes at it
    assert config.batch_size == 64 and doubled.regime_passes is None and "read as" not in doubled.line()


def test_tied_weights_keep_the_embedding_as_wide_as_the_hidden_state():
    config = TrainConfig(precision="fp32", time_limit_s=600.0, level="word")
    rate_at = lambda batch, args: ("fp32", 1_000.0 * (512 / args["hidden"]) ** 2)  # noqa: E731
    _, args, _ = make_plan(config, {"hidden": 256, "embed": 256, "tie_weights": True}, ALL, 100_000, rate_at)
    assert args["embed"] == args["hidden"]
    _, args, _ = make_plan(config, {"hidden": 256, "embed": 200, "tie_weights": True}, ALL - {"embed"}, 100_000,
                           rate_at)
    assert args["hidden"] == 256


def test_the_precision_is_the_one_timed_on_the_width_taken():
    config = TrainConfig(precision="auto", time_limit_s=600.0)

    def rate_at(batch: int, args: dict) -> tuple[str, float]:  # bf16 pays only on the wide model
        return ("bf16", 1_000.0) if args["hidden"] == 512 else ("fp32", 20_000.0)

    _, args, plan = make_plan(config, {"hidden": 512, "embed": 64}, ALL, 1_000_000, rate_at)
    assert args["hidden"] == 256 and plan.precision == "fp32"


def test_steps_bound_passes_without_the_clock():
    _, _, plan = _plan(rate=1.0, time_limit_s=None, max_steps=3000, train_tokens=1_000_000)
    assert plan.passes == pytest.approx(3000 * 32 * 100 / 1_000_000, rel=0.01)
    assert "batch_size" not in plan.chosen  # a step stays the work asked for


def test_auto_precision_decides_on_the_model_being_trained_not_the_stand_in():
    """The issue's case: the stand-in measured bf16 at 1.13x (under the 1.2x bar) where the real
    model runs 1.81x faster; timed on the model, auto takes bf16."""
    stand_in = lambda device, precision, cell: Probe(True, speedup=1.13)  # noqa: E731
    cpu = torch.device("cpu")
    assert decide_training_precision("auto", cpu, "lstm", None, stand_in)[0] == "fp32"
    measured = {"fp32": 14_146.0, "bf16": 25_660.0, "fp16": 13_000.0}
    chosen, rates = decide_training_precision("auto", cpu, "lstm", lambda ps: {p: measured[p] for p in ps}, stand_in)
    assert chosen == "bf16" and rates["bf16"] == 25_660.0
    slower = {"fp32": 14_146.0, "bf16": 15_000.0, "fp16": 13_000.0}
    assert decide_training_precision("auto", cpu, "lstm", lambda ps: {p: slower[p] for p in ps}, stand_in)[0] == "fp32"


def test_timing_a_model_leaves_its_weights_and_the_random_stream_alone():
    model = LanguageModel(ModelConfig(vocab_size=11, hidden=8, embed=4))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(5)
    expected = torch.rand(1)
    torch.manual_seed(5)
    ticks = iter(range(100))
    rates = tokens_per_second(model, 2, 5, ("fp32",), clock=lambda: float(next(ticks)))
    assert torch.rand(1) == expected
    assert rates == {"fp32": 10.0}  # 2 x 5 tokens in one tick of the injected clock
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_train_plans_what_it_is_not_given_says_so_and_records_it(tiny_corpus, tmp_path):
    args = ["train", str(tiny_corpus), "--hidden", "16", "--embed", "8", "--seq-len", "16", "--precision", "fp32",
            "--eval-interval", "20"]
    many = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "many"), "--epochs", "40"])
    assert many.exit_code == 0, many.output
    plan_lines = [line for line in many.output.splitlines() if line.startswith("plan:")]
    assert len(plan_lines) == 1 and plan_lines[0].startswith("plan: about 40 passes over 4,988 training tokens")
    saved = json.loads((tmp_path / "many" / "best" / "config.json").read_text())
    plan = saved["plan"]
    assert plan["passes"] == 40 and plan["regime_passes"] == 40 * 16 / 512  # a 16-wide model reads them by width
    assert plan["regime"] == regime_for("char", plan["regime_passes"]).name
    assert saved["model"]["dropout"] == plan["chosen"]["dropout"]
    assert saved["training"]["batch_size"] == plan["chosen"]["batch_size"]

    given = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "given"), "--max-steps", "60",
                                     "--dropout", "0", "--weight-drop", "0", "--batch-size", "4"])
    assert given.exit_code == 0, given.output
    saved = json.loads((tmp_path / "given" / "best" / "config.json").read_text())
    assert saved["model"]["dropout"] == saved["model"]["weight_drop"] == 0 and saved["training"]["batch_size"] == 4
    assert {"dropout", "weight_drop", "batch_size"}.isdisjoint(saved["plan"]["chosen"])


def test_train_plans_a_narrower_model_for_a_short_run_and_records_why(tiny_corpus, tmp_path):
    """Bounded by steps, so the passes (3 x 2 x 16 of 4,988 tokens) do not depend on this machine's speed."""
    result = CliRunner().invoke(cli, ["train", str(tiny_corpus), "--seq-len", "16", "--batch-size", "2",
                                      "--max-steps", "3", "--precision", "fp32", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "run" / "best" / "config.json").read_text())
    narrowest, _ = SIZES["char"][-1]
    assert saved["model"]["hidden"] == saved["plan"]["chosen"]["hidden"] == narrowest
    assert saved["plan"]["wider"].startswith("2 x ") and "would make 0.0" in saved["plan"]["wider"]


def test_the_plan_line_says_how_much_faster_the_precision_auto_took_ran():
    plan = Plan(3.0, 21_426.0, "bf16", 1_000_000, "a few passes", {}, "10m",
                precision_rates={"fp32": 12_700.0, "bf16": 21_426.0})
    assert "21,426 tokens/s measured here, bf16, 1.69x fp32's speed)" in plan.line()
    slower = replace(plan, precision="fp32", tokens_per_s=12_700.0,
                     precision_rates={"fp32": 12_700.0, "bf16": 13_000.0})
    assert "12,700 tokens/s measured here, fp32: bf16 ran 1.02x as fast)" in slower.line()
    assert "measured here, fp32)" in replace(slower, precision_rates={}).line()


def test_auto_records_the_rate_of_the_model_it_trains_in_each_precision_that_runs(tiny_corpus, tmp_path):
    result = CliRunner().invoke(cli, ["train", str(tiny_corpus), "--hidden", "16", "--embed", "8", "--seq-len", "16",
                                      "--max-steps", "3", "--precision", "auto", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "run" / "best" / "config.json").read_text())
    plan = saved["plan"]
    assert "fp32" in plan["precision_rates"] and saved["precision"] == plan["precision"]
    assert plan["precision_rates"][plan["precision"]] == plan["tokens_per_s"]
