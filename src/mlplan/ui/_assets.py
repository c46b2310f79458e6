"""The dashboard's front-end libraries: taken from the npm registry at build time (``npm pack``
into ``build/npm/``, as ``scripts/system-deps.sh`` does), read from their tarballs when the app
starts and served from memory under ``/static/``. Nothing is fetched when a page runs.

A library whose tarball is missing is not served: the pages work without it (each is
progressive enhancement), and the app says so once in its log.
"""

from __future__ import annotations

import logging
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ELK", "HTMX", "LIBRARIES", "FrontEndLibrary", "load_library", "npm_folder"]

log = logging.getLogger("mlplan.ui")

_CHECKOUT = Path(__file__).resolve().parents[3]
"""The source checkout this package runs from (an editable install), where ``build/npm/`` is."""


@dataclass(frozen=True)
class FrontEndLibrary:
    """One file of one npm package at a pinned version, served as ``/static/{served_as}``.

    ``env`` names the variable that points at a downloaded tarball, for machines without the
    build folder (as ``$MLPLAN_ORT_WEB`` does for the browser build).
    """

    package: str
    version: str
    member: str
    served_as: str
    env: str

    @property
    def tarball_name(self) -> str:
        """The file ``npm pack PACKAGE@VERSION`` writes."""
        return f"{self.package.replace('/', '-').lstrip('@')}-{self.version}.tgz"

    def tarball(self) -> Path:
        """Where its tarball is looked for: ``$ENV`` when set, else ``build/npm/``."""
        given = os.environ.get(self.env)
        return Path(given) if given else npm_folder() / self.tarball_name


HTMX = FrontEndLibrary(
    package="htmx.org",
    version="4.0.1",
    member="dist/htmx.min.js",
    served_as="htmx.min.js",
    env="MLPLAN_HTMX",
)
"""htmx: pages swap a table's next page in place of a whole reload."""

ELK = FrontEndLibrary(
    package="elkjs",
    version="0.12.1",
    member="lib/elk.bundled.js",
    served_as="elk.bundled.js",
    env="MLPLAN_ELKJS",
)
"""elkjs: the Lineage page lays its graph out (the bundled build runs in the page itself,
no web worker, no eval: it keeps to the page's ``script-src 'self'``)."""

LIBRARIES: tuple[FrontEndLibrary, ...] = (HTMX, ELK)


def npm_folder() -> Path:
    """The folder ``scripts/system-deps.sh`` packs npm tarballs into (``$MLPLAN_NPM_DIR``, else
    ``build/npm`` of the source checkout)."""
    given = os.environ.get("MLPLAN_NPM_DIR")
    return Path(given) if given else _CHECKOUT / "build" / "npm"


def load_library(library: FrontEndLibrary) -> bytes | None:
    """The file of ``library`` from its tarball, or None (logged once per call) when the
    tarball is missing or lacks the file.

    Examples
    --------
    >>> import os
    >>> os.environ["MLPLAN_HTMX"] = "/nonexistent/htmx.org-4.0.1.tgz"
    >>> load_library(HTMX) is None
    True
    >>> del os.environ["MLPLAN_HTMX"]
    """
    path = library.tarball()
    try:
        with tarfile.open(path) as archive:
            member = archive.extractfile(f"package/{library.member}")
            if member is not None:
                return member.read()
            problem = f"{path} has no {library.member}"
    except (OSError, tarfile.TarError) as error:
        problem = f"{path} cannot be read ({error.__class__.__name__})"
    log.warning(
        "mlplan ui: %s@%s is not served: %s. The pages work without it; to serve it, run "
        "scripts/system-deps.sh (npm pack %s@%s into build/npm/) or set $%s to its tarball",
        library.package,
        library.version,
        problem,
        library.package,
        library.version,
        library.env,
    )
    return None
