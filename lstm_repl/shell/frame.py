"""What the shell shows under the input line: the running stream's tail, a rule, the panel and
the status line, each cached on what it was made from (prompt_toolkit asks three times a frame)."""

from __future__ import annotations

from lstm_repl.shell.fragments import AnsiLines, one_line, wrapped
from lstm_repl.shell.settings_table import status_text
from lstm_repl.shell.views import render_panel
from lstm_repl.terminal_text import terminal_safe

STREAM_TAIL = 400  # characters of the stream shown live; the rest is printed when it ends


class Frame:
    def __init__(self, owner, message: str):
        """owner: the ShellApp (its shell, app, stream, hooks and panel writer)."""
        self.owner = owner
        self.message = message  # the status line's message, on its right
        self._panel_cache: tuple[tuple, list[str]] | None = None
        self._below_cache: tuple[tuple, list[str]] | None = None  # (what it was made from, lines_below_input)
        self._ansi: AnsiLines | None = None

    def forget_panel(self) -> None:
        self._panel_cache = None

    def _height(self) -> int:
        return max(1, self.owner.app.output.get_size().rows - 4)

    def panel_lines(self, width: int) -> list[str]:
        """The panel's lines as the terminal gets them: text with escape codes."""
        owner = self.owner
        session, settings = owner.shell.session, owner.shell.panel
        key = (session.version, id(session.model), width, self._height(), settings.layer,
               tuple(settings.units or ()), tuple(settings.labels.items()), owner.color)
        if self._panel_cache is None or self._panel_cache[0] != key:
            if self._ansi is None:
                self._ansi = AnsiLines(owner.panel_writer.escape, owner.color)
            lines = render_panel(session.snapshot, settings, width, self._height())
            self._panel_cache = (key, self._ansi.lines(lines, width))
        return self._panel_cache[1]

    def lines_below_input(self, width: int) -> list[str]:
        """Everything under the input line, as the terminal gets it, cut to the terminal's
        height (the panel gives way)."""
        room = max(2, self.owner.app.output.get_size().rows - 1)
        tail, status, panel = self.owner.stream.tail(), tuple(self.status_fragments()), self.panel_lines(width)
        key = (width, room, tail, status, id(panel))
        if self._below_cache is None or self._below_cache[0] != key:
            escape = self.owner.panel_writer.escape
            shown = terminal_safe(tail).replace("\n", " ⏎ ")
            stream = [escape("class:stream") + line for line in wrapped(shown, width)][-(room - 2):]
            lines = [*stream, escape("class:rule") + "─" * width, *panel[: room - 2 - len(stream)],
                     one_line(list(status), width, escape)]
            self._below_cache = (key, lines)
        return self._below_cache[1]

    def status_fragments(self):
        owner = self.owner
        s, name, stream = owner.shell.session.settings.sampling, owner.shell.session.loaded.name, owner.stream
        rate = f" · {stream.rate:,.0f} tok/s" if stream.task is not None else ""
        extra = "".join(f" · {text}" for text in owner.hooks.fire("status_extra") if text)
        left = f" {name}{extra} · {status_text(s)}{rate} "
        edits = owner.shell.session.interventions
        shown = [("class:intervention", f" {edits} ")] if edits else []
        return [("class:status", left), *shown, ("class:message", " " + self.message)]
