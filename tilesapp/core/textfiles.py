"""Text files a person or another program wrote: settings, label and class lists, annotations.

Windows tools save them in more than one encoding — UTF-8 with a byte order mark (older
Notepad, Excel's "CSV UTF-8"), or UTF-16 with one (Notepad's "Unicode") — and each is read as
the text it holds, not refused.
"""

from __future__ import annotations

from pathlib import Path

_UTF16_MARKS = (b"\xff\xfe", b"\xfe\xff")


def decode_text(data: bytes) -> str:
    """The text of a file's bytes: UTF-16 when they start with its byte order mark, else UTF-8
    (its mark, if any, dropped). Raises UnicodeDecodeError when they are neither.

    >>> decode_text(b"\\xef\\xbb\\xbf0 0.5"), decode_text("0 0.5".encode("utf-16"))
    ('0 0.5', '0 0.5')
    """
    if data[:2] in _UTF16_MARKS:
        return data.decode("utf-16")
    return data.decode("utf-8-sig")


def read_text(path: str | Path) -> str:
    """The text of a file (see :func:`decode_text`); OSError / UnicodeDecodeError as reading does."""
    return decode_text(Path(path).read_bytes())
