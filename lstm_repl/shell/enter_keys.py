"""Telling a typed Enter (it streams, or runs a :command) from a newline inside a paste that
arrives as keystrokes (tmux, ssh): keys right behind an Enter say it was pasted; an Enter that
ends a batch waits the paste gap for the next part of a paste before it counts as typed."""

from __future__ import annotations

import asyncio
import unicodedata


class EnterKeys:
    def __init__(self, owner):
        """owner: the ShellApp (its app, reader, timing, stream, and submit())."""
        self.owner = owner
        self._lone_enter: asyncio.TimerHandle | None = None  # an Enter that may yet turn out to be pasted

    @property
    def waiting(self) -> bool:
        """An Enter waits to be decided typed or pasted."""
        return self._lone_enter is not None

    def enter(self, more_keys_pending: bool) -> None:
        if self.owner.stream.task is not None:
            return
        if self._lone_enter is not None:  # the Enter before this one had this one right behind it
            self._newline_pasted()
        if more_keys_pending:
            self._newline_pasted()
            return
        self._lone_enter = self.owner.app.loop.call_later(self.owner.timing.paste_gap_s, self._enter_typed)

    def settle_enter(self) -> bool:
        """A key that is not text came while an Enter waited: that Enter was typed, and acts
        first. -> whether it did (the key's own action may then no longer apply)."""
        if self._lone_enter is None:
            return False
        self._cancel()
        self.owner.submit()
        return True

    def pasting(self) -> bool:
        """Keys are arriving as a paste: more right behind this one, or an Enter just before it."""
        return self._lone_enter is not None or bool(self.owner.app.key_processor.input_queue)

    def type_text(self, data: str) -> None:
        """Characters typed or pasted at the cursor; after an Enter that ended the last batch,
        they show that Enter was a pasted newline."""
        if len(data) == 1 and unicodedata.category(data) == "Cc" and data != "\t" and not self.pasting():
            return  # a control key pressed alone (a lone Esc, Ctrl-@) that nothing is bound to: no text
        if self._lone_enter is not None:
            self._newline_pasted()
        self.owner.reader.insert(data)

    def paste(self, text: str) -> None:
        """A bracketed paste: read as typed text, newlines included."""
        if self._lone_enter is not None:
            self._newline_pasted()
        self.owner.reader.paste(text)

    def _enter_typed(self) -> None:
        self._lone_enter = None
        self.owner.submit()

    def _newline_pasted(self) -> None:
        """A newline inside a paste: the line so far becomes text above, whatever it starts with
        (a pasted line that starts with ":" is text, not a command)."""
        self._cancel()
        self.owner.reader.newline()

    def _cancel(self) -> None:
        if self._lone_enter is not None:
            self._lone_enter.cancel()
            self._lone_enter = None
