"""Every book citation in the code, configs, cards and README names a section the book really has.

Docstrings, comments, YAML configs, model cards and the README cite *The Hundred-Page Language Models Book* as
`§N.M` (ranges `§5.2-§5.6`, `§5.2–5.6`), bare chapters `§N`, "section N.M", "ch. N" and "chapter N". This test
checks each against the book's table of contents, copied below. It cannot tell whether a citation fits the text
around it (RMSNorm is §4.7, not §4.4, though both exist): that stays a reviewer's job, with `BOOK_SECTIONS` at hand.
"""

import re
from pathlib import Path

import pytest


# The book's table of contents, chapters 1-6: section number -> title.
BOOK_SECTIONS = {
    # Chapter 1. Machine Learning Basics
    "1.1": "AI and Machine Learning",
    "1.2": "Model",
    "1.3": "Four-Step Machine Learning Process",
    "1.4": "Vector",
    "1.5": "Neural Network",
    "1.6": "Matrix",
    "1.7": "Gradient Descent",
    "1.8": "Automatic Differentiation",
    # Chapter 2. Language Modeling Basics
    "2.1": "Bag of Words",
    "2.2": "Word Embeddings",
    "2.3": "Byte-Pair Encoding",
    "2.4": "Language Model",
    "2.5": "Count-Based Language Model",
    "2.6": "Evaluating Language Models",
    # Chapter 3. Recurrent Neural Network
    "3.1": "Elman RNN",
    "3.2": "Mini-Batch Gradient Descent",
    "3.3": "Programming an RNN",
    "3.4": "RNN as a Language Model",
    "3.5": "Embedding Layer",
    "3.6": "Training an RNN Language Model",
    "3.7": "Dataset and DataLoader",
    "3.8": "Training Data and Loss Computation",
    # Chapter 4. Transformer
    "4.1": "Decoder Block",
    "4.2": "Self-Attention",
    "4.3": "Position-Wise Multilayer Perceptron",
    "4.4": "Rotary Position Embedding",
    "4.5": "Multi-Head Attention",
    "4.6": "Residual Connection",
    "4.7": "Root Mean Square Normalization",
    "4.8": "Key-Value Caching",
    "4.9": "Transformer in Python",
    # Chapter 5. Large Language Model
    "5.1": "Why Larger Is Better",
    "5.2": "Supervised Finetuning",
    "5.3": "Finetuning a Pretrained Model",
    "5.4": "Sampling From Language Models",
    "5.5": "Low-Rank Adaptation (LoRA)",
    "5.6": "LLM as a Classifier",
    "5.7": "Prompt Engineering",
    "5.8": "Hallucinations",
    "5.9": "LLMs, Copyright, and Ethics",
    # Chapter 6. Further Reading
    "6.1": "Mixture of Experts",
    "6.2": "Model Merging",
    "6.3": "Model Compression",
    "6.4": "Preference-Based Alignment",
    "6.5": "Advanced Reasoning",
    "6.6": "Language Model Security",
    "6.7": "Vision Language Model",
    "6.8": "Preventing Overfitting",
    "6.9": "Concluding Remarks",
    "6.10": "More From the Author",
}
BOOK_CHAPTERS = {
    "1": "Machine Learning Basics",
    "2": "Language Modeling Basics",
    "3": "Recurrent Neural Network",
    "4": "Transformer",
    "5": "Large Language Model",
    "6": "Further Reading",
}

REPO_ROOT = Path(__file__).resolve().parents[1]
SCANNED_DIRS = ("hf_hundredpage", "recipes", "model_cards", "benchmarks")
SCANNED_FILES = ("README.md",)
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".jinja", ".toml"}
SKIPPED_NAMES = {"LICENSE_AND_ATTRIBUTION.md"}

_NUMBER = r"(\d+)(?:\.(\d+))?"
_DASH = r"\s?[-–—]\s?"
# `§4.7`, `§ 4.7`, `§3` (a chapter), and ranges `§5.2-§5.6`, `§5.2–5.6`, `§5.2-6`.
SECTION_SIGN_RE = re.compile(rf"§\s?{_NUMBER}(?:{_DASH}§?\s?{_NUMBER})?")
# "section 2.5", "sections 5.2-5.3" (a bare "section 2" is not taken for a book citation).
SECTION_WORD_RE = re.compile(rf"\bsections?\s+(\d+)\.(\d+)(?:{_DASH}{_NUMBER})?", re.IGNORECASE)
# "ch. 4", "ch.4", "chapter 3", "chapters 3-4", "ch. 3-4" (and "chapter 4.2", read as a section).
CHAPTER_WORD_RE = re.compile(rf"\b(?:ch\.\s?|chapters?\s+){_NUMBER}(?:{_DASH}{_NUMBER})?(?!\d|\.\d)", re.IGNORECASE)


def _citation_matches(text: str) -> list[tuple[list[str], str]]:
    """`([start] or [start, end], matched text)` for every citation in `text`, in order of position."""
    found = []
    for regex in (SECTION_SIGN_RE, SECTION_WORD_RE, CHAPTER_WORD_RE):
        for match in regex.finditer(text):
            major, minor, end_major, end_minor = match.groups()
            numbers = [f"{major}.{minor}" if minor is not None else major]
            if end_major is not None:
                if end_minor is not None:
                    numbers.append(f"{end_major}.{end_minor}")
                elif minor is not None and regex is not CHAPTER_WORD_RE:
                    numbers.append(f"{major}.{end_major}")  # `§5.2-6` is §5.2 to §5.6
                else:
                    numbers.append(end_major)
            found.append((match.start(), numbers, match.group(0)))
    return [(numbers, citation) for _, numbers, citation in sorted(found, key=lambda item: item[0])]


def extract_citations(text: str) -> list[tuple[str, str]]:
    """Every book citation in `text`, in order: `(number, matched text)` where `number` is a section ("4.7") or a
    chapter ("4"). Both ends of a range are returned; a bare end after a dotted start (`§5.2-6`) means `5.6`."""
    return [(number, citation) for numbers, citation in _citation_matches(text) for number in numbers]


def extract_ranges(text: str) -> list[tuple[str, str, str]]:
    """`(start, end, matched text)` for every range citation in `text`."""
    return [(numbers[0], numbers[1], citation) for numbers, citation in _citation_matches(text) if len(numbers) == 2]


def is_known(number: str) -> bool:
    """A section of the table of contents ("4.7") or a chapter 1-6 ("4")."""
    return number in BOOK_SECTIONS if "." in number else number in BOOK_CHAPTERS


def scanned_files() -> list[Path]:
    files = [REPO_ROOT / name for name in SCANNED_FILES if (REPO_ROOT / name).is_file()]
    for folder in SCANNED_DIRS:
        for path in sorted((REPO_ROOT / folder).rglob("*")):
            parts = path.relative_to(REPO_ROOT).parts
            if any(part == "__pycache__" or part.startswith(".") or part.endswith(".egg-info") for part in parts):
                continue
            if path.is_file() and path.suffix in TEXT_SUFFIXES and path.name not in SKIPPED_NAMES:
                files.append(path)
    return files


def scan_repository(extract=extract_citations) -> list[tuple]:
    """`(relative path, line number, *extracted)` for everything `extract` finds in each line of the scanned files;
    with `extract_citations`, `(path, line, cited number, matched text)`."""
    results = []
    for path in scanned_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for line_number, line in enumerate(text.splitlines(), start=1):
            for item in extract(line):
                results.append((path.relative_to(REPO_ROOT).as_posix(), line_number, *item))
    return results


@pytest.fixture(scope="module")
def repository_citations():
    return scan_repository()


def test_table_of_contents_is_consistent():
    for number in BOOK_SECTIONS:
        chapter, section = number.split(".")
        assert chapter in BOOK_CHAPTERS
        assert section == "1" or f"{chapter}.{int(section) - 1}" in BOOK_SECTIONS, number
    assert len(BOOK_SECTIONS) == 50


def test_extraction_finds_citations_in_a_handmade_string():
    text = (
        "RMSNorm (book §4.7) -> RoPE (§ 4.4); SFT (§5.2-§5.3), sampling and LoRA (§5.4–5.5), (§2.5–6), "
        "pipeline (book §2.3, §3, §4). See the book's section 2.6 and sections 5.2-5.3, ch. 3, chapter 4 and "
        "ch. 3-4. Not citations: 4.7, v1.2, section 2, chapters, ch.apter, §."
    )
    assert [number for number, _ in extract_citations(text)] == [
        "4.7", "4.4", "5.2", "5.3", "5.4", "5.5", "2.5", "2.6", "2.3", "3", "4",
        "2.6", "5.2", "5.3", "3", "4", "3", "4",
    ]
    assert extract_citations("the decoder block (book §4.12), chapter 7, §9")[0] == ("4.12", "§4.12")
    assert [is_known(number) for number, _ in extract_citations("§4.12, §6.10, chapter 7, §9, ch. 6")] == [
        False, True, False, False, True
    ]
    assert extract_citations("chapter 4.2") == [("4.2", "chapter 4.2")]
    assert [r[:2] for r in extract_ranges("§5.2-§5.6, §5.4, §2.5–6, ch. 3-4, §4.5-4.3")] == [
        ("5.2", "5.6"), ("2.5", "2.6"), ("3", "4"), ("4.5", "4.3")
    ]


def test_the_scan_sees_the_repository(repository_citations):
    files = {path for path, *_ in repository_citations}
    assert len(repository_citations) >= 20, repository_citations
    assert "README.md" in files
    assert any(path.startswith("hf_hundredpage/models/") for path in files)


def _report(citations) -> str:
    return "\n".join(f"{path}:{line}: {number!r} in {citation!r}" for path, line, number, citation in citations)


def test_every_section_citation_names_a_section_of_the_book(repository_citations):
    bad = [item for item in repository_citations if "." in item[2] and not is_known(item[2])]
    assert not bad, f"citations of sections the book does not have (see BOOK_SECTIONS):\n{_report(bad)}"


def test_every_chapter_citation_names_chapters_1_to_6(repository_citations):
    bad = [item for item in repository_citations if "." not in item[2] and not is_known(item[2])]
    assert not bad, f"citations of chapters the book does not have (it has 1-6):\n{_report(bad)}"


def test_every_range_runs_forward():
    def key(number):
        return tuple(int(part) for part in number.split("."))

    bad = [
        (path, line, f"{start}..{end}", citation)
        for path, line, start, end, citation in scan_repository(extract_ranges)
        if ("." in start) == ("." in end) and key(start) >= key(end)
    ]
    assert not bad, f"ranges whose end does not come after their start:\n{_report(bad)}"
