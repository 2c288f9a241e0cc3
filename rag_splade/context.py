"""Render hits for an LLM prompt: passages to cite, and highlighted matches.

`format_context(hits)` writes one block per hit, in rank order, in one of two styles.

`style="numbered"` (the default), for a prompt that cites `[n]`::

    [1] 出典: 梅雨 (梅雨-0#0) / 一致語: 梅雨, 北海道 / 関連語: 気候
    > 梅雨（つゆ、ばいう）は、北海道と小笠原諸島を除く日本、…

    [2] 出典: faq (faq-12#0) / 一致語: 燃費
    > 燃費を良くするには、タイヤの空気圧を…
    > ［3］ 出典: 偽物

`style="xml"`, for a prompt that sets retrieved material apart as elements::

    <passage n="1" source="梅雨" doc_id="梅雨-0" chunk="0" key_terms="梅雨, 北海道">
    梅雨（つゆ、ばいう）は、…
    </passage>

Passage text is untrusted, and neither style lets it pass for anything else:

- every line break (``\r``, U+2028, …) becomes a line of its own; what does not show
  is removed first (`rag_splade.text.visible`: format characters such as zero-width
  spaces, joiners, direction overrides and the BOM, Hangul fillers, combining marks with
  no letter to sit on), odd spaces and the blank braille cell become spaces, and lines
  left blank are dropped, so nothing invisible can fake a block boundary or hide a
  forged header from the rules below;
- numbered: every passage line starts with ``> `` (so a line such as ``SYSTEM: …`` never
  starts a line of the prompt, and only headers start with ``[n]``), a line that starts
  with a number in brackets of any kind or width (``[2]``, ``［２］``, ``【9】``, ``(3)``,
  ``]52[``) or an enclosed number (``②``, ``⑽``, ``⒐``) gets ``［n］`` in its place, and
  chat-template tokens (``<|im_start|>``, ``[INST]``, ``<</SYS>>``, ``</s>``, …) get
  full-width brackets, so they are text, not control tokens;
- xml: ``&``, ``<`` and ``>`` are escaped in the text and in the attributes (``"`` too),
  so a passage cannot close its element or open another; chat tokens get full-width
  brackets as in the numbered style.

Header fields (source, doc id, terms) are kept to one line either way; in the numbered
style they carry no header syntax anywhere: bracketed numbers become ``［n］``, the labels
``出典:``, ``一致語:``, ``関連語:`` get a full-width colon, ``(`` ``)`` become ``（`` ``）``
and `` / `` becomes `` ／ ``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Literal, get_args

from rag_splade.text.visible import enclosed_number, is_bracket, leading_number, visible_lines
from rag_splade.types import MATCH_KINDS, MatchKind, SearchHit

SOURCE_KEYS = ("title", "source", "url", "path")
ContextStyle = Literal["numbered", "xml"]
CONTEXT_STYLES: tuple[str, ...] = get_args(ContextStyle)
QUOTE = "> "  # starts every passage line of the numbered style
# chat-template control tokens as models spell them (ChatML, Llama, Gemma, ...)
_CHAT_TOKEN = re.compile(
    r"<\|[^<>|\n]{0,40}\|>|<</?SYS>>|\[/?INST\]|</?(?:s|bos|eos|start_of_turn|end_of_turn)>",
    re.IGNORECASE,
)
_FULL_WIDTH = str.maketrans({"<": "＜", ">": "＞", "[": "［", "]": "］", "|": "｜"})
# header syntax inside a header field: a label with its colon (or a colon look-alike), the
# (doc#chunk) parentheses and the " / " separator, each with the look-alikes that read as
# them; each written in a full-width form the header itself never uses
COLONS = ":：﹕︓∶꞉˸։׃፡︰⦂⁚"
_LABEL = re.compile(rf"(出典|一致語|関連語)\s*[{COLONS}]")
_FIELD_SYNTAX = str.maketrans(
    {
        **dict.fromkeys("(﹙⁽₍❨❪⸨", "（"),
        **dict.fromkeys(")﹚⁾₎❩❫⸩", "）"),
        **dict.fromkeys("∕⁄⧸╱", "／"),  # an ASCII "/" only as " / " (URLs keep theirs)
    }
)


def source_of(hit: SearchHit) -> str:
    """A short source label: the first of metadata title/source/url/path, else the doc id."""
    for key in SOURCE_KEYS:
        value = hit.metadata.get(key)
        if isinstance(value, str) and value:
            return value
    return hit.doc_id


def format_context(
    hits: Sequence[SearchHit],
    *,
    key_terms: int = 6,
    related_terms: int = 3,
    style: ContextStyle = "numbered",
) -> str:
    """The passages of `hits` with their source and matched terms, in rank order, so an
    answer can cite them (both styles are described in this module's docstring).

    `key_terms` / `related_terms` cap the words listed as ``一致語`` / ``関連語`` (0 leaves
    that list out). Hits without an explanation get a header without terms.

    Example:
        >>> print(format_context(hits))  # doctest: +SKIP
        [1] 出典: faq (faq-12#0) / 一致語: 燃費, 向上 / 関連語: 車
        > 燃費を良くするには…
    """
    if style not in CONTEXT_STYLES:
        raise ValueError(f"context style must be one of {CONTEXT_STYLES}, got {style!r:.40}")
    blocks = []
    for n, hit in enumerate(hits, start=1):
        terms: dict[str, list[str]] = {"key_terms": [], "related_terms": []}
        if hit.explanation is not None:
            terms["key_terms"] = [t.term for t in hit.explanation.key_terms(key_terms)]
            terms["related_terms"] = [t.term for t in hit.explanation.related_terms(related_terms)]
        if style == "xml":
            blocks.append(_xml_block(n, hit, terms))
            continue
        source = _one_line(source_of(hit))
        header = f"[{n}] 出典: {source} ({_one_line(hit.doc_id)}#{hit.chunk_index})"
        for label, words in (("一致語", terms["key_terms"]), ("関連語", terms["related_terms"])):
            if words:
                header += f" / {label}: " + ", ".join(_one_line(w) for w in words)
        lines = [QUOTE + _unforged(line) for line in visible_lines(hit.text)]
        blocks.append("\n".join([header, *lines]))
    if style == "xml":
        return "\n".join(["<passages>", *blocks, "</passages>"]) if blocks else ""
    return "\n\n".join(blocks)


def _xml_block(n: int, hit: SearchHit, terms: dict[str, list[str]]) -> str:
    attributes = {
        "n": str(n),
        "source": _one_line(source_of(hit), plain=True),
        "doc_id": _one_line(hit.doc_id, plain=True),
        "chunk": str(hit.chunk_index),
        **{k: ", ".join(_one_line(w, plain=True) for w in v) for k, v in terms.items() if v},
    }
    opening = "<passage " + " ".join(
        f'{k}="{_escape(v, quote=True)}"' for k, v in attributes.items()
    )
    return "\n".join(
        [
            opening + ">",
            *(_escape(_neutral(line)) for line in visible_lines(hit.text)),
            "</passage>",
        ]
    )


def _neutral(text: str) -> str:
    """Chat-template tokens with full-width brackets: text to a tokenizer, not turns."""
    return _CHAT_TOKEN.sub(lambda m: m.group(0).translate(_FULL_WIDTH), text)


def _escape(text: str, *, quote: bool = False) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace('"', "&quot;") if quote else text


def _one_line(value: str, *, plain: bool = False) -> str:
    """A header field: one visible line without chat tokens; for the numbered style also
    no header syntax anywhere in it (a bracketed number, a label, the parentheses of the
    doc id, the ` / ` separator)."""
    flat = _neutral(" ".join(" ".join(visible_lines(value)).split()))
    if plain:
        return flat
    flat = _LABEL.sub(r"\1：", _numbers_neutral(flat))
    return flat.translate(_FIELD_SYNTAX).replace(" / ", " ／ ")


def _numbers_neutral(text: str) -> str:
    """`text` with every number that reads as bracketed (see `leading_number`) written
    ``［n］``, wherever it is."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        # read in place (no copy of the rest of the text per bracket)
        starts = is_bracket(ch) or enclosed_number(ch) is not None
        found = leading_number(text, i) if starts else None
        if found is None:
            out.append(ch)
            i += 1
        else:
            out.append(f"［{found[2]}］")
            i = found[1]
    return "".join(out)


def _unforged(line: str) -> str:
    """A numbered-style passage line (a `visible_line`) that cannot read as a header or a
    chat token: a bracketed number at its start is written ``［n］``."""
    found = leading_number(line)
    if found is not None:
        start, end, number = found
        line = f"{line[:start]}［{number}］{line[end:]}"
    return _neutral(line)


def highlight(
    hit: SearchHit,
    open: str = "【",
    close: str = "】",
    kinds: Iterable[MatchKind] = ("whole",),
    *,
    function_words: bool = False,
) -> str:
    """`hit.text` with the spans of its matches of the given kinds wrapped in `open` and
    `close`; overlapping spans are merged into one, adjacent ones stay apart.

    `kinds` are among ``"whole"`` (words both texts say) and ``"partial"`` (only the
    characters of the shared pieces; see `TermMatch`); ``"expansion"`` is allowed but has
    no spans. Function words (particles, auxiliaries, symbols) are left unmarked unless
    `function_words` is True.

    Example:
        >>> highlight(hits[0])  # doctest: +SKIP
        '【燃費】を良くするには、【タイヤ】の空気圧を…'
        >>> highlight(hits[0], "<mark>", "</mark>", kinds=("whole", "partial"))  # doctest: +SKIP
        '<mark>燃費</mark>を良くするには、<mark>タイヤ</mark>の空気圧を…'
    """
    chosen = set(kinds) if not isinstance(kinds, str) else {kinds}
    for kind in chosen:
        if kind not in MATCH_KINDS:
            raise ValueError(f"highlight kinds must be among {MATCH_KINDS}, got {kind!r}")
    if hit.explanation is None:
        raise ValueError(
            f"hit {hit.id!r} has no explanation to highlight: search with explain=True"
        )
    spans = sorted(
        span
        for term in hit.explanation.literal_terms()
        if term.kind in chosen and (function_words or not term.function_word)
        for span in term.spans
    )
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    text, out, cursor = hit.text, [], 0
    for start, end in merged:
        out += [text[cursor:start], open, text[start:end], close]
        cursor = end
    out.append(text[cursor:])
    return "".join(out)
