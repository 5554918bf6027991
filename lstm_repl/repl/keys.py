"""The shell's key bindings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prompt_toolkit.filters import Condition
from prompt_toolkit.key_binding import KeyBindings
from prompt_toolkit.keys import Keys

if TYPE_CHECKING:
    from lstm_repl.repl.app import ShellApp


def shell_key_bindings(shell: ShellApp) -> KeyBindings:
    kb = KeyBindings()
    streaming = Condition(lambda: shell.streaming is not None)
    is_command = Condition(lambda: shell.buffer.text.startswith(":"))
    has_ghost = Condition(lambda: bool(shell.ghost_pieces) and shell.buffer.cursor_position == len(shell.buffer.text))

    @kb.add("enter", filter=~streaming)
    @kb.add("c-j", filter=~streaming)
    def _enter(event) -> None:
        previous = event.previous_key_sequence
        if event.key_sequence[0].key == Keys.ControlJ and previous and previous[-1].key == Keys.ControlM:
            return  # CRLF: one newline
        shell.enter(more_keys_pending=bool(event.app.key_processor.input_queue))

    @kb.add(Keys.Any, filter=~streaming)
    def _type(event) -> None:
        shell.type_text(event.data * event.arg)

    @kb.add(Keys.BracketedPaste, filter=~streaming)
    def _paste(event) -> None:
        shell.paste(event.data)

    @kb.add("c-c")
    def _interrupt(event) -> None:
        if not shell.stop_stream():
            shell.clear_line()

    @kb.add("c-d", filter=~streaming)
    def _quit(event) -> None:
        if shell.buffer.text:
            shell.buffer.delete()
        else:
            event.app.exit()

    @kb.add("right", filter=has_ghost & ~streaming)
    @kb.add("c-e", filter=has_ghost & ~streaming)
    def _accept_all(event) -> None:
        shell.accept_ghost()

    @kb.add("tab", filter=is_command & ~streaming)
    def _complete(event) -> None:
        buffer = shell.buffer
        if buffer.complete_state:
            buffer.complete_next()
        else:
            buffer.start_completion(select_first=False)

    @kb.add("tab", filter=~is_command & ~streaming)
    def _accept_token(event) -> None:
        if shell.pasting():  # a tab inside a paste is text
            shell.type_text("\t")
        else:
            shell.accept_ghost(tokens=1)

    @kb.add("up", filter=~streaming)
    def _history_back(event) -> None:
        shell.recall(backward=True)

    @kb.add("down", filter=~streaming)
    def _history_forward(event) -> None:
        shell.recall(backward=False)

    return kb
