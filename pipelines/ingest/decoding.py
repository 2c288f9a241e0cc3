"""Bytes to text for every reader: a byte-order mark dropped, a bad byte named."""

from __future__ import annotations

from .problems import ReadError


def decode_text(raw: bytes, encoding: str) -> str:
    """`raw` decoded as `encoding` (UTF-8 with or without a byte-order mark).

    Raises:
        ReadError: bytes that are not `encoding` (the first bad one and its offset), or an
            encoding Python does not know.
    """
    codec = "utf-8-sig" if encoding.replace("_", "-").lower() in ("utf-8", "utf8") else encoding
    try:
        return raw.decode(codec)
    except UnicodeDecodeError as e:
        raise ReadError(
            f"not valid {encoding} (byte {raw[e.start : e.start + 1]!r} at offset {e.start}); "
            "convert the file or pass --encoding"
        ) from e
    except LookupError as e:
        raise ReadError(f"unknown encoding {encoding!r}") from e
