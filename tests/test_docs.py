"""The README and docs/ say what the repository holds: every relative link resolves to a file
inside the repository, and every source path they cite (``storage/reads/views.py``,
``bot/http/``) exists — so a moved module cannot leave the architecture page behind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", ROOT / "bench" / "README.md",
             *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# A cited path starts at a top-level folder of the repository; what a run writes is left out.
CITED_PATH = re.compile(
    r"`((?:bot|conversations|storage|locales|tests|bench|docs)/[\w./-]*)`")
WRITTEN_BY_RUNS = ("tests/output/", "bench/results/", "bench/.cache/")


def problems_in(document: Path, root: Path = ROOT) -> list[str]:
    problems = []
    text = document.read_text(encoding="utf-8")
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a web address, or an anchor in the same page
        path = (document.parent / target.partition("#")[0]).resolve()
        if root not in path.parents:
            problems.append(f"link out of the repository: {target}")
        elif not path.exists():
            problems.append(f"link to a missing file: {target}")
    for cited in CITED_PATH.findall(text):
        cited = cited.rstrip(".")
        if cited.startswith(WRITTEN_BY_RUNS) or "*" in cited:
            continue
        if not (root / cited).exists():
            problems.append(f"cites a missing path: {cited}")
    return problems


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_links_and_cited_paths_exist(document):
    problems = problems_in(document)
    assert not problems, f"{document.relative_to(ROOT)}:\n" + "\n".join(problems)


def test_the_check_reports_a_missing_path_and_a_link_out(tmp_path):
    page = tmp_path / "docs" / "page.md"
    page.parent.mkdir()
    page.write_text("See `storage/gone.py` and [spec](../../outside.md) and [a](page.md).\n")
    assert problems_in(page, tmp_path) == ["link out of the repository: ../../outside.md",
                                 "cites a missing path: storage/gone.py"]
