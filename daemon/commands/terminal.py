"""Text for a person's terminal. A file or folder name, or a server's message, may hold ESC or
BEL sequences (set the window title, change colours, clear the screen) or newlines (a fake
"Failed" line): every such text is printed through `escape`, which shows each C0/C1 control
character and DEL as `\\e`, `\\n`, `\\t` or `\\xHH`. JSON output is never escaped (it is exact).

The escaping is one-to-one, so two different names never print alike: a backslash is doubled
where it would otherwise read as the start of an escape (before e, n, t, x, u or a backslash);
anywhere else it, like every other printable character, is shown as it is. A lone surrogate (an
undecodable byte of a file name, which no terminal could be sent) is shown as `\\udcHH`."""

from __future__ import annotations

import re
import sys
from typing import Any, TextIO

_NAMED = {"\x1b": "\\e", "\n": "\\n", "\t": "\\t"}
_SPECIAL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]|\\")
_STARTS_ESCAPE = frozenset("entxu\\")


def _one(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\u{code:04x}" if code > 0xFF else f"\\x{code:02x}"


def escape(text: str) -> str:
    """`text` as a terminal may be sent it: no control character, nothing lost."""
    if not _SPECIAL.search(text):
        return text  # the usual name: no copy
    out: list[str] = []
    for i, char in enumerate(text):
        if char != "\\" and _SPECIAL.fullmatch(char):
            out.append(_one(char))
        elif char == "\\":
            # Doubled where what follows it is printed starting with a backslash letter.
            following = text[i + 1: i + 2]
            out.append("\\\\" if following and (following in _STARTS_ESCAPE or
                                              _SPECIAL.fullmatch(following)) else "\\")
        else:
            out.append(char)
    return "".join(out)


def escape_all(value: Any) -> Any:
    """Every text inside a document (`status --json`'s, say) escaped, for printing as text;
    numbers, None and the shape are kept."""
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, dict):
        return {escape_all(k): escape_all(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [escape_all(v) for v in value]
    return value


def echo(text: str, file: TextIO | None = None) -> None:
    """print() for a line that holds a name, a path or a message from elsewhere."""
    print(escape(text), file=file or sys.stdout)


__all__ = ["echo", "escape", "escape_all"]
