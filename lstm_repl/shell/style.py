"""The shell's look in one place: every colour of its own chrome, by class name, in one
prompt_toolkit Style. Without colour (NO_COLOR, or color=False) the attributes stay (bold,
reverse) and every colour goes, here and, through the same flag, in the panel's fragments."""

from __future__ import annotations

import os
import re

from prompt_toolkit.styles import Style

CLASSES = {
    "prompt": "bold",  # "> " before the text
    "prompt.command": "fg:#888888",  # before a :command
    "stream": "fg:#87d7ff",  # text the model wrote
    "rule": "fg:#444444",  # the line under the input
    "status": "reverse",  # model and settings
    "message": "",  # the status line's hint or last result
    "intervention": "bold fg:#ff5f5f",  # interventions in force (:clamp, :ablate, :force)
}
_COLOUR = re.compile(r"\b(?:fg|bg):\S+")


def uses_colour(color: bool | None = None) -> bool:
    """color if given, else whether NO_COLOR (https://no-color.org) is unset."""
    return not os.environ.get("NO_COLOR") if color is None else color


def shell_style(color: bool) -> Style:
    if color:
        return Style.from_dict(CLASSES)
    return Style.from_dict({name: _COLOUR.sub("", rule).strip() for name, rule in CLASSES.items()})
