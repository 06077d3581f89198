"""The documentation site builds with `mkdocs build --strict`: no warning, offline, every page
in the nav and every link between pages (anchors included) resolving."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.docs.page_runner import ROOT


def test_the_site_builds_strictly_without_a_warning(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # a banner about Material's future
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    log = build.stdout + build.stderr
    assert build.returncode == 0, log
    assert "WARNING" not in log, log
    assert (tmp_path / "index.html").exists()
    assert (tmp_path / "getting-started" / "index.html").exists()


def test_every_docs_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = sorted(p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md"))
    missing = [page for page in pages if f": {page}\n" not in nav]
    assert not missing, f"pages the nav does not list: {missing}"
