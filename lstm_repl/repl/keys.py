"""The shell's key bindings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prompt_toolkit.filters import Condition
from prompt_toolkit.key_binding import KeyBindings

if TYPE_CHECKING:
    from lstm_repl.repl.app import ShellApp


def shell_key_bindings(shell: ShellApp) -> KeyBindings:
    kb = KeyBindings()
    streaming = Condition(lambda: shell.streaming is not None)
    is_command = Condition(lambda: shell.buffer.text.startswith(":"))
    has_ghost = Condition(lambda: bool(shell.ghost_pieces) and shell.buffer.cursor_position == len(shell.buffer.text))

    @kb.add("enter", filter=~streaming)
    def _submit(event) -> None:
        shell.submit()

    @kb.add("c-c")
    def _interrupt(event) -> None:
        if not shell.stop_stream():
            shell.buffer.reset()  # like a shell: Ctrl-C drops the line being typed
            shell._on_text_changed(shell.buffer)  # reset() fires no change event: unread the line
            shell.message = "line cleared · Ctrl-D or :quit leaves"

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
        shell.accept_ghost(tokens=1)

    @kb.add("up", filter=~streaming)
    def _history_back(event) -> None:
        shell.buffer.history_backward()
        shell._refresh_ghost()  # the text changed before the cursor moved to its end: no ghost was set

    @kb.add("down", filter=~streaming)
    def _history_forward(event) -> None:
        shell.buffer.history_forward()
        shell._refresh_ghost()

    return kb
