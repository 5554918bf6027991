"""The shell without a terminal: each input line is continued as plain text (for pipes and scripts)."""

from __future__ import annotations

from typing import TextIO

from lstm_repl.session import Session


def run_plain(session: Session, lines: TextIO, out: TextIO) -> None:
    for line in lines:
        text = line.rstrip("\n")
        if not text.strip():
            continue
        session.reset()
        session.set_text(text)
        for piece in session.stream():
            out.write(piece)
            out.flush()
        out.write("\n")
        out.flush()
