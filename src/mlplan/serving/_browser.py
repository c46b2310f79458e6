"""``mlplan export MODEL --target browser``: a static folder that predicts in the browser —
the ONNX package, a page generated from its signature, and onnxruntime-web taken from the
npm registry at build time (``npm pack``). The page fetches nothing but its own files.

The build is checked in headless Chromium (Playwright driving the system's ``chromium``):
the page's predictions on test rows must equal ONNX Runtime's in Python.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from string import Template
from typing import Any

import numpy as np

from mlplan._optional import require
from mlplan.errors import MlplanError, ParameterError
from mlplan.modeling import PackageSignature

__all__ = [
    "ORT_WEB_VERSION",
    "build_browser_site",
    "check_in_chromium",
    "chromium_path",
    "ort_web_files",
]

ORT_WEB_VERSION = "1.30.0"
ORT_WEB_ENV = "MLPLAN_ORT_WEB"  # a local onnxruntime-web-X.tgz, for machines without npm
_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.wasm", "ort-wasm-simd-threaded.mjs")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def ort_web_files(target: Path) -> str:
    """Copy onnxruntime-web's wasm build into ``target``; its version.

    From ``$MLPLAN_ORT_WEB`` (a tarball) when set, else from the npm registry with
    ``npm pack`` (build time, never when the page runs).

    Raises
    ------
    MlplanError
        Neither a tarball nor npm is at hand.
    """
    with tempfile.TemporaryDirectory() as scratch:
        tarball_env = os.environ.get(ORT_WEB_ENV)
        if tarball_env:
            tarball = Path(tarball_env)
        else:
            npm = shutil.which("npm")
            if npm is None:
                raise MlplanError(
                    "the browser build takes onnxruntime-web from the npm registry, and npm is "
                    f"not installed; install npm, or set ${ORT_WEB_ENV} to a downloaded "
                    f"onnxruntime-web-{ORT_WEB_VERSION}.tgz"
                )
            done = subprocess.run(
                [npm, "pack", f"onnxruntime-web@{ORT_WEB_VERSION}", "--silent"],
                cwd=scratch,
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise MlplanError(
                    f"npm pack onnxruntime-web@{ORT_WEB_VERSION} failed: "
                    f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}"
                )
            tarball = Path(scratch) / done.stdout.strip().splitlines()[-1]
        with tarfile.open(tarball) as archive:
            version = json.load(archive.extractfile("package/package.json"))["version"]  # type: ignore[arg-type]
            for name in _FILES:
                member = archive.extractfile(f"package/dist/{name}")
                if member is None:
                    raise MlplanError(f"{tarball} has no dist/{name}")
                (target / name).write_bytes(member.read())
    return str(version)


def build_browser_site(
    folder: Path,
    graph: bytes,
    signature: PackageSignature,
    metadata: dict[str, Any],
    title: str,
) -> str:
    """Write the static site; the onnxruntime-web version it uses."""
    if not signature.tabular:
        raise ParameterError(
            "target", "{param} browser builds pages for tabular models (records in)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    version = ort_web_files(folder)
    (folder / "model.onnx").write_bytes(graph)
    (folder / "signature.json").write_text(signature.to_json())
    (folder / "metadata.json").write_text(json.dumps(metadata, indent=1))

    assets = files("mlplan.serving").joinpath("browser")
    (folder / "app.js").write_text(assets.joinpath("app.js").read_text())
    page = Template(assets.joinpath("index.html").read_text())
    (folder / "index.html").write_text(page.substitute(title=title, version=version))
    return version


def chromium_path() -> str | None:
    """The system's Chromium (Debian's ``chromium``), if installed."""
    return (
        os.environ.get("MLPLAN_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )


@contextmanager
def _static_server(folder: Path) -> Iterator[str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    finally:
        server.shutdown()
        server.server_close()


def check_in_chromium(folder: Path, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Open the page in headless Chromium and predict ``records`` there."""

    sync_api = require("playwright.sync_api", extra="serving", purpose="checking a browser build")
    executable = chromium_path()
    if executable is None:
        raise MlplanError("no chromium to check the browser build in: apt-get install chromium")
    with _static_server(folder) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.goto(url)
            page.wait_for_function(
                "document.body.dataset.ready === '1' || document.body.dataset.error !== undefined",
                timeout=60_000,
            )
            failed = page.evaluate("document.body.dataset.error")
            if failed:
                raise MlplanError(f"the page failed to load the model: {failed}")
            result: dict[str, Any] = page.evaluate(
                "records => window.mlplanPredict(records)", records
            )
        finally:
            browser.close()
    return result


def compare(page: dict[str, Any], labels: np.ndarray, proba: np.ndarray | None) -> dict[str, Any]:
    """How far the page's predictions are from ONNX Runtime's."""
    if proba is None:
        values = np.asarray(page["values"], dtype=np.float64)
        diff = float(np.max(np.abs(values - labels))) if len(values) else 0.0
        return {"max_abs_diff": diff, "labels_equal": True}
    mine = np.asarray(page["probabilities"], dtype=np.float64)
    diff = float(np.max(np.abs(mine - proba))) if mine.size else 0.0
    return {"max_abs_diff": diff, "labels_equal": list(page["labels"]) == [str(v) for v in labels]}
