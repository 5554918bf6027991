"""The shell learns as it reads (:learn, repl --learn, :export), on the tiny real model, through
the headless driver: repeated text grows less surprising, :learn reset is exact, the weights and
screens depend on the text alone, and the adapted weights export as a checkpoint."""

from __future__ import annotations

import asyncio
import math

import pytest
import torch
from prompt_toolkit.data_structures import Size
from prompt_toolkit.output.vt100 import Vt100_Output

from lstm_repl.model import checkpoint
from lstm_repl.session.session import Settings
from lstm_repl.shell.headless import PASTE_GAP_S, Headless as Driver, drive, run_headless, shell_on, slow_steps
from lstm_repl.shell.playback import replay, vt100_output
from lstm_repl.shell.recording import read_recording
from pyte_terminal import Terminal

BACKSPACE = "\x7f"
WORD = "famishcitizen"  # characters it knows, in a word it never saw
LINE = f"Speak {WORD}, all. "


def weights(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


async def commit(d: Driver, text: str) -> None:
    """Type text and press Enter (one streamed token): the line goes to the transcript, so a
    :command after it (which clears the line first) does not unread it."""
    if d.session.settings.sampling.length != 1:
        await d.command(":len 1")
    await d.type(text)
    d.app.message = ""
    d.send("\r")
    await d.until(lambda: d.app.message.startswith("streamed 1 ") and d.settled(), "the line committed")


def word_bits(session, occurrence: int) -> float:
    """Surprisal in bits of the WORD's characters at its occurrence-th appearance (1-based)."""
    text, start = session.text, -1
    for _ in range(occurrence):
        start = text.index(WORD, start + 1)
    return sum(-math.log2(session.read.probs[i]) for i in range(start, start + len(WORD)))


def typed_five_times(loaded, learn: bool) -> float:
    async def script(d: Driver):
        if learn:
            await d.command(":learn on")
        for _ in range(5):
            await d.type(LINE)
        return d

    driver = drive(loaded, script)
    return word_bits(driver.session, 5)


def test_a_repeated_rare_word_grows_less_surprising_with_learning_on(loaded, tiny_run):
    off = typed_five_times(loaded, learn=False)
    on = typed_five_times(checkpoint.load(tiny_run), learn=True)
    assert on < off - 2, (on, off)


def test_the_status_line_says_it_learns_and_how_far_the_weights_moved(loaded):
    async def script(d: Driver):
        await d.command(":learn on")
        await commit(d, LINE * 3)
        status = d.panel_lines()[-1]
        assert "learning Δ" in status and "Δ0.00%" not in status
        message = await d.command(":learn off")
        assert message.startswith("learning off · the weights stay") and "adapted Δ" in d.panel_lines()[-1]

    drive(loaded, script)


def test_learn_reset_returns_exactly_to_the_trained_weights(loaded):
    trained = weights(loaded.model)

    async def script(d: Driver):
        await d.command(":learn on")
        await commit(d, LINE * 3)
        assert not all(torch.equal(a, b) for a, b in zip(trained, weights(d.session.model)))
        assert (await d.command(":learn reset")).startswith("back to the trained weights")
        assert all(torch.equal(a, b) for a, b in zip(trained, weights(d.session.model)))
        assert "Δ" in d.panel_lines()[-1]  # still learning, from here on, having moved 0
        await d.command(":learn off")
        assert all(torch.equal(a, b) for a, b in zip(trained, weights(d.session.model)))

    drive(loaded, script)


def test_streaming_and_the_bars_use_the_adapted_model(loaded, tiny_run):
    """After learning, the panel's gates are the adapted model's: the session's weights are it."""
    async def script(d: Driver):
        await d.command(":learn on")
        await d.type(LINE * 3)
        learner = d.app.learning.learner
        assert all(torch.equal(a, b) for a, b in zip(weights(learner.model), weights(d.session.model)))
        await d.command(":len 20")
        d.send("\r")
        await d.until(lambda: d.app.message.startswith("streamed 20"), "a stream")
        await d.settle()
        return d.session.text

    first = drive(loaded, script).session.text
    again = drive(checkpoint.load(tiny_run), script).session.text
    assert first == again  # the stream sampled from the same adapted weights


def screens_and_weights(loaded, keys: list[str], delay: float = 0.0):
    """Type each batch of keys into a learning shell; -> the settled panels and the final weights."""
    async def script(d: Driver):
        if delay:
            slow_steps(d.app, delay)
        await d.command(":learn on")
        panels = []
        for batch in keys:
            d.send(batch)
            await d.settle()
            panels.append(d.panel_lines())
        return panels

    panels = []

    async def collect(d: Driver):
        panels.extend(await script(d))

    driver = drive(loaded, collect)
    return panels, weights(driver.session.model), driver.session.text


KEYS = [LINE, LINE * 2, BACKSPACE * 30, WORD * 2, LINE[:7], BACKSPACE * 4, LINE * 2]


def test_the_weights_and_screens_depend_on_the_keys_not_the_machines_speed(loaded, tiny_run):
    fast = screens_and_weights(loaded, KEYS)
    slow = screens_and_weights(checkpoint.load(tiny_run), KEYS, delay=0.002)
    assert fast[2] == slow[2]
    assert fast[0] == slow[0]
    assert all(torch.equal(a, b) for a, b in zip(fast[1], slow[1]))


def test_deleting_learned_text_rolls_the_weights_back(loaded, tiny_run):
    """Type, delete back into learned text, type the same again: the weights are those of typing
    it once, bit for bit."""
    _, once, text = screens_and_weights(loaded, [LINE * 4])
    _, twice, again = screens_and_weights(checkpoint.load(tiny_run), [LINE * 4, BACKSPACE * 90, (LINE * 4)[-90:]])
    assert text == again
    assert all(torch.equal(a, b) for a, b in zip(once, twice))


def test_export_writes_a_checkpoint_whose_card_says_what_it_adapted_on(loaded, tmp_path):
    dest = tmp_path / "adapted"

    async def script(d: Driver):
        await d.command(":learn on")
        await commit(d, LINE * 3)
        message = await d.command(f":export {dest}")
        assert message.startswith("exported the adapted weights"), message
        return weights(d.session.model)

    adapted: list = []

    async def run(d: Driver):
        adapted.extend(await script(d))

    drive(loaded, run)
    exported = checkpoint.load(dest)
    assert all(torch.equal(a, b) for a, b in zip(adapted, weights(exported.model)))
    info = exported.info["adapted"]
    assert info["spans"][0]["start"].startswith("Speak famish") and info["spans"][0]["characters"] > 50
    card = (dest / "README.md").read_text("utf-8")
    assert "What it adapted on" in card and info["spans"][0]["sha256"] in card and "lr " in card


def test_export_never_writes_into_a_folder_of_other_files(loaded, tmp_path):
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "notes.txt").write_text("keep me", "utf-8")

    async def script(d: Driver):
        await d.command(":learn on")
        await commit(d, LINE * 2)
        message = await d.command(f":export {dest}")
        assert message.startswith("⚠") and "export did not write" in message, message

    drive(loaded, script)
    assert sorted(p.name for p in dest.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("line", [":learn sideways", ":export"])
def test_bad_learn_commands_are_one_line_warnings(loaded, line):
    async def script(d: Driver):
        message = await d.command(line)
        assert message.startswith("⚠") and "\n" not in message

    drive(loaded, script)


def test_a_recorded_learning_session_replays_to_the_same_screens(tiny_run, tmp_path):
    """Recorded with learning on from the start (as repl --learn --record does), then keys that
    learn, stream from the adapted model, delete learned text and reset: the replay, on the same
    kind of terminal, draws the same screens before each key and ends with the same weights."""
    path = tmp_path / "learning.jsonl"
    screens: list[list[str]] = []
    terminal = Terminal()
    output = Vt100_Output(terminal, lambda: Size(rows=30, columns=100), term="xterm")

    async def script(d: Driver):
        async def send(keys: str, done) -> None:
            await asyncio.sleep(3 * PASTE_GAP_S)  # keys that came on their own, as a person types
            await d.settle()
            screens.append(terminal.rows())
            d.send(keys)
            await d.until(done, repr(keys))

        await d.command(":learn on")
        await d.command(f":record {path}")
        for keys in [":len 15\r", LINE * 2, "\r", LINE, BACKSPACE * 25, WORD, ":learn reset\r", LINE * 2,
                     ":learn off\r"]:
            await send(keys, d.settled)
        return weights(d.session.model), d.app.model_text()

    recorded_weights, text = run_headless(shell_on(checkpoint.load(tiny_run), Settings()), script, output, color=True)
    recording = read_recording(path)
    assert recording.header.start.learning
    replayed, terminal, previous = [], Terminal(), [0.0]

    def before_send(event) -> None:
        gap, previous[0] = event.t - previous[0], event.t
        if event.streamed is None and gap >= PASTE_GAP_S:
            replayed.append(terminal.rows())

    app = replay(recording, checkpoint.load(tiny_run), lambda clock: vt100_output(terminal, 100, 30), speed=20,
                 before_send=before_send)
    assert app.model_text() == text
    for number, (want, got) in enumerate(zip(screens, replayed)):
        differing = "\n".join(f"{a!r}\n{b!r}" for a, b in zip(want, got) if a != b)
        assert got == want, f"screen {number} differs:\n{differing}"
    assert len(replayed) == len(screens) == 9
    assert any("learning Δ" in row and "Δ0.00%" not in row for screen in screens for row in screen)  # it learned
    assert all(torch.equal(a, b) for a, b in zip(recorded_weights, weights(app.shell.session.model)))
