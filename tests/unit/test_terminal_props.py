"""What reaches a person's terminal from a name or a server's message (issue 30 item 5): never
a control character, printable text as it is, and different texts always print differently."""

from __future__ import annotations

import re

from hypothesis import example, given
from hypothesis import strategies as st

from daemon.commands.terminal import escape, escape_all

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# Names as they come: any text, text built from the troublesome pieces, and file names.
NAMES = st.one_of(
    st.text(),
    st.lists(st.sampled_from(["\\", "e", "n", "t", "x", "u", "1b", "\x1b", "\x07", "\n", "\t",
                              "\x9b", "\x7f", "\x00", "\udcff", "]0;", "[2J", "a", "é"])
             ).map("".join),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",))),
)


def unescape(shown: str) -> str:
    """The inverse of escape (proof that it loses nothing)."""
    out, i = [], 0
    named = {"\\": "\\", "e": "\x1b", "n": "\n", "t": "\t"}
    while i < len(shown):
        nxt = shown[i + 1: i + 2]
        if shown[i] != "\\" or not nxt or nxt not in "\\entxu":
            out.append(shown[i])
            i += 1
        elif nxt in named:
            out.append(named[nxt])
            i += 2
        else:
            width = 2 if nxt == "x" else 4
            out.append(chr(int(shown[i + 2: i + 2 + width], 16)))
            i += 2 + width
    return "".join(out)


@given(NAMES)
@example("\x1b]0;owned\x07")  # sets the window title
@example("\x1b[2J")  # clears the screen
@example("a.mov\n  #7 b.mov\n      Failed")  # a fake entry
@example("C:\\new\\x41")  # backslashes that read like escapes
@example("\\\x1b")
def test_no_control_character_is_printed_and_nothing_is_lost(name: str) -> None:
    shown = escape(name)
    assert not CONTROL.search(shown), shown
    assert unescape(shown) == name


@given(NAMES, NAMES)
def test_different_names_print_differently(a: str, b: str) -> None:
    assert (escape(a) == escape(b)) == (a == b)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs"),
                                      blacklist_characters="\\")))
def test_printable_text_is_shown_as_it_is(text: str) -> None:
    assert escape(text) == text


def test_the_escapes_a_person_reads() -> None:
    assert escape("a\x1b[31mb\x07c\nd\te\x7ff\x9bg") == "a\\e[31mb\\x07c\\nd\\te\\x7ff\\x9bg"
    assert escape("back\\slash") == "back\\slash"  # nothing to mistake it for
    assert escape("C:\\new") == "C:\\\\new"


@given(st.recursive(st.none() | st.integers() | NAMES,
                    lambda inner: st.lists(inner) | st.dictionaries(NAMES, inner)))
def test_a_documents_texts_are_all_escaped_and_its_shape_kept(doc: object) -> None:
    shown = escape_all(doc)
    flat: list[str] = []

    def texts(x: object) -> None:
        if isinstance(x, str):
            flat.append(x)
        elif isinstance(x, dict):
            for k, v in x.items():
                texts(k)
                texts(v)
        elif isinstance(x, list):
            for v in x:
                texts(v)
    texts(shown)
    assert not any(CONTROL.search(t) for t in flat)
    assert unescape_all(shown) == doc


def unescape_all(x: object) -> object:
    if isinstance(x, str):
        return unescape(x)
    if isinstance(x, dict):
        return {unescape(k): unescape_all(v) for k, v in x.items()}
    if isinstance(x, list):
        return [unescape_all(v) for v in x]
    return x
