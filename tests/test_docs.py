"""Across modules: the docs: every "spec §N" the code cites is a section of docs/spec.md, every
page in docs/ starts with the question it answers, and the README's links lead somewhere."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CITED_IN = ("helpers", "tests", "bench", "notebooks", "docs")
# "spec §2.2", "spec §4, §6", "spec §3-§4", "spec §1, §3, §4"
CITATION = re.compile(r"spec (§\d+(?:\.\d+)?(?:\s*(?:,|-|and)\s*§\d+(?:\.\d+)?)*)")


def spec_sections(text: str) -> set[str]:
    """The section numbers of docs/spec.md's headings: '## 2. The converter' gives '2'."""
    return set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", text, flags=re.MULTILINE))


def citations(text: str) -> list[str]:
    """Every section number a text cites as spec §N (each of a list or a range's ends)."""
    return [n for group in CITATION.findall(text) for n in re.findall(r"§(\d+(?:\.\d+)?)", group)]


def _cited_files() -> list[Path]:
    return sorted(
        p
        for folder in CITED_IN
        for p in (REPO / folder).rglob("*")
        if p.suffix in (".py", ".ipynb", ".md") and p.name != "spec.md"
    )


def test_citations_are_read_from_lists_and_ranges():
    text = "as spec §2.2 says; (spec §4, §6) and spec §3-§4; not § 9 or spec 5"
    assert citations(text) == ["2.2", "4", "6", "3", "4"]
    assert spec_sections("## 2. The converter\n### 2.1 Drum classes\n#### 9 no\n") == {"2", "2.1"}


def test_every_spec_citation_names_a_section_of_docs_spec():
    sections = spec_sections((REPO / "docs" / "spec.md").read_text())
    missing = {
        f"{path.relative_to(REPO)}: spec §{number}"
        for path in _cited_files()
        for number in citations(path.read_text())
        if number not in sections
    }
    assert not missing, f"cited but not in docs/spec.md: {sorted(missing)}"


@pytest.mark.parametrize("page", sorted((REPO / "docs").glob("*.md")), ids=lambda p: p.name)
def test_each_docs_page_starts_with_the_question_it_answers(page):
    first = page.read_text().splitlines()[0]
    assert first.startswith("# ") and first.endswith("?"), f"{page.name} starts {first!r}"


@pytest.mark.parametrize(
    "page", ["README.md", *sorted(p.name for p in (REPO / "docs").glob("*.md"))]
)
def test_relative_links_lead_to_files(page):
    path = REPO / page if page == "README.md" else REPO / "docs" / page
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text())
    local = [t for t in targets if "://" not in t and not t.startswith("mailto:")]
    broken = [t for t in local if not (path.parent / t).exists()]
    assert not broken, f"{page} links to missing files: {broken}"
