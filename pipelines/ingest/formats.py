"""Word (`.docx`, python-docx) and HTML (`.html`/`.htm`, Beautiful Soup with lxml) files:
one document each, with the document's own title where it has one. Extra `formats`."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

from rag_splade import Document

from .decoding import decode_text
from .problems import ReadError

HTML_SUFFIXES = (".html", ".htm")
INSTALL = "pip install 'rag-splade[formats]'"
# Elements whose text is not the page's content.
HTML_SKIPPED = ("script", "style", "noscript", "template", "head", "svg", "iframe")
# Elements that end a line; inline ones (b, a, span, ruby...) join the text around them.
HTML_BLOCKS = (
    "p", "div", "br", "li", "dt", "dd", "tr", "table", "section", "article", "header",
    "footer", "main", "aside", "blockquote", "pre", "h1", "h2", "h3", "h4", "h5", "h6",
    "ul", "ol", "dl", "figure", "figcaption", "hr", "form", "nav",
)  # fmt: skip
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_BLANK_RUNS = re.compile(r"\n\s*\n\s*(\n\s*)+")


def read_docx(path: Path, source: str) -> Document:
    """The paragraphs and tables of a Word file, in document order (a table row per line,
    cells separated by tabs); `title` from the file's properties when set."""
    try:
        import docx
        from docx.opc.exceptions import PackageNotFoundError
        from docx.table import Table
    except ImportError as e:
        raise ImportError(f"reading .docx files needs python-docx: {INSTALL}") from e
    try:
        word = docx.Document(str(path))
        blocks: list[str] = []
        for item in word.iter_inner_content():
            if isinstance(item, Table):
                for row in item.rows:
                    cells = [cell.text.strip() for cell in row.cells]
                    blocks.append("\t".join(cells))
            else:
                blocks.append(item.text)
        title = (word.core_properties.title or "").strip()
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as e:
        raise ReadError(f"not a readable .docx file: {e}") from e
    metadata: dict[str, Any] = {"source": source}
    if title:
        metadata["title"] = title
    return Document(id=source, text=_tidy("\n".join(blocks)), metadata=metadata)


def read_html(raw: bytes, source: str, encoding: str) -> Document:
    """The visible text of an HTML page (scripts, styles and `<head>` left out); `title`
    from `<title>`, else the first `<h1>`. Decoded as the page's own `<meta charset>`
    says, else as `encoding`."""
    try:
        from bs4 import BeautifulSoup
    except ImportError as e:
        raise ImportError(f"reading HTML files needs beautifulsoup4 and lxml: {INSTALL}") from e
    declared = _CHARSET.search(raw[:4096])
    text = decode_text(raw, declared.group(1).decode("ascii") if declared else encoding)
    try:
        soup = BeautifulSoup(text, "lxml")
    except Exception as e:  # bs4.FeatureNotFound: lxml missing
        if type(e).__name__ == "FeatureNotFound":
            raise ImportError(f"reading HTML files needs lxml: {INSTALL}") from e
        raise
    heading = soup.title or soup.find("h1")
    title = heading.get_text(" ", strip=True) if heading is not None else ""
    for element in soup.find_all(HTML_SKIPPED):
        element.decompose()
    for cell in soup.find_all(["td", "th"]):
        cell.append("\t")
    for block in soup.find_all(HTML_BLOCKS):
        block.insert_before("\n")
        block.append("\n")
    metadata: dict[str, Any] = {"source": source}
    if title:
        metadata["title"] = title
    return Document(id=source, text=_tidy(soup.get_text()), metadata=metadata)


def _tidy(text: str) -> str:
    """Lines stripped, runs of blank lines cut to one."""
    lines = [line.strip() for line in text.splitlines()]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()
