"""Text on its way to a terminal. Anything derived from data (a model's output, a vocabulary, a
file name, a label, a recording) is untrusted: an ESC starts a sequence that can retitle the
window or write the clipboard (OSC 0, OSC 52), a C1 control does the same in one byte, a carriage
return overwrites what was shown, and a lone surrogate cannot be encoded at all. Every path that
writes such text goes through `terminal_safe` (running text), `terminal_line` (one line),
`visible_token` (one token, its whitespace shown too) or `terminal_json` (JSON for a person or a
pipe). Nothing derived from data is given to rich as markup: it goes in a rich Text. Imports
nothing of the project's.
"""

from __future__ import annotations

import json
import re
import unicodedata

# C0 controls but newline and tab, DEL, C1 controls, lone surrogates
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_WHITESPACE_SIGNS = {"\n": "⏎", " ": "␣", "\t": "⇥", "\r": "␍"}
# marks, controls, format, surrogates, private use, unassigned, line/paragraph separators: a
# terminal may draw them at a width other than the one counted, or not at all
_UNSURE_WIDTH = {"Mn", "Mc", "Me", "Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def shown_char(ch: str) -> str:
    """One unsafe character as it is shown: '\\x1b' for a C0 control or DEL, 'U+009B' for a C1
    control, '‹e2›' for a byte that is no whole UTF-8 character (Python's surrogate escape of it:
    a BPE token holding part of a character, an argument that is not UTF-8), 'U+D800' for another
    lone surrogate."""
    code = ord(ch)
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:
        return f"‹{code - 0xDC00:02x}›"
    return f"U+{code:04X}"


def terminal_safe(text: str) -> str:
    """`text` with every character that could act on a terminal shown visibly instead; newlines
    and tabs are kept. The result is printable, and encodable as UTF-8."""
    if not _UNSAFE.search(text):
        return text
    return _UNSAFE.sub(lambda match: shown_char(match.group()), text)


def terminal_line(text: str) -> str:
    """`terminal_safe` for text that must stay on one line (an error message, a table cell):
    newlines and tabs are shown too."""
    return terminal_safe(text).replace("\n", "\\n").replace("\t", "\\t")


def terminal_json(document: object, **dumps_options) -> str:
    """`json.dumps(document, ensure_ascii=False)` with every character that could act on a
    terminal written as its \\uXXXX escape: the same JSON, safe to print. (json.dumps escapes C0
    controls itself; DEL, C1 controls and lone surrogates it leaves as they are.)"""
    text = json.dumps(document, ensure_ascii=False, **dumps_options)
    return _UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)  # only strings can hold them


def visible_token(text: str | None) -> str:
    """A token's text with whitespace and control characters made visible: ⏎ ␣ ⇥ ␍ \\x07; and
    characters a terminal may draw at a width other than the one counted (combining marks,
    joiners, direction marks, C1 controls, surrogates, other invisible ones) as their code point:
    U+200D."""
    if text is None:
        return ""
    if text == "":
        return "∅"
    return "".join(_visible_char(ch) for ch in text)


def _visible_char(ch: str) -> str:
    if ch in _WHITESPACE_SIGNS:
        return _WHITESPACE_SIGNS[ch]
    if _UNSAFE.match(ch) or unicodedata.category(ch) in _UNSURE_WIDTH:
        return shown_char(ch)
    return ch


def has_unsafe(text: str) -> bool:
    """Whether `terminal_safe` would change `text`."""
    return _UNSAFE.search(text) is not None
