"""The interactive shell: a prompt_toolkit application around a Session, in parts with one job
each: the frame under the input line (frame.py), typing and ghost text (line_typing.py), typed
or pasted Enter (enter_keys.py), streams (streaming.py), :record (recorder.py). This module
builds them and runs commands and the loop. Outside code plugs in through `hooks` (hooks.py)
and waits on `settled`.

Layout, top to bottom: the input line (with ghost text), the streaming line, a rule, the live
panel (predictions, gate bars, unit strip), and the status line. prompt_toolkit draws the input
line; everything under it is written by shell/panel_control.py (prompt_toolkit's per-cell
drawing of it cost more than the model's step). Finished text is printed above the
application, so the terminal's scrollback is the transcript.
"""

from __future__ import annotations

import asyncio

from prompt_toolkit.application import Application, run_in_terminal
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.completion import WordCompleter
from prompt_toolkit.filters import Condition
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.layout import HSplit, Layout, Window
from prompt_toolkit.layout.controls import BufferControl
from prompt_toolkit.layout.processors import AppendAutoSuggestion, BeforeInput
from prompt_toolkit.renderer import print_formatted_text
from prompt_toolkit.widgets import SearchToolbar

from lstm_repl.shell.collector import Collector, paced_collection
from lstm_repl.shell.colon_commands import COMMAND_NAMES, CommandError, run_command
from lstm_repl.shell.shell_state import Shell
from lstm_repl.shell.enter_keys import EnterKeys
from lstm_repl.shell.frame import Frame
from lstm_repl.shell.history import HISTORY_LINE_MAX, file_history
from lstm_repl.shell.hooks import ShellHooks
from lstm_repl.shell.keys import TextRuns, shell_key_bindings, warm_key_bindings
from lstm_repl.shell.learning import ShellLearning
from lstm_repl.shell.line_typing import Typing
from lstm_repl.shell.panel_control import PanelArea, PanelWriter
from lstm_repl.shell.reading import LineReader
from lstm_repl.shell.recorder import KeyTap, ShellRecording
from lstm_repl.shell.streaming import Stream
from lstm_repl.shell.style import shell_style, uses_colour
from lstm_repl.shell.timing import ShellTiming
from lstm_repl.terminal_text import terminal_safe

BLOCK = '"""'  # begins and ends a block of lines


class ShellApp:
    def __init__(self, shell: Shell, color: bool | None = None, timing: ShellTiming = ShellTiming(),
                 hooks: ShellHooks | None = None, history: bool = True):
        """history: lines are kept in the user's history file (a replay's are not the user's)."""
        self.shell, self.timing, self.hooks = shell, timing, hooks or ShellHooks()
        self.color = uses_colour(color)
        self.style = shell_style(self.color)
        self.frame = Frame(self, f"type to watch the {shell.session.model.rnn.name} read · Enter streams · "
                                 "→ ghost · :help")
        self.stream, self.typing, self.enter_keys = Stream(self), Typing(self), EnterKeys(self)
        self.collector: Collector | None = None  # while running
        self.in_block = False  # between triple quotes: Enter starts a new line, the closing quotes stream
        self.search = SearchToolbar()  # Ctrl-R: shown while searching the history
        self.buffer = Buffer(
            multiline=False,
            history=file_history() if history else InMemoryHistory(),
            completer=WordCompleter(COMMAND_NAMES, sentence=True),
            complete_while_typing=False,
            on_text_changed=self.typing.on_text_changed,
            read_only=Condition(lambda: self.stream.task is not None),
        )
        self.reader = LineReader(shell, self.buffer, self.print_above)
        self.app = self._build()
        self.recording = ShellRecording(self.hooks, shell, self._terminal_size, self._tell)
        self.app.input = TextRuns(KeyTap(self.app.input, self._keys_read))
        self.learning = shell.learning = ShellLearning(self)
        self.typing.refresh_ghost()

    def _build(self) -> Application:
        line = BufferControl(self.buffer, input_processors=[BeforeInput(self._prompt), AppendAutoSuggestion()],
                             search_buffer_control=self.search.control)
        input_window = Window(line, height=1, wrap_lines=False)
        below = PanelArea(self.frame.lines_below_input)
        app = Application(
            layout=Layout(HSplit([input_window, self.search, below]), focused_element=input_window),
            key_bindings=shell_key_bindings(self),
            style=self.style,
            full_screen=False,
            erase_when_done=True,
            min_redraw_interval=self.timing.frame_s,
            refresh_interval=0.5,  # a safety net: under load, a redraw was once seen lost at start-up
            mouse_support=False,
        )
        self.panel_writer = PanelWriter(app, below)
        return app

    def _prompt(self):
        if self.in_block:
            return [("class:prompt", "… ")]
        return [("class:prompt", "> ")] if not self.buffer.text.startswith(":") else [("class:prompt.command", "  ")]

    def _terminal_size(self) -> tuple[int, int]:
        size = self.app.output.get_size()
        return size.columns, size.rows

    def _tell(self, message: str) -> None:
        self.frame.message = message

    # ------------------------------------------------------------ what the parts show, read from outside

    message = property(lambda self: self.frame.message, _tell)
    streaming = property(lambda self: self.stream.task, doc="the running stream's task, or None")
    stream_text = property(lambda self: self.stream.text)
    ghost_pieces = property(lambda self: self.typing.ghost_pieces)

    @property
    def key_pending(self) -> bool:
        """A key's work is waiting: a batch to read, its ghost text, or an Enter to decide."""
        return self.typing.pending or self.enter_keys.waiting

    @property
    def settled(self) -> bool:
        """The one signal that the shell is done: nothing streams, no key waits to be read,
        handled or decided, the model has read the line, has learned from it (when learning),
        and its frame is drawn."""
        return (self.stream.task is None and not self.key_pending and not self.app.key_processor.input_queue
                and not self.app.invalidated and not self.reader.unread and self.reader.line_seen == self.reader.line()
                and not self.learning.pending)

    def model_text(self) -> str:
        """Everything the model is to have read: the transcript and the line (O(length): tests)."""
        return self.shell.history + self.reader.line()

    # ------------------------------------------------------------ Enter: commands and streams

    def submit(self) -> None:
        self.typing.sync()
        text = self.buffer.text
        if text.strip() and len(text) <= HISTORY_LINE_MAX:
            self.buffer.append_to_history()
        if text.startswith(":") and not self.in_block:
            self._run_command(text)
        elif not self._block_line(text):
            self.stream.start()

    def _block_line(self, text: str) -> bool:
        """Lines between triple quotes (as ollama reads them): Enter ends a line without streaming,
        the line that ends with the closing quotes streams. -> whether Enter is taken by a block."""
        if not self.in_block and not text.lstrip().startswith(BLOCK):
            return False
        if not self.in_block:
            text = text.lstrip()[len(BLOCK) :]
            self.in_block = True
            self.message = f'a block of lines: Enter starts a new line · a line ending with {BLOCK} streams'
        if text.rstrip().endswith(BLOCK):
            self.in_block = False
            self.reader.replace_line(text.rstrip()[: -len(BLOCK)])
            self.typing.sync()
            return False
        self.reader.replace_line(text)
        if text:
            self.reader.newline()
        self.typing.sync()
        return True

    def new_line(self) -> None:
        """Alt-Enter: the line so far goes above, as text, and nothing streams."""
        self.reader.newline()
        self.typing.sync()

    def _run_command(self, line: str) -> None:
        self.hooks.fire("command", line)
        try:
            result = run_command(self.shell, line)
        except CommandError as exc:
            self.message = f"⚠ {exc}"
            return
        except Exception as exc:  # a library error from :load and the like: one line, never a traceback
            self.message = f"⚠ {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            return
        self.buffer.reset()
        self.message = result.message if result.record is None else self.recording.record(result.record)
        if result.output:
            self.print_above(result.output)
        if result.quit:
            self.app.exit()
            return
        if not self.shell.history or result.transcript_replaced:  # :reset, :load, :undo, :open of a session
            self.reader.forget()
        if result.paste is not None:
            self.reader.paste(result.paste)
        self.typing.sync()
        if result.stream:
            self.stream.start()

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

    # ------------------------------------------------------------ running

    def _keys_read(self, keys: str) -> None:
        self.hooks.fire("keys_read", keys, len(self.stream.pieces) if self.stream.task is not None else None)

    async def run_async(self, handle_sigint: bool = False) -> None:
        try:
            with paced_collection(asyncio.get_running_loop(), lambda: self.key_pending) as self.collector:
                self.app.after_render += self._after_frame  # after the panel writer: the frame is out first
                self.app.after_render += self._warm_after_first_frame
                await self.app.run_async(handle_sigint=handle_sigint)
        finally:
            self.app.after_render -= self._after_frame
            self.recording.stop()
            self.learning.close()

    def _warm_after_first_frame(self, _app) -> None:
        self.app.after_render -= self._warm_after_first_frame
        self.app.loop.call_soon(warm_key_bindings, self.app)

    def _after_frame(self, _app) -> None:
        if self.collector is not None:
            self.collector.after_frame()
        self.hooks.fire("frame_drawn")

    def run(self) -> None:
        # Keys typed while the shell was starting were echoed by the terminal: the app reads
        # them again, so their echo goes, or the first line would show them twice. (Only the
        # cursor's line: a type-ahead that wrapped or held Enter leaves its earlier lines.)
        self.app.output.write_raw("\r\x1b[2K")
        asyncio.run(self.run_async(handle_sigint=True))  # as Application.run does
