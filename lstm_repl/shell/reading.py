"""How typed text reaches the model: the input line, pastes, and the transcript above it.

The model has read the transcript (the shell's history: text committed above the prompt) and
then the input line. Each sync tells the session only what changed at the end of that text,
once per batch of keys (a paste arriving as thousands of keystrokes is one fused read and one
redraw). The line never grows past LINE_LIMIT: older text, and every pasted line up to its
newline, moves into the transcript, so no keystroke costs more for a longer text.
"""

from __future__ import annotations

from typing import Callable

from prompt_toolkit.buffer import Buffer
from prompt_toolkit.document import Document

from lstm_repl.shell.shell_state import Shell
from lstm_repl.session.token_text import common_prefix_length

LINE_LIMIT = 2000  # characters on the input line at most
LINE_KEEP = 500  # of which stay on the line when it is cut (the rest goes to the transcript)


class LineReader:
    def __init__(self, shell: Shell, buffer: Buffer, print_above: Callable[[str], None]):
        self.shell, self.buffer, self.print_above = shell, buffer, print_above
        self.line_seen = ""  # what the session has read after the transcript's read part
        self.unread = ""  # the end of the transcript the session has not read yet
        self.unprinted = ""  # the end of the transcript not printed above the prompt yet

    def line(self) -> str:
        """What of the input line the model reads: nothing of a :command."""
        text = self.buffer.text
        return "" if text.startswith(":") else text

    def sync(self) -> None:
        """Make the session read what changed; print what was committed meanwhile."""
        session, tail = self.shell.session, self.unread + self.line()
        base = len(self.shell.history) - len(self.unread)
        if session.text_length() != base + len(self.line_seen):  # reset or loaded by a command
            session.set_text(self.shell.history[:base])
            self.line_seen = ""
        start = common_prefix_length(self.line_seen, tail)
        if start < len(tail) or start < len(self.line_seen):
            session.edit(base + start, tail[start:])
        self.line_seen, self.unread = self.line(), ""
        if self.unprinted:
            self.print_above(self.unprinted)
            self.unprinted = ""

    def commit(self, text: str) -> None:
        """Move text from the line's start into the transcript. What the session read of it
        stays read: only the rest is read at the next sync."""
        self.shell.history += text
        self.unprinted += text
        read = 0 if self.unread else common_prefix_length(self.line_seen, text)
        self.line_seen = self.line_seen[read:]
        self.unread += text[read:]

    def newline(self) -> None:
        """A newline within a paste: the line up to the cursor, and the newline, go to the transcript."""
        document = self.buffer.document
        self.commit(document.text_before_cursor + "\n")
        self._set_line(document.text_after_cursor, 0)

    def insert(self, data: str) -> None:
        """Type data at the cursor; a line grown too long (a command line too: nothing that long
        is a command) keeps only LINE_KEEP characters before the cursor, the rest goes above."""
        document = self.buffer.document
        if len(document.text) + len(data) <= LINE_LIMIT:
            self.buffer.insert_text(data)
            return
        before = document.text_before_cursor + data
        cut = max(0, len(before) - LINE_KEEP)
        self.commit(before[:cut])
        self._set_line(before[cut:] + document.text_after_cursor, len(before) - cut)

    def paste(self, text: str) -> None:
        """A bracketed paste: its lines go to the transcript, its last line onto the input line."""
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        for line in lines[:-1]:
            self.insert(line)
            self.newline()
        self.insert(lines[-1])

    def replace_line(self, text: str) -> None:
        """The input line becomes `text`, the cursor at its end."""
        self._set_line(text, len(text))

    def read_again(self) -> None:
        """The session has another model: the next sync reads the whole line again."""
        self.line_seen = ""

    def forget(self) -> None:
        """The transcript was cleared (with the session): nothing is left to read or print."""
        self.line_seen, self.unread, self.unprinted = "", "", ""

    def finished_stream(self, produced: str) -> None:
        """The model read the line and then wrote `produced`: both are transcript now."""
        self.shell.history += self.line() + produced
        self.line_seen = ""
        self.buffer.reset()

    def _set_line(self, text: str, cursor: int) -> None:
        self.buffer.set_document(Document(text, cursor), bypass_readonly=True)
