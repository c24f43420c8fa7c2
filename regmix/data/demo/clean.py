"""Text cleaners the domain readers share: wiki markup, Gutenberg boilerplate, long works cut up."""

from __future__ import annotations

import html
import re

CHUNK_CHARS = 20_000  # long works (plays) are cut at paragraph breaks into documents this size


def paragraphs_chunks(text: str, size: int = CHUNK_CHARS) -> list[str]:
    """Cut `text` at blank lines into pieces of about `size` characters."""
    pieces, current, length = [], [], 0
    for para in re.split(r"\n\s*\n", text):
        current.append(para)
        length += len(para) + 2
        if length >= size:
            pieces.append("\n\n".join(current).strip())
            current, length = [], 0
    if current:
        pieces.append("\n\n".join(current).strip())
    return [p for p in pieces if p]


def strip_wiki(markup: str) -> str:
    """MediaWiki markup -> plain text: drop templates, tables, refs, files; keep link labels."""
    text = re.sub(r"<!--.*?-->", "", markup, flags=re.S)
    text = re.sub(r"<ref[^>]*/>|<ref[^>]*>.*?</ref>", "", text, flags=re.S)
    previous = None
    while previous != text:  # templates nest: peel the innermost ones until none is left
        previous, text = text, re.sub(r"\{\{[^{}]*\}\}", "", text)
    text = re.sub(r"\{\|.*?\|\}", "", text, flags=re.S)
    previous = None
    while previous != text:  # [[File:x.jpg|thumb|a [[link]] in the caption]]
        previous = text
        text = re.sub(r"\[\[(?:File|Image|Category|[a-z][a-z\-]{1,11}):[^\[\]]*\]\]", "", text)
        text = re.sub(r"\[\[[^\[\]|]*\|([^\[\]]*)\]\]", r"\1", text)
        text = re.sub(r"\[\[([^\[\]]*)\]\]", r"\1", text)
    text = re.sub(r"\[https?://\S+ ([^\]]*)\]", r"\1", text)
    text = re.sub(r"\[https?://\S+\]", "", text)
    text = re.sub(r"'{2,}", "", text)
    text = re.sub(r"(?m)^(=+)\s*(.*?)\s*\1\s*$", r"\2", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = html.unescape(text)
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def strip_gutenberg(text: str) -> str:
    """The work itself, without Project Gutenberg's header and licence footer."""
    start = re.search(r"\*\*\* ?START OF.*?\*\*\*|\*END\*THE SMALL PRINT.*?\n", text)
    end = re.search(r"\*\*\* ?END OF|End of (the )?Project Gutenberg", text)
    return text[start.end() if start else 0 : end.start() if end else len(text)].strip()
