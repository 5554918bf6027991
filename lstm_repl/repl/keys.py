"""The shell's key bindings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prompt_toolkit.filters import Condition
from prompt_toolkit.key_binding import KeyBindings
from prompt_toolkit.keys import Keys

if TYPE_CHECKING:
    from lstm_repl.repl.app import ShellApp


PASTED_KEYS = (Keys.ControlM, Keys.ControlJ, Keys.ControlI, Keys.BracketedPaste)  # Enter, Tab, a paste


def _text_follows(queue) -> bool:
    """The next key already read is text (a character, Enter, Tab): a paste is arriving. A
    control key such as Ctrl-C right behind an Enter says the Enter was typed."""
    if not queue:
        return False
    key = queue[0].key
    return key in PASTED_KEYS or (not isinstance(key, Keys) and len(key) == 1)


def shell_key_bindings(shell: ShellApp) -> KeyBindings:
    kb = KeyBindings()
    streaming = Condition(lambda: shell.streaming is not None)
    is_command = Condition(lambda: shell.buffer.text.startswith(":"))
    has_ghost = Condition(lambda: bool(shell.ghost_pieces) and shell.buffer.cursor_position == len(shell.buffer.text))

    # Typing saves nothing to the undo stack: each save copies the whole line, and hours of keys
    # would keep every copy.
    no_undo = {"save_before": lambda event: False}

    @kb.add("enter", filter=~streaming, **no_undo)
    @kb.add("c-j", filter=~streaming, **no_undo)
    def _enter(event) -> None:
        previous = event.previous_key_sequence
        if event.key_sequence[0].key == Keys.ControlJ and previous and previous[-1].key == Keys.ControlM:
            return  # CRLF: one newline
        shell.enter(more_keys_pending=_text_follows(event.app.key_processor.input_queue))

    @kb.add(Keys.Any, filter=~streaming, **no_undo)
    def _type(event) -> None:
        shell.type_text(event.data * event.arg)

    @kb.add(Keys.BracketedPaste, filter=~streaming, **no_undo)
    def _paste(event) -> None:
        shell.paste(event.data)

    @kb.add("backspace", filter=~streaming, **no_undo)
    def _backspace(event) -> None:
        if shell.settle_enter():
            return
        event.current_buffer.delete_before_cursor(count=event.arg)

    @kb.add("c-c")
    def _interrupt(event) -> None:
        shell.settle_enter()  # Enter then Ctrl-C: the stream starts, and stops
        if not shell.stop_stream():
            shell.clear_line()

    @kb.add("c-d", filter=~streaming)
    def _quit(event) -> None:
        if shell.settle_enter():
            return
        if shell.buffer.text:
            shell.buffer.delete()
        else:
            event.app.exit()

    @kb.add("right", filter=has_ghost & ~streaming)
    @kb.add("c-e", filter=has_ghost & ~streaming)
    def _accept_all(event) -> None:
        if shell.settle_enter():
            return
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
        if shell.settle_enter():
            return
        shell.recall(backward=True)

    @kb.add("down", filter=~streaming)
    def _history_forward(event) -> None:
        if shell.settle_enter():
            return
        shell.recall(backward=False)

    return kb
