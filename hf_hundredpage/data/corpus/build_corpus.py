"""Rebuild the embedded ``hundredpage-wiki`` corpus and its default tokenizer from their source.

The corpus behind the book's small-model chapters (§2.3 tokenization, §2.5 count-based models, ch. 3-4
pretraining) has to exist on a machine without the Hugging Face Hub, so a few megabytes of real English ship
inside the package. They come from a file that the gensim wheel on PyPI carries as test data:

    gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2

an English Wikipedia XML export of ~106 articles (CC BY-SA 3.0). This script reads that file straight out of
the wheel (gensim is never installed or imported), strips the wiki markup down to prose, splits the articles
deterministically into train / validation (~95 / 5 by bytes), and writes into this folder:

    train.txt.gz, validation.txt.gz   one paragraph per line, UTF-8, articles never straddle the two files
    LICENSE_AND_ATTRIBUTION.md         licence, attribution (every article with its permanent revision link)
    tokenizer/                         byte-level BPE (vocab 8192) trained on train.txt.gz, `save_pretrained` output

Usage (from the repository root, with the project's environment active)::

    python -m hf_hundredpage.data.corpus.build_corpus     # `pip download gensim==4.4.0 --no-deps` into a temp dir
    python -m hf_hundredpage.data.corpus.build_corpus --wheel /tmp/gensim_whl/gensim-4.4.0-*.whl

The output is byte-for-byte reproducible for a given wheel (gzip timestamps are zeroed, the split is a hash of
the article title).
"""

from __future__ import annotations

import argparse
import bz2
import glob
import gzip
import hashlib
import html
import io
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass
from pathlib import Path


CORPUS_DIR = Path(__file__).resolve().parent
WHEEL_MEMBER_PATTERN = re.compile(r"gensim/test/test_data/enwiki-latest-pages-articles1\.xml-.*-shortened\.bz2$")
VALIDATION_FRACTION = 0.05
TOKENIZER_VOCAB_SIZE = 8192
GENSIM_VERSION = "4.4.0"  # the wheel the shipped files were built from; any gensim 4.x wheel carries the same file

# Sections whose content is bibliography or navigation rather than prose.
DROPPED_SECTIONS = {
    "references", "notes", "see also", "external links", "further reading", "bibliography", "sources",
    "citations", "footnotes", "works cited", "notes and references", "references and notes",
    "selected bibliography", "gallery", "explanatory notes", "general references", "primary sources",
    "secondary sources", "cited sources", "literature", "links",
}  # fmt: skip

# Tags whose whole content is dropped (citations, formulas, galleries, source listings ...).
DROPPED_ELEMENTS = ("ref", "math", "gallery", "timeline", "source", "syntaxhighlight", "score", "imagemap", "chem")
# Tags that are removed while their content is kept.
KEPT_ELEMENTS = (
    "sub", "sup", "small", "big", "span", "div", "center", "blockquote", "code", "s", "tt", "li", "ol", "ul",
    "poem", "onlyinclude", "includeonly", "noinclude", "cite", "p", "u", "i", "b", "em", "strong", "abbr",
    "font", "nowiki", "hr", "references",
)  # fmt: skip


@dataclass
class Article:
    title: str
    revision_id: str
    paragraphs: list[str]

    @property
    def num_bytes(self) -> int:
        return sum(len(p.encode("utf-8")) + 1 for p in self.paragraphs)


# --------------------------------------------------------------------------------------------------------------
# Wiki markup -> prose
# --------------------------------------------------------------------------------------------------------------


def _split_template_args(body: str) -> list[str]:
    return [a.strip() for a in body.split("|")]


def _render_template(body: str) -> str:
    """Render the few inline templates that carry prose; every other template (citations, infoboxes,
    pronunciation, navigation) renders to nothing."""
    args = _split_template_args(body)
    name = args[0].lower().replace("_", " ")
    positional = [a for a in args[1:] if "=" not in a]
    if name == "convert" and positional:
        # {{convert|10|km|mi}} -> "10 km"; {{convert|10|to|20|km}} -> "10 to 20 km"
        if len(positional) >= 4 and positional[1] in {"to", "-", "–", "and", "or"}:
            return f"{positional[0]} {positional[1]} {positional[2]} {positional[3]}"
        return " ".join(positional[:2])
    if name in {"lang", "transl"} and positional:
        return positional[-1]
    if name in {"nowrap", "nobr", "small", "smaller", "big", "larger", "quote", "blockquote", "center", "keypress"}:
        return positional[0] if positional else ""
    if name == "nihongo" and positional:
        return positional[0]
    if name == "as of" and positional:
        return "As of " + " ".join(positional[:3][::-1]) if len(positional) > 1 else f"As of {positional[0]}"
    if name in {"mdash", "em dash"}:
        return "—"
    if name in {"ndash", "en dash", "snd"}:
        return "–"
    if name in {"pipe", "!"}:
        return "|"
    if name in {"'", "' \""}:
        return "'"
    return ""


_COMMENT = re.compile(r"<!--.*?-->", re.S)
_SELF_CLOSING = re.compile(r"<(?:ref|references)\b[^>]*/\s*>", re.I)
_DROPPED = re.compile(r"<({0})\b[^>]*>.*?</\1\s*>".format("|".join(DROPPED_ELEMENTS)), re.I | re.S)
_KEPT = re.compile(r"</?(?:{0})\b[^>]*>".format("|".join(KEPT_ELEMENTS)), re.I)
_BR = re.compile(r"<br\s*/?>", re.I)
_TEMPLATE = re.compile(r"\{\{([^{}]*)\}\}")
_TABLE = re.compile(r"\{\|(?:(?!\{\|)(?!\|\}).)*\|\}", re.S)
_LINK = re.compile(r"\[\[([^\[\]]*)\]\]")
_EXTERNAL_LINK = re.compile(r"\[(?:https?:|ftp:)?//[^\s\]]+\s*([^\]]*)\]")
_URL = re.compile(r"https?://\S+")
_HEADING = re.compile(r"^(=+)\s*(.*?)\s*\1\s*$")
_BOLD_ITALIC = re.compile(r"'{2,}")
_EMPTY_PARENS = re.compile(r"\(\s*[,;:]?\s*\)|\[\s*\]")
_LEADING_JUNK_IN_PARENS = re.compile(r"\(\s*(?:[,;:]\s*)*")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?)])")
_MULTISPACE = re.compile(r"[ \t\u00a0]+")
_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*$")
_NON_PROSE_LINKS = re.compile(  # images, categories, project pages, interlanguage links ("fr:", "zh-yue:")
    r"^(?:file|image|category|media|wikipedia|wp|template|help|portal|[a-z]{2,3}(?:-[a-z]+)?):", re.I
)


def _render_link(match: re.Match) -> str:
    target, _, label = match.group(1).partition("|")
    if _NON_PROSE_LINKS.match(target.strip()):
        return ""  # images, categories, interlanguage links
    text = label if label else target
    return text.split("|")[-1]


def _replace_innermost(pattern: re.Pattern, repl, text: str) -> str:
    while True:
        new = pattern.sub(repl, text)
        if new == text:
            return text
        text = new


def wiki_to_paragraphs(wikitext: str, min_words: int = 6) -> list[str]:
    """Turn one article's wikitext into clean prose paragraphs (one string per paragraph).

    Citations, templates other than a few inline ones, tables, images, categories and bibliography sections are
    dropped; internal links become their text, external links their label; headings are dropped. A paragraph
    is kept only when it has at least ``min_words`` words and ends like a sentence, which removes the residue of
    lists, captions and infobox lines.
    """
    text = _COMMENT.sub("", wikitext)
    text = _SELF_CLOSING.sub("", text)
    text = _DROPPED.sub("", text)
    text = _BR.sub(" ", text)
    text = _KEPT.sub("", text)
    text = _replace_innermost(_LINK, _render_link, text)
    text = _replace_innermost(_TEMPLATE, lambda m: _render_template(m.group(1)), text)
    text = _replace_innermost(_TABLE, "", text)
    text = _EXTERNAL_LINK.sub(lambda m: m.group(1), text)
    text = html.unescape(text)  # &nbsp; &ndash; ... that the XML layer left escaped once more
    text = _COMMENT.sub("", text)
    text = _DROPPED.sub("", text)
    text = _KEPT.sub("", text)

    paragraphs: list[str] = []
    skip_level = 0  # > 0 while inside a dropped section of that heading level
    for raw in text.split("\n"):
        line = raw.strip()
        heading = _HEADING.match(line)
        if heading:
            level, title = len(heading.group(1)), heading.group(2).strip().lower()
            if skip_level and level > skip_level:
                continue
            skip_level = level if title in DROPPED_SECTIONS else 0
            continue
        if skip_level or not line or line[0] in "|!{}" or line.startswith("__"):
            continue
        line = line.lstrip("*#:; ")
        line = _BOLD_ITALIC.sub("", line)
        line = _URL.sub("", line)
        line = _MULTISPACE.sub(" ", line)
        line = _SPACE_BEFORE_PUNCT.sub(r"\1", line)
        line = _replace_innermost(_EMPTY_PARENS, "", line)
        line = _LEADING_JUNK_IN_PARENS.sub("(", line)
        line = _SPACE_BEFORE_PUNCT.sub(r"\1", _MULTISPACE.sub(" ", line)).strip()
        if any(marker in line for marker in ("{{", "}}", "[[", "]]", "<", "|")):
            continue  # unbalanced markup left over: not worth guessing
        if len(line.split()) >= min_words and _SENTENCE_END.search(line):
            paragraphs.append(line)
    return paragraphs


# --------------------------------------------------------------------------------------------------------------
# Source -> articles -> files
# --------------------------------------------------------------------------------------------------------------


def download_gensim_wheel(dest: Path, version: str = GENSIM_VERSION) -> Path:
    """Fetch the gensim wheel (no dependencies, nothing installed) with the ordinary ``pip download``."""
    requirement = f"gensim=={version}" if version else "gensim"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", requirement, "--no-deps", "--only-binary", ":all:", "-d", str(dest)],
        check=True,
    )
    wheels = sorted(glob.glob(str(dest / "gensim-*.whl")))
    if not wheels:
        raise FileNotFoundError(f"pip download left no gensim wheel in {dest}")
    return Path(wheels[-1])


def read_wiki_dump(wheel_path: Path) -> tuple[str, bytes]:
    with zipfile.ZipFile(wheel_path) as wheel:
        members = [n for n in wheel.namelist() if WHEEL_MEMBER_PATTERN.search(n)]
        if not members:
            raise ValueError(f"{wheel_path} has no {WHEEL_MEMBER_PATTERN.pattern}; pass a gensim wheel.")
        return members[0], bz2.decompress(wheel.read(members[0]))


def parse_articles(xml_bytes: bytes) -> list[Article]:
    root = ET.parse(io.BytesIO(xml_bytes)).getroot()
    ns = {"m": root.tag.split("}")[0].strip("{")}
    articles = []
    for page in root.findall("m:page", ns):
        if page.findtext("m:ns", namespaces=ns) != "0" or page.find("m:redirect", ns) is not None:
            continue  # only real articles: no redirects, talk or project pages
        title = page.findtext("m:title", namespaces=ns)
        revision = page.find("m:revision", ns)
        paragraphs = wiki_to_paragraphs(revision.findtext("m:text", default="", namespaces=ns))
        if paragraphs:
            articles.append(Article(title, revision.findtext("m:id", namespaces=ns), paragraphs))
    return articles


def split_articles(articles: list[Article], fraction: float = VALIDATION_FRACTION):
    """Deterministic split by article: order by SHA-256 of the title, fill validation to ``fraction`` of bytes."""
    ordered = sorted(articles, key=lambda a: hashlib.sha256(a.title.encode("utf-8")).hexdigest())
    target = fraction * sum(a.num_bytes for a in articles)
    validation, size = [], 0
    for article in ordered:
        if size >= target:
            break
        if size + article.num_bytes <= 2 * target:  # skip giants that would overshoot the share by far
            validation.append(article)
            size += article.num_bytes
    chosen = {a.title for a in validation}
    train = [a for a in articles if a.title not in chosen]  # keep the dump's order inside each split
    validation = [a for a in articles if a.title in chosen]
    return train, validation


def write_split(path: Path, articles: list[Article]) -> int:
    data = "".join(p + "\n" for a in articles for p in a.paragraphs).encode("utf-8")
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as f:
        f.write(data)
    return len(data)


def _article_url(article: Article) -> str:
    return f"https://en.wikipedia.org/w/index.php?oldid={article.revision_id}"


def write_license(path: Path, wheel_name: str, member: str, train, validation, sizes) -> None:
    n_train, n_validation = (sum(len(a.paragraphs) for a in arts) for arts in (train, validation))
    rows = [
        f"| {a.title} | [{a.revision_id}]({_article_url(a)}) | {split} |"
        for split, arts in (("train", train), ("validation", validation))
        for a in arts
    ]
    path.write_text(
        f"""# hundredpage-wiki: licence and attribution

## What this is
`train.txt.gz` ({sizes['train']:,} bytes of UTF-8 text, {n_train:,} paragraphs, {len(train)} articles) and
`validation.txt.gz` ({sizes['validation']:,} bytes, {n_validation:,} paragraphs, {len(validation)} articles)
hold the prose of {len(train) + len(validation)} English Wikipedia articles, one paragraph per line. `tokenizer/` is a
byte-level BPE tokenizer (vocabulary {TOKENIZER_VOCAB_SIZE}) trained on `train.txt.gz` by
`hf_hundredpage.tokenization.train_bpe_tokenizer`.

## Source
The text was written by the contributors of the English Wikipedia (https://en.wikipedia.org). It is taken
from a shortened Wikipedia XML export (article revisions up to May 2016) that the gensim project ships as
test data inside its wheel on PyPI:

- wheel: `{wheel_name}`
- file: `{member}`

Only the Wikipedia text is used; no gensim code is copied or redistributed.

## Licence
Wikipedia's text is licensed under the Creative Commons Attribution-ShareAlike 3.0 Unported licence
(CC BY-SA 3.0, https://creativecommons.org/licenses/by-sa/3.0/). That licence allows anyone to copy,
redistribute and adapt the text, commercially or not, provided that (1) the authors are credited, (2) the
licence is named and linked, (3) changes are indicated, and (4) adaptations are shared under the same licence.
This folder meets those terms: the authors are credited below through a link to each article's exact revision,
whose history lists every contributor (the attribution method Wikipedia's own reuse policy names); the changes
are listed below; and the files in this folder (`train.txt.gz`, `validation.txt.gz` and, out of caution,
the `tokenizer/` derived from them) are distributed under CC BY-SA 3.0, not under the Apache-2.0 licence that
covers the rest of `hf_hundredpage`.

## What was changed
`build_corpus.py` (in this folder) rebuilds every file here from the wheel and documents each step:
- kept only articles (namespace 0), dropped redirects;
- removed citations (`<ref>`), comments, formulas, galleries, tables, infoboxes and other templates except a
  few inline ones rendered as text (`convert`, `lang`, `nowrap`, ...), images, categories and interlanguage
  links; internal and external links were replaced by their text; bold/italic marks removed; HTML entities
  decoded; headings and the sections "References", "See also", "External links", "Further reading" and similar
  were dropped;
- kept paragraphs (and list items) of at least 6 words that end like a sentence;
- split by article into train / validation (articles ordered by the SHA-256 of their title, the first ones
  filling ~{VALIDATION_FRACTION:.0%} of the bytes go to validation).

## Articles (title, revision with its authors, split)
| Title | Revision | Split |
| --- | --- | --- |
"""
        + "\n".join(rows)
        + "\n",
        encoding="utf-8",
    )


def build(wheel_path: Path, out_dir: Path = CORPUS_DIR, train_tokenizer: bool = True) -> dict[str, int]:
    member, xml_bytes = read_wiki_dump(wheel_path)
    articles = parse_articles(xml_bytes)
    train, validation = split_articles(articles)
    out_dir.mkdir(parents=True, exist_ok=True)
    sizes = {
        "train": write_split(out_dir / "train.txt.gz", train),
        "validation": write_split(out_dir / "validation.txt.gz", validation),
    }
    write_license(out_dir / "LICENSE_AND_ATTRIBUTION.md", wheel_path.name, member, train, validation, sizes)
    print(
        f"{len(articles)} articles -> train: {len(train)} articles, {sizes['train']:,} bytes; "
        f"validation: {len(validation)} articles, {sizes['validation']:,} bytes"
    )
    if train_tokenizer:
        from hf_hundredpage.tokenization import train_bpe_tokenizer

        texts = (p for a in train for p in a.paragraphs)
        tokenizer = train_bpe_tokenizer(texts, vocab_size=TOKENIZER_VOCAB_SIZE, min_frequency=2)
        tokenizer_dir = out_dir / "tokenizer"
        if tokenizer_dir.exists():
            shutil.rmtree(tokenizer_dir)
        tokenizer.save_pretrained(tokenizer_dir)
        n_tokens = sum(len(ids) for ids in tokenizer([p for a in validation for p in a.paragraphs])["input_ids"])
        print(f"tokenizer: vocab {len(tokenizer)}, validation bytes per token {sizes['validation'] / n_tokens:.2f}")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, help="a gensim wheel; downloaded with `pip download` when omitted")
    parser.add_argument("--gensim_version", default=GENSIM_VERSION, help="version to download when --wheel is omitted")
    parser.add_argument("--output_dir", type=Path, default=CORPUS_DIR)
    parser.add_argument("--skip_tokenizer", action="store_true", help="only rebuild the text files")
    args = parser.parse_args(argv)
    if args.wheel is not None:
        if not args.wheel.is_file():
            raise FileNotFoundError(f"No wheel at {args.wheel}; pass a gensim-*.whl or omit --wheel to download one.")
        build(args.wheel, args.output_dir, not args.skip_tokenizer)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            build(download_gensim_wheel(Path(tmp), args.gensim_version), args.output_dir, not args.skip_tokenizer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
