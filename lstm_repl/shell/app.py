"""The interactive shell: a prompt_toolkit application around a Session.

Layout, top to bottom: the input line (with ghost text), the streaming line, a rule, the live
panel (predictions, gate bars, unit strip), and the status line. prompt_toolkit draws the input
line; everything under it is written by repl/panel_control.py (prompt_toolkit's per-cell drawing
of it cost more than the model's step). Finished text is printed above
the application, so the terminal's scrollback is the transcript.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import string
import time
import unicodedata
from collections import deque
from pathlib import Path
from typing import Callable

from prompt_toolkit.application import Application, run_in_terminal
from prompt_toolkit.auto_suggest import Suggestion
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.completion import WordCompleter
from prompt_toolkit.filters import Condition
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory, InMemoryHistory
from prompt_toolkit.keys import Keys
from prompt_toolkit.layout import HSplit, Layout, Window
from prompt_toolkit.layout.controls import BufferControl
from prompt_toolkit.layout.processors import AppendAutoSuggestion, BeforeInput
from prompt_toolkit.renderer import print_formatted_text

from lstm_repl.session.ghost import ghost_pieces
from lstm_repl.shell.collector import Collector, paced_collection
from lstm_repl.shell.colon_commands import COMMAND_NAMES, CommandError, Shell, run_command
from lstm_repl.shell.fragments import AnsiLines, one_line, wrapped
from lstm_repl.shell.keys import TextRuns, shell_key_bindings
from lstm_repl.shell.recording import RecordingError
from lstm_repl.shell.panel_control import PanelArea, PanelWriter
from lstm_repl.shell.reading import LineReader
from lstm_repl.shell.recorder import KeyTap, SessionRecorder
from lstm_repl.shell.style import shell_style, uses_colour
from lstm_repl.shell.views import render_panel
from lstm_repl.terminal_text import terminal_safe

FRAME_S = 1 / 30  # redraws are capped at about 30 a second
STREAM_TAIL = 400  # characters of the stream shown live; the rest is printed when it ends
PASTE_GAP_S = 0.03  # an Enter that ends a batch of keys is typed if nothing follows within this
GHOST_DELAY_S = 0.002  # the ghost text is worked out this long after the frame that shows a key
WARM_KEYS = (Keys.ControlM, Keys.ControlJ, Keys.ControlH, Keys.ControlI, Keys.ControlC, Keys.ControlD, Keys.ControlE,
             Keys.Left, Keys.Right, Keys.Up, Keys.Down, Keys.Home, Keys.End, Keys.Delete, Keys.BracketedPaste)
HISTORY_LINE_MAX = 4000  # longer lines are not kept in the history file


def history_path() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "lstm-repl" / "history"


def _file_history() -> FileHistory | InMemoryHistory:
    path = history_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        return FileHistory(str(path))
    except OSError:  # an unwritable home must not stop the shell
        return InMemoryHistory()


class ShellApp:
    def __init__(self, shell: Shell, color: bool | None = None):
        self.shell = shell
        self.color = uses_colour(color)
        self.style = shell_style(self.color)
        kind = shell.session.model.rnn.name
        self.message = f"type to watch the {kind} read · Enter streams · → ghost · :help"
        self.streaming: asyncio.Task | None = None
        self.stream_pieces: list[str] = []  # what the running stream wrote so far
        self.stream_rate = 0.0
        self.ghost_pieces: list[str] = []
        self._panel_cache: tuple[tuple, list[str]] | None = None
        self._below_cache: tuple[tuple, list[str]] | None = None  # (what it was made from, lines_below_input)
        self.buffer = Buffer(
            multiline=False,
            history=_file_history(),
            completer=WordCompleter(COMMAND_NAMES, sentence=True),
            complete_while_typing=False,
            on_text_changed=self._on_text_changed,
            read_only=Condition(lambda: self.streaming is not None),
        )
        self.reader = LineReader(shell, self.buffer, self.print_above)
        self._sync_scheduled = False
        self._ghost_scheduled = False
        self._lone_enter: asyncio.TimerHandle | None = None  # an Enter that may yet turn out to be pasted
        self.collector: Collector | None = None  # while running
        self.recorder: SessionRecorder | None = None  # while :record runs
        self.key_listeners: list[Callable[[str], None]] = []  # told of every batch of keys read
        # A replay sets these: the stream waits at a token count until the replayer lets it go on,
        # and the rates shown are the recorded ones (a measurement of the recording machine).
        self.stream_hold: Callable[[int], bool] | None = None
        self.recorded_rates: deque[float] | None = None
        self.status_extra: Callable[[], str] | None = None  # e.g. --follow's "step 1200 · val 1.95 bpc"
        shell.record = self.record
        self.app = self._build()
        self.app.input = TextRuns(KeyTap(self.app.input, self._keys_read))
        self.refresh_ghost()

    # ------------------------------------------------------------ layout

    def _build(self) -> Application:
        input_window = Window(
            BufferControl(self.buffer, input_processors=[BeforeInput(self._prompt), AppendAutoSuggestion()]),
            height=1,
            wrap_lines=False,
        )
        below = PanelArea(self.lines_below_input)
        body = HSplit([input_window, below])
        app = Application(
            layout=Layout(body, focused_element=input_window),
            key_bindings=shell_key_bindings(self),
            style=self.style,
            full_screen=False,
            erase_when_done=True,
            min_redraw_interval=FRAME_S,
            refresh_interval=0.5,  # a safety net: under load, a redraw was once seen lost at start-up
            mouse_support=False,
        )
        self.panel_writer = PanelWriter(app, below)
        self.panel_ansi = AnsiLines(self.panel_writer.escape, self.color)
        return app

    def _prompt(self):
        return [("class:prompt", "> ")] if not self.buffer.text.startswith(":") else [("class:prompt.command", "  ")]

    def _width(self) -> int:
        return max(1, self.app.output.get_size().columns)

    def _height(self) -> int:
        return max(1, self.app.output.get_size().rows - 4)

    def panel_lines(self, width: int) -> list[str]:
        """The panel's lines as the terminal gets them: text with escape codes."""
        session = self.shell.session
        settings = self.shell.panel
        key = (session.version, id(session.model), width, self._height(), settings.layer,
               tuple(settings.units or ()), tuple(settings.labels.items()), self.color)
        if self._panel_cache is None or self._panel_cache[0] != key:
            lines = render_panel(session.snapshot, settings, width, self._height())
            self._panel_cache = (key, self.panel_ansi.lines(lines, width))
        return self._panel_cache[1]

    def lines_below_input(self, width: int) -> list[str]:
        """Everything under the input line, as the terminal gets it: the running stream's tail,
        a rule, the panel and the status line, cut to the terminal's height (the panel gives way)."""
        room = max(2, self.app.output.get_size().rows - 1)
        tail, status, panel = self.stream_tail(), tuple(self._status_fragments()), self.panel_lines(width)
        key = (width, room, tail, status, id(panel))  # prompt_toolkit asks three times a frame
        if self._below_cache is None or self._below_cache[0] != key:
            escape = self.panel_writer.escape
            shown = terminal_safe(tail).replace("\n", " ⏎ ")
            stream = [escape("class:stream") + line for line in wrapped(shown, width)][-(room - 2):]
            lines = [*stream, escape("class:rule") + "─" * width, *panel[: room - 2 - len(stream)],
                     one_line(list(status), width, escape)]
            self._below_cache = (key, lines)
        return self._below_cache[1]

    @property
    def stream_text(self) -> str:
        """All the running stream wrote (O(length): for tests; the screen shows stream_tail)."""
        return "".join(self.stream_pieces)

    def stream_tail(self) -> str:
        """The last STREAM_TAIL characters of the running stream (cost independent of its length)."""
        tail, size = [], 0
        for piece in reversed(self.stream_pieces):
            if size >= STREAM_TAIL:
                break
            tail.append(piece)
            size += len(piece)
        return "".join(reversed(tail))[-STREAM_TAIL:]

    def _status_fragments(self):
        s = self.shell.session.settings
        name = self.shell.session.loaded.name
        rate = f" · {self.stream_rate:,.0f} tok/s" if self.streaming is not None else ""
        extra = f" · {self.status_extra()}" if self.status_extra is not None else ""
        left = (f" {name}{extra} · T {s.temperature} · top-k {s.top_k or 'off'} · top-p {s.top_p} · len {s.length}"
                f"{rate} ")
        edits = self.shell.session.interventions
        shown = [("class:intervention", f" {edits} ")] if edits else []
        return [("class:status", left), *shown, ("class:message", " " + self.message)]

    # ------------------------------------------------------------ typing

    def model_text(self) -> str:
        """Everything the model is to have read: the transcript and the line (O(length): tests)."""
        return self.shell.history + self.reader.line()

    def _on_text_changed(self, _buffer: Buffer) -> None:
        """Keys come in batches (typing ahead, a paste): the model reads each batch once, after it."""
        if self.streaming is not None or self._sync_scheduled:
            return
        if not self.app.is_running:
            self.sync()
            return
        self._sync_scheduled = True
        self.app.loop.call_soon(self.sync)

    def sync(self) -> None:
        """The model reads what changed and the frame is drawn; the ghost text (several model
        steps) comes just after, so it never delays a key's frame, and not at all while more
        keys are arriving."""
        self._sync_scheduled = False
        if self.collector is not None:
            self.collector.key_seen()
        if self.streaming is None:
            seen, ghost = self.reader.line_seen, self.ghost_pieces
            self.reader.sync()
            self._keep_what_is_left_of_the_ghost(seen, ghost)
            self.app.invalidate()
            self._schedule_ghost()

    @property
    def settled(self) -> bool:
        """Nothing is waiting to be read, drawn or decided (a sync, the ghost, a lone Enter)."""
        return not (self._sync_scheduled or self._ghost_scheduled or self._lone_enter is not None)

    def _keep_what_is_left_of_the_ghost(self, seen: str, ghost: list[str]) -> None:
        """Typing what the ghost showed keeps the rest of it on screen until the new one is ready."""
        typed, left = self.reader.line(), "".join(ghost)
        if not (typed.startswith(seen) and len(typed) > len(seen) and (seen + left).startswith(typed)):
            self.ghost_pieces = []
            self.buffer.suggestion = None
            return
        consumed, pieces = len(typed) - len(seen), []
        for piece in ghost:
            if consumed >= len(piece):
                consumed -= len(piece)
                continue
            pieces.append(piece[consumed:])
            consumed = 0
        self.ghost_pieces = pieces
        self.buffer.suggestion = Suggestion("".join(pieces)) if pieces else None

    def _schedule_ghost(self) -> None:
        if not self.app.is_running:
            self.refresh_ghost()
        elif not self._ghost_scheduled:
            self._ghost_scheduled = True
            # a timer, not call_soon: prompt_toolkit draws when the loop has nothing ready to run,
            # so the key's frame goes out first and the ghost's work comes after it
            self.app.loop.call_later(GHOST_DELAY_S, self._ghost_when_idle)

    def _ghost_when_idle(self) -> None:
        self._ghost_scheduled = False
        if self._sync_scheduled or self.streaming is not None:
            return  # more keys came: their sync asks again
        self.refresh_ghost()
        self.app.invalidate()

    def replace_model(self, loaded, message: str) -> None:
        """Another checkpoint of the same model (--follow): the text so far is read again with it;
        the panel's layer, pinned units and the interventions stay."""
        session, edits = self.shell.session, self.shell.session.interventions
        session.load(loaded)
        if edits:
            session.intervene(edits)
        self.reader.line_seen = ""
        self._panel_cache = None
        self.message = message
        self.sync()

    def clear_line(self) -> None:
        """Drop the line being typed, as a shell's Ctrl-C does; the model unreads it."""
        self.buffer.reset()  # reset() fires no change event
        self.sync()
        self.message = "line cleared · Ctrl-D or :quit leaves"

    # ------------------------------------------------------------ Enter, and pastes that arrive as keys

    def enter(self, more_keys_pending: bool) -> None:
        """Enter streams (or runs a :command), unless it is part of a paste arriving as
        keystrokes: then it is a newline. Keys right behind it say so; an Enter that ends a
        batch waits PASTE_GAP_S for the next part of a paste before it counts as typed."""
        if self.streaming is not None:
            return
        if self._lone_enter is not None:  # the Enter before this one had this one right behind it
            self._newline_pasted()
        if more_keys_pending:
            self._newline_pasted()
            return
        self._lone_enter = self.app.loop.call_later(PASTE_GAP_S, self._enter_typed)

    def settle_enter(self) -> bool:
        """A key that is not text came while an Enter waited: that Enter was typed, and acts
        first. -> whether it did (the key's own action may then no longer apply)."""
        if self._lone_enter is None:
            return False
        self._cancel_lone_enter()
        self.submit()
        return True

    def pasting(self) -> bool:
        """Keys are arriving as a paste: more right behind this one, or an Enter just before it."""
        return self._lone_enter is not None or bool(self.app.key_processor.input_queue)

    def _enter_typed(self) -> None:
        self._lone_enter = None
        self.submit()

    def _newline_pasted(self) -> None:
        """A newline inside a paste: the line so far becomes text above, whatever it starts with
        (a pasted line that starts with ":" is text, not a command)."""
        self._cancel_lone_enter()
        self.reader.newline()

    def _cancel_lone_enter(self) -> None:
        if self._lone_enter is not None:
            self._lone_enter.cancel()
            self._lone_enter = None

    def type_text(self, data: str) -> None:
        """Characters typed or pasted at the cursor; after an Enter that ended the last batch,
        they show that Enter was a pasted newline."""
        if len(data) == 1 and unicodedata.category(data) == "Cc" and data != "\t" and not self.pasting():
            return  # a control key pressed alone (a lone Esc, Ctrl-@) that nothing is bound to: no text
        if self._lone_enter is not None:
            self._newline_pasted()
        self.reader.insert(data)

    def paste(self, text: str) -> None:
        """A bracketed paste: read as typed text, newlines included."""
        if self._lone_enter is not None:
            self._newline_pasted()
        self.reader.paste(text)

    def recall(self, backward: bool) -> None:
        """The previous (or next) line of the history; its ghost text follows as for typing."""
        if backward:
            self.buffer.history_backward()
        else:
            self.buffer.history_forward()

    def refresh_ghost(self) -> None:
        """Ghost text: set here, since every change to the buffer clears the suggestion."""
        if self.buffer.text.startswith(":") or self.buffer.cursor_position != len(self.buffer.text):
            self.ghost_pieces = []
            self.buffer.suggestion = None
            return
        self.ghost_pieces = ghost_pieces(self.shell.session)
        self.buffer.suggestion = Suggestion("".join(self.ghost_pieces)) if self.ghost_pieces else None

    def accept_ghost(self, tokens: int | None = None) -> None:
        pieces = self.ghost_pieces if tokens is None else self.ghost_pieces[:tokens]
        if pieces:
            self.buffer.insert_text("".join(pieces))

    # ------------------------------------------------------------ Enter: commands and streams

    def submit(self) -> None:
        self.sync()
        text = self.buffer.text
        if text.strip() and len(text) <= HISTORY_LINE_MAX:
            self.buffer.append_to_history()
        if text.startswith(":"):
            self._run_command(text)
            return
        self.streaming = self.app.create_background_task(self._stream())
        self.streaming.add_done_callback(self._stream_done)

    def _run_command(self, line: str) -> None:
        if self.recorder is not None:
            self._recording_safely(lambda: self.recorder.command(line))
        try:
            result = run_command(self.shell, line)
        except CommandError as exc:
            self.message = f"⚠ {exc}"
            return
        except Exception as exc:  # a library error from :load and the like: one line, never a traceback
            self.message = f"⚠ {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            return
        self.buffer.reset()
        self.message = result.message
        if result.output:
            self.print_above(result.output)
        if result.quit:
            self.app.exit()
            return
        if not self.shell.history:  # :reset or :load cleared the transcript with the session
            self.reader.forget()
        self.sync()

    async def _stream(self) -> None:
        session = self.shell.session
        start, count = time.perf_counter(), 0
        next_pause = start + FRAME_S / 2
        recorded_rate = self.recorded_rates.popleft() if self.recorded_rates else None
        if recorded_rate:
            self.stream_rate = recorded_rate
        self.message = "streaming · Ctrl-C stops"
        try:
            self.app.invalidate()
            await asyncio.sleep(0)
            await self._hold(0)
            for piece in session.stream():
                self.stream_pieces.append(piece)
                count += 1
                await self._hold(count)
                now = time.perf_counter()
                if now >= next_pause:  # hand the loop a moment twice a frame: keys and redraws get in
                    self.stream_rate = recorded_rate or count / max(now - start, 1e-9)
                    self.app.invalidate()
                    await asyncio.sleep(0)
                    next_pause = time.perf_counter() + FRAME_S / 2
            rate = recorded_rate or count / max(time.perf_counter() - start, 1e-9)
            self.message = f"streamed {count} tokens at {rate:,.0f} tok/s"
            self._record_stream(count, rate)
        except asyncio.CancelledError:
            self.message = f"stopped after {count} tokens"
            self._record_stream(count, count / max(time.perf_counter() - start, 1e-9))

    async def _hold(self, count: int) -> None:
        """A replay holds the stream where the recorded one was when keys came (a Ctrl-C stops it there)."""
        while self.stream_hold is not None and self.stream_hold(count):
            self.app.invalidate()
            await asyncio.sleep(0.005)

    def _stream_done(self, task: asyncio.Task) -> None:
        """However the stream ended (even cancelled before it began), the shell takes the text back."""
        if task.cancelled():
            self.message = f"stopped after {len(self.stream_pieces)} tokens"
        if self.streaming is task:
            self._finish_stream()

    def _finish_stream(self) -> None:
        typed, produced = self.buffer.text, "".join(self.stream_pieces)
        self.reader.finished_stream(produced)
        self.stream_pieces = []
        self.streaming = None
        self.print_above(typed, produced)
        self.sync()

    def stop_stream(self) -> bool:
        if self.streaming is None:
            return False
        self.streaming.cancel()
        return True

    def print_above(self, text: str, generated: str = "") -> None:
        """Print above the prompt, the app redrawn below. This app's own loop does it (not the
        one prompt_toolkit's print_formatted_text finds in the context, which may be stale). The
        text is shown safely: what the model wrote, typed text, a command's output naming files."""
        fragments = FormattedText([("", terminal_safe(text)), ("class:stream", terminal_safe(generated)), ("", "\n")])

        def render() -> None:
            print_formatted_text(self.app.output, fragments, self.style)
            self.app.output.flush()

        if self.app.is_running:
            run_in_terminal(render)
        else:
            render()

    # ------------------------------------------------------------ recording

    def _keys_read(self, keys: str) -> None:
        if self.recorder is not None:
            streamed = len(self.stream_pieces) if self.streaming is not None else None
            self._recording_safely(lambda: self.recorder.keys(keys, streamed))
        for listener in self.key_listeners:
            listener(keys)

    def record(self, path: str) -> str:
        """:record FILE starts recording (a running one ends first); :record alone ends it."""
        previous = self.stop_recording()
        if not path:
            return f"recording saved to {previous}" if previous else "not recording (:record FILE starts)"
        size, target = self.app.output.get_size(), Path(path).expanduser()
        seed = self.shell.session.settings.seed
        seed = secrets.randbelow(2**31) if seed is None else seed  # sampling is seeded, or no replay streams the same
        message = f"recording to {target} (seed {seed}) · :record alone stops"
        self.recorder = SessionRecorder(target, self.shell, size.columns, size.rows, seed, message)
        return message

    def stop_recording(self) -> Path | None:
        recorder, self.recorder = self.recorder, None
        if recorder is None:
            return None
        recorder.end()
        return recorder.path

    def _record_stream(self, count: int, rate: float) -> None:
        if self.recorder is not None:
            self._recording_safely(lambda: self.recorder.stream_ended(count, rate))

    def _recording_safely(self, write: Callable[[], None]) -> None:
        try:
            write()
        except RecordingError as exc:  # a full disk: the session goes on without recording
            self.recorder = None
            self.message = f"⚠ {exc}"

    # ------------------------------------------------------------ running

    async def run_async(self, handle_sigint: bool = False) -> None:
        try:
            with paced_collection(asyncio.get_running_loop(), lambda: not self.settled) as self.collector:
                self.app.after_render += self._collect_after_frame  # after the panel writer: the frame is out first
                self.app.after_render += self._warm_after_first_frame
                await self.app.run_async(handle_sigint=handle_sigint)
        finally:
            self.app.after_render -= self._collect_after_frame
            self.stop_recording()

    def _warm_after_first_frame(self, _app) -> None:
        self.app.after_render -= self._warm_after_first_frame
        self.app.loop.call_soon(self._warm_key_bindings)

    def _warm_key_bindings(self) -> None:
        """prompt_toolkit works out which bindings a key has the first time that key is pressed
        (1-3 ms a key, 30 ms for the session's first): done here for the usual keys, once the
        first frame is out, so no keystroke pays for it."""
        bindings = getattr(self.app.key_processor, "_bindings", None)  # what the processor matches against
        if bindings is None:
            return
        for key in (*string.printable.strip(), " ", *WARM_KEYS):
            bindings.get_bindings_for_keys((key,))
            bindings.get_bindings_starting_with_keys((key,))

    def _collect_after_frame(self, _app) -> None:
        if self.collector is not None:
            self.collector.after_frame()

    def run(self) -> None:
        # Keys typed while the shell was starting were echoed by the terminal: the app reads
        # them again, so their echo goes, or the first line would show them twice. (Only the
        # cursor's line: a type-ahead that wrapped or held Enter leaves its earlier lines.)
        self.app.output.write_raw("\r\x1b[2K")
        asyncio.run(self.run_async(handle_sigint=True))  # as Application.run does
