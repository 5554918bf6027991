"""The shell's key bindings, and the input wrapper that hands runs of typed characters on at once."""

from __future__ import annotations

import string

from prompt_toolkit.application import Application
from prompt_toolkit.filters import Condition, is_searching
from prompt_toolkit.key_binding import KeyBindings, KeyPress
from prompt_toolkit.keys import Keys


PASTED_KEYS = (Keys.ControlM, Keys.ControlJ, Keys.ControlI, Keys.BracketedPaste)  # Enter, Tab, a paste
WARM_KEYS = (Keys.ControlM, Keys.ControlJ, Keys.ControlH, Keys.ControlI, Keys.ControlC, Keys.ControlD, Keys.ControlE,
             Keys.Left, Keys.Right, Keys.Up, Keys.Down, Keys.Home, Keys.End, Keys.Delete, Keys.BracketedPaste)


def _text_follows(queue) -> bool:
    """The next key already read is text (a character, Enter, Tab): a paste is arriving. A
    control key such as Ctrl-C right behind an Enter says the Enter was typed."""
    if not queue:
        return False
    key = queue[0].key
    return key in PASTED_KEYS or (not isinstance(key, Keys) and len(key) == 1)


class TextRuns:
    """The app's input, with every run of two or more typed characters read at once (typing
    ahead, or a paste that arrives as keystrokes, as from tmux or over ssh) handed on as one
    bracketed paste: prompt_toolkit then matches key bindings once per run, not once per
    character (that matching was most of the cost of a 50 kB paste). Enter, Tab and other keys
    stay keys of their own, so a run never spans a line."""

    def __init__(self, inner):
        self._inner = inner

    def read_keys(self) -> list[KeyPress]:
        return runs_of_text(self._inner.read_keys())

    def flush_keys(self) -> list[KeyPress]:
        return runs_of_text(self._inner.flush_keys())

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


def runs_of_text(keys: list[KeyPress]) -> list[KeyPress]:
    out: list[KeyPress] = []
    run: list[str] = []
    for key in keys:
        if _is_character(key):
            run.append(key.data)
            continue
        _end_run(run, out)
        out.append(key)
    _end_run(run, out)
    return out


def _is_character(key: KeyPress) -> bool:
    return not isinstance(key.key, Keys) and len(key.key) == 1 and key.data == key.key and key.key.isprintable()


def _end_run(run: list[str], out: list[KeyPress]) -> None:
    if len(run) > 1:
        out.append(KeyPress(Keys.BracketedPaste, "".join(run)))
    elif run:
        out.append(KeyPress(run[0], run[0]))
    run.clear()


def warm_key_bindings(app: Application) -> None:
    """prompt_toolkit works out which bindings a key has the first time that key is pressed
    (1-3 ms a key, 30 ms for the session's first): done for the usual keys once the first
    frame is out, so no keystroke pays for it. Reads a private of prompt_toolkit's
    (key_processor._bindings, pinned in pyproject.toml; tests/test_prompt_toolkit_privates.py)."""
    bindings = getattr(app.key_processor, "_bindings", None)  # what the processor matches against
    if bindings is None:
        return
    for key in (*string.printable.strip(), " ", *WARM_KEYS):
        bindings.get_bindings_for_keys((key,))
        bindings.get_bindings_starting_with_keys((key,))


def shell_key_bindings(shell) -> KeyBindings:  # shell: the ShellApp (app.py imports this module)
    """Each key to the part of the shell whose job it is: typing, Enter, the stream."""
    kb = KeyBindings()
    typing, enter_keys, stream = shell.typing, shell.enter_keys, shell.stream
    streaming = Condition(lambda: stream.task is not None)
    taken = streaming | is_searching  # keys go to the stream (Ctrl-C) or to Ctrl-R's search, not to the line
    is_command = Condition(lambda: shell.buffer.text.startswith(":"))
    has_ghost = Condition(lambda: bool(typing.ghost_pieces) and shell.buffer.cursor_position == len(shell.buffer.text))

    # Typing saves nothing to the undo stack: each save copies the whole line, and hours of keys
    # would keep every copy.
    no_undo = {"save_before": lambda event: False}

    @kb.add("enter", filter=~taken, **no_undo)
    @kb.add("c-j", filter=~taken, **no_undo)
    def _enter(event) -> None:
        previous = event.previous_key_sequence
        if event.key_sequence[0].key == Keys.ControlJ and previous and previous[-1].key == Keys.ControlM:
            return  # CRLF: one newline
        enter_keys.enter(more_keys_pending=_text_follows(event.app.key_processor.input_queue))

    @kb.add(Keys.Any, filter=~taken, **no_undo)
    def _type(event) -> None:
        enter_keys.type_text(event.data * event.arg)

    @kb.add(Keys.BracketedPaste, filter=~taken, **no_undo)
    def _paste(event) -> None:
        enter_keys.paste(event.data)

    @kb.add("backspace", filter=~taken, **no_undo)
    def _backspace(event) -> None:
        if enter_keys.settle_enter():
            return
        event.current_buffer.delete_before_cursor(count=event.arg)

    @kb.add("escape", "enter", filter=~taken, **no_undo)
    def _new_line(event) -> None:
        """Alt-Enter: a new line without streaming."""
        if enter_keys.settle_enter():
            return
        shell.new_line()

    @kb.add("c-c", filter=~is_searching)
    def _interrupt(event) -> None:
        enter_keys.settle_enter()  # Enter then Ctrl-C: the stream starts, and stops
        if not stream.stop():
            typing.clear_line()

    @kb.add("c-d", filter=~taken)
    def _quit(event) -> None:
        if enter_keys.settle_enter():
            return
        if shell.buffer.text:
            shell.buffer.delete()
        else:
            event.app.exit()

    @kb.add("right", filter=has_ghost & ~taken)
    @kb.add("c-e", filter=has_ghost & ~taken)
    def _accept_all(event) -> None:
        if enter_keys.settle_enter():
            return
        typing.accept_ghost()

    @kb.add("tab", filter=is_command & ~taken)
    def _complete(event) -> None:
        buffer = shell.buffer
        if buffer.complete_state:
            buffer.complete_next()
        else:
            buffer.start_completion(select_first=False)

    @kb.add("tab", filter=~is_command & ~taken)
    def _accept_token(event) -> None:
        if enter_keys.pasting():  # a tab inside a paste is text
            enter_keys.type_text("\t")
        else:
            typing.accept_ghost(tokens=1)

    @kb.add("up", filter=~taken)
    def _history_back(event) -> None:
        if enter_keys.settle_enter():
            return
        typing.recall(backward=True)

    @kb.add("down", filter=~taken)
    def _history_forward(event) -> None:
        if enter_keys.settle_enter():
            return
        typing.recall(backward=False)

    return kb
