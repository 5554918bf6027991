"""Typing: the model reads each batch of keys once, after it, and the frame is drawn; the ghost
text (several model steps) is worked out just after that frame, and kept in part while what is
typed is what it showed."""

from __future__ import annotations

from prompt_toolkit.auto_suggest import Suggestion
from prompt_toolkit.buffer import Buffer

from lstm_repl.session.ghost import ghost_pieces


class Typing:
    def __init__(self, owner):
        """owner: the ShellApp (its shell, app, buffer, reader, stream, timing, frame)."""
        self.owner = owner
        self.ghost_pieces: list[str] = []
        self.sync_scheduled = False
        self.ghost_scheduled = False

    @property
    def pending(self) -> bool:
        """A batch of keys is yet to be read, or its ghost text to be worked out."""
        return self.sync_scheduled or self.ghost_scheduled

    def on_text_changed(self, _buffer: Buffer) -> None:
        """Keys come in batches (typing ahead, a paste): the model reads each batch once, after it."""
        owner = self.owner
        if owner.stream.task is not None or self.sync_scheduled:
            return
        if not owner.app.is_running:
            self.sync()
            return
        self.sync_scheduled = True
        owner.app.loop.call_soon(self.sync)

    def sync(self) -> None:
        """The model reads what changed and the frame is drawn; the ghost text comes just after,
        so it never delays a key's frame, and not at all while more keys are arriving."""
        owner = self.owner
        self.sync_scheduled = False
        if owner.collector is not None:
            owner.collector.key_seen()
        if owner.stream.task is None:
            seen, ghost = owner.reader.line_seen, self.ghost_pieces
            owner.reader.sync()
            self._keep_what_is_left_of_the_ghost(seen, ghost)
            owner.app.invalidate()
            self._schedule_ghost()

    def _keep_what_is_left_of_the_ghost(self, seen: str, ghost: list[str]) -> None:
        """Typing what the ghost showed keeps the rest of it on screen until the new one is ready."""
        typed, left = self.owner.reader.line(), "".join(ghost)
        if not (typed.startswith(seen) and len(typed) > len(seen) and (seen + left).startswith(typed)):
            self._show([])
            return
        consumed, pieces = len(typed) - len(seen), []
        for piece in ghost:
            if consumed >= len(piece):
                consumed -= len(piece)
                continue
            pieces.append(piece[consumed:])
            consumed = 0
        self._show(pieces)

    def _show(self, pieces: list[str]) -> None:
        self.ghost_pieces = pieces
        self.owner.buffer.suggestion = Suggestion("".join(pieces)) if pieces else None

    def _schedule_ghost(self) -> None:
        app = self.owner.app
        if not app.is_running:
            self.refresh_ghost()
        elif not self.ghost_scheduled:
            self.ghost_scheduled = True
            # a timer, not call_soon: prompt_toolkit draws when the loop has nothing ready to run,
            # so the key's frame goes out first and the ghost's work comes after it
            app.loop.call_later(self.owner.timing.ghost_delay_s, self._ghost_when_idle)

    def _ghost_when_idle(self) -> None:
        self.ghost_scheduled = False
        if self.sync_scheduled or self.owner.stream.task is not None:
            return  # more keys came: their sync asks again
        self.refresh_ghost()
        self.owner.app.invalidate()

    def refresh_ghost(self) -> None:
        """Ghost text: set here, since every change to the buffer clears the suggestion."""
        buffer = self.owner.buffer
        if buffer.text.startswith(":") or buffer.cursor_position != len(buffer.text):
            self._show([])
            return
        self._show(ghost_pieces(self.owner.shell.session))

    def accept_ghost(self, tokens: int | None = None) -> None:
        pieces = self.ghost_pieces if tokens is None else self.ghost_pieces[:tokens]
        if pieces:
            self.owner.buffer.insert_text("".join(pieces))

    def recall(self, backward: bool) -> None:
        """The previous (or next) line of the history; its ghost text follows as for typing."""
        if backward:
            self.owner.buffer.history_backward()
        else:
            self.owner.buffer.history_forward()

    def clear_line(self) -> None:
        """Drop the line being typed, as a shell's Ctrl-C does; the model unreads it."""
        self.owner.buffer.reset()  # reset() fires no change event
        self.sync()
        self.owner.frame.message = "line cleared · Ctrl-D or :quit leaves"
