"""Text helpers for parsers: charsets, HTML to text, whitespace, language."""

from __future__ import annotations

import codecs
import re
from html.parser import HTMLParser

from shared.contract.enums import Language

from .errors import UnparseablePayload

# Declared charsets that real mail uses loosely: decode with the superset so no character is lost.
_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "euc-cn": "gb18030",
    "hz-gb-2312": "hz",
    "big5": "big5hkscs",
    "x-big5": "big5hkscs",
    "cn-big5": "big5hkscs",
    "ks_c_5601-1987": "cp949",
    "iso-8859-1": "cp1252",
    "us-ascii": "utf-8",
    "ascii": "utf-8",
    "unknown-8bit": "utf-8",
    # names mail clients write that Python's codecs do not know (WHATWG Encoding aliases)
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "iso-8859-8-e": "iso-8859-8",
    "iso-8859-6-e": "iso-8859-6",
    "ks_c_5601-1989": "cp949",
    "ksc5601": "cp949",
    "x-sjis": "shift_jis",
    "x-euc-jp": "euc_jp",
    "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman",
    "unicode-1-1-utf-7": "utf-7",
    "x-unicode20utf8": "utf-8",
    "ansi_x3.4-1968": "utf-8",
    "x-user-defined": "cp1252",
    "windows-874": "cp874",
    "gb_2312-80": "gb18030",
    "chinese": "gb18030",
}
# Tried in order when nothing (or nothing usable) is declared.
_FALLBACKS = ("utf-8", "gb18030", "big5hkscs")


def decode_bytes(data: bytes, declared: str | None) -> str:
    """Decode with the declared charset (via its superset), else the common ones, never failing."""
    candidates: list[str] = []
    if declared:
        name = declared.strip().strip('"').lower()
        name = _SUPERSETS.get(name, name)
        try:
            candidates.append(codecs.lookup(name).name)
        except LookupError:
            pass
    candidates += [c for c in _FALLBACKS if c not in candidates]
    for charset in candidates:
        try:
            return data.decode(charset)
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode(candidates[0], errors="replace")


def decode_utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnparseablePayload(f"{what} is not valid UTF-8 (byte {exc.start})") from exc


_BLOCK = {
    "p", "div", "br", "li", "tr", "table", "h1", "h2", "h3", "h4", "h5", "h6",
    "blockquote", "pre", "section", "article", "header", "footer", "ul", "ol", "hr",
}
_SKIP = {"script", "style", "head", "title", "noscript", "template"}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip += 1
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    return normalise_whitespace("".join(parser.parts))


_CTRL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES = re.compile(r"[ \t\u00a0\u3000]+")
_BLANKS = re.compile(r"\n{3,}")


def normalise_whitespace(text: str) -> str:
    text = _CTRL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def one_line(text: str | None, limit: int = 300) -> str | None:
    """A header-like value: no line breaks or control characters (no CR/LF injection), bounded."""
    if text is None:
        return None
    cleaned = _SPACES.sub(" ", _CTRL.sub("", text.replace("\r", " ").replace("\n", " "))).strip()
    return cleaned[:limit] or None


_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")


def detect_language(text: str) -> Language:
    """zh when Han characters are a real share of the letters, else en.

    Chinese messages often carry Latin product names or order numbers; one Han character in ten
    letters is already Chinese writing, while English text almost never has any.
    """
    han = len(_HAN.findall(text))
    latin_words = len(re.findall(r"[A-Za-z]+", text))
    if han and han >= max(1, latin_words // 4):
        return Language.zh
    return Language.en
