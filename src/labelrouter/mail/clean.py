"""Body cleaning: HTML to text, hidden text dropped, quoted replies and signatures stripped, whitespace
normalised.

What the router embeds must be what a person reading the message sees. Text an HTML sender hides
(`display:none`, `visibility:hidden`, zero font size, text coloured like its background) and invisible
Unicode format characters are dropped, so a sender cannot steer the label with words nobody reads. Quote
stripping cuts at a reply marker only when a quote of an earlier message really follows it, then at the
first reply header mail-parser-reply recognises in any of its languages, and never leaves almost nothing:
an "On … wrote:" line cannot make the real content below it vanish.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
import warnings as py_warnings

from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning
from bs4.element import Tag
from mailparser_reply.constants import MAIL_LANGUAGES

_BLOCK_TAGS = ("p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote")

# A line that opens the quoted original in a reply ("On Mon, 3 Jun 2024, Ann <a@x> wrote:").
_REPLY_HEADER = re.compile(
    r"^\s*(On\s.{0,200}?wrote:|Le\s.{0,200}?a écrit\s?:|Am\s.{0,200}?schrieb.{0,80}:|El\s.{0,200}?escribió:)\s*$",
    re.IGNORECASE,
)
_FORWARD_OR_ORIGINAL = re.compile(r"^\s*-{2,}\s*(Original Message|Forwarded message)\s*-{2,}\s*$", re.IGNORECASE)
_QUOTED_HEADER_FIELD = re.compile(r"^\s*\*?(From|Sent|Date|To|Cc|Subject|De|Von|Envoyé|Gesendet)\s*:\*?\s", re.I)
_SIGNATURE_DELIMITER = re.compile(r"^--\s?$")
_MOBILE_SIGNATURE = re.compile(r"^\s*(Sent from my \w+|Get Outlook for \w+)", re.IGNORECASE)
# Less than this many letters or digits left after stripping is "almost nothing": keep the original.
MIN_KEPT_ALNUM = 20

# Invisible characters that are not category Cf (format) but render as nothing.
_INVISIBLE_EXTRA = {"\u034f", "\u115f", "\u1160", "\u17b4", "\u17b5", "\u180e", "\u3164", "\uffa0"}


def drop_invisible_chars(text: str) -> str:
    """Remove zero-width and other invisible format characters (U+200B, U+200D, U+FEFF, soft hyphen, bidi
    controls, ...) that split or hide words from a reader but not from a model."""
    if text.isascii():
        return text
    return "".join(c for c in text if c not in _INVISIBLE_EXTRA and unicodedata.category(c) != "Cf")


# -- hidden HTML ------------------------------------------------------------------------------------------
_NAMED_COLORS = {"white": "#ffffff", "black": "#000000", "red": "#ff0000", "green": "#008000",
                 "blue": "#0000ff", "yellow": "#ffff00", "gray": "#808080", "grey": "#808080",
                 "silver": "#c0c0c0", "transparent": "transparent"}
_ZERO = r"0*\.?0*(px|pt|em|rem|%|ex|ch|vw|vh)?"


def _declarations(style: str) -> dict[str, str]:
    out = {}
    for item in style.split(";"):
        if ":" in item:
            key, value = item.split(":", 1)
            out[key.strip().lower()] = value.strip().lower().replace("!important", "").strip()
    return out


def _color(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip().lower().split()[0] if value.strip() else ""
    if value in _NAMED_COLORS:
        return _NAMED_COLORS[value]
    if re.fullmatch(r"#[0-9a-f]{3}", value):
        return "#" + "".join(c * 2 for c in value[1:])
    if re.fullmatch(r"#[0-9a-f]{6}", value):
        return value
    rgb = re.fullmatch(r"rgba?\((\d+)\s*,\s*(\d+)\s*,\s*(\d+)(?:\s*,\s*([\d.]+))?\)", value.replace(" ", ""))
    if rgb:
        if rgb.group(4) is not None and float(rgb.group(4)) == 0:
            return "transparent"
        return "#" + "".join(f"{min(int(rgb.group(i)), 255):02x}" for i in (1, 2, 3))
    return None


def _hides(decl: dict[str, str]) -> bool:
    if decl.get("display") == "none" or decl.get("visibility") in ("hidden", "collapse"):
        return True
    if decl.get("mso-hide") == "all":
        return True
    if re.fullmatch(_ZERO, decl.get("font-size", "x")) or re.fullmatch(_ZERO, decl.get("opacity", "x")):
        return True
    clipped = decl.get("overflow") == "hidden"
    if clipped and any(re.fullmatch(_ZERO, decl.get(k, "x")) for k in ("max-height", "height", "width", "max-width")):
        return True
    return _color(decl.get("color")) == "transparent"


def _background(tag: Tag) -> str:
    node: Tag | None = tag
    while node is not None and isinstance(node, Tag):
        decl = _declarations(str(node.get("style") or ""))
        found = _color(decl.get("background-color")) or _color(decl.get("background")) or _color(
            str(node.get("bgcolor") or ""))
        if found and found != "transparent":
            return found
        node = node.parent
    return "#ffffff"  # mail clients render on white


def _stylesheet_hidden(soup: BeautifulSoup) -> tuple[set[str], set[str]]:
    """Classes and ids that simple `<style>` rules hide (`.x{display:none}`, `#y{font-size:0}`)."""
    classes: set[str] = set()
    ids: set[str] = set()
    for style in soup.find_all("style"):
        for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", style.get_text() or ""):
            if not _hides(_declarations(body)):
                continue
            for selector in selectors.split(","):
                simple = re.fullmatch(r"\s*(?:[a-z0-9]*)([.#])([\w-]+)\s*", selector, re.I)
                if simple:
                    (classes if simple.group(1) == "." else ids).add(simple.group(2))
    return classes, ids


def _is_hidden(tag: Tag, classes: set[str], ids: set[str]) -> bool:
    if tag.has_attr("hidden"):
        return True
    if classes and any(c in classes for c in (tag.get("class") or [])):
        return True
    if ids and tag.get("id") in ids:
        return True
    decl = _declarations(str(tag.get("style") or ""))
    if _hides(decl):
        return True
    color = _color(decl.get("color")) or (_color(str(tag.get("color"))) if tag.name == "font" else None)
    return color is not None and color == _background(tag)


def html_to_text(html: str, warnings: list[str] | None = None) -> str:
    with py_warnings.catch_warnings():
        py_warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        soup = BeautifulSoup(html, "html.parser")
    classes, ids = _stylesheet_hidden(soup)
    for tag in soup(["script", "style", "head", "title", "meta", "noscript", "template"]):
        tag.decompose()
    for tag in soup.find_all("blockquote"):  # quoted replies in HTML mail
        tag.decompose()
    hidden_chars = 0
    for tag in soup.find_all(True):
        if tag.decomposed or not _is_hidden(tag, classes, ids):
            continue
        hidden_chars += len(tag.get_text())
        tag.decompose()
    if hidden_chars and warnings is not None:
        warnings.append(f"dropped {hidden_chars:,} characters of hidden HTML text")
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.insert_before("\n")
    return soup.get_text()


# -- quotes and signatures --------------------------------------------------------------------------------
def _quote_follows(lines: list[str], start: int) -> bool:
    """A quote of an earlier message follows: `>`-prefixed lines, or a From:/Date:/Subject: header block."""
    following = [line for line in lines[start : start + 12] if line.strip()][:6]
    if not following:
        return True  # a marker with nothing after it hides nothing
    quoted = sum(1 for line in following if line.lstrip().startswith(">"))
    headers = sum(1 for line in following if _QUOTED_HEADER_FIELD.match(line))
    return quoted * 2 >= len(following) or headers >= 2


def _alnum(text: str, at_most: int) -> int:
    """Letters and digits in `text`, counted up to `at_most` (the check needs no more; a long body was
    counted character by character in Python for every message)."""
    return sum(1 for _ in itertools.islice(filter(str.isalnum, text), at_most))


def _reply_headers() -> re.Pattern[str]:
    """mail-parser-reply's reply headers, every language it knows: the "wrote" lines ("On … wrote:" wrapped
    over two lines, "Am … schrieb", "Le … a écrit :", "Il giorno … ha scritto:", …) and, beyond English,
    blocks of two or more header fields ("Von:/Gesendet:", "De:/Envoyé:"). English header blocks are left to
    our own pass: a single "To:/cc:" pair also opens the forwarded mail of Lotus Notes, whose text is what
    the message is about."""
    def pattern(value: str | list[str] | None) -> str:
        return "|".join(value) if isinstance(value, list) else (value or "")

    english_block = "note\nFrom: a\nTo: b\nSubject: c"
    parts = []
    for language, spec in MAIL_LANGUAGES.items():
        if len(language) != 2:  # two-letter codes only: the list also holds a person's own sign-off
            continue
        parts.append(pattern(spec.get("wrote_header")))
        block = pattern(spec.get("from_header"))
        if block and not re.search(block, english_block, re.MULTILINE | re.IGNORECASE):  # some use English fields
            parts.append(block)
    return re.compile("|".join(f"(?:{p})" for p in parts if p), re.MULTILINE | re.IGNORECASE)


_REPLY_HEADERS = _reply_headers()


def _latest_reply(text: str) -> str:
    """The text above the first reply header mail-parser-reply's patterns recognise (`_reply_headers`)."""
    found = _REPLY_HEADERS.search(text)
    return text[: found.start()] if found and found.start() > 0 else text


def strip_quotes_and_signature(text: str) -> str:
    """Keep what the sender wrote: drop quoted lines, the quoted original and the signature. Our own pass
    (quote markers, "On … wrote:" followed by a quote, the Outlook header block, signature delimiters), then
    mail-parser-reply's reply headers in a dozen languages (`_reply_headers`)."""
    kept: list[str] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if _REPLY_HEADER.match(line) or _FORWARD_OR_ORIGINAL.match(line):
            if _quote_follows(lines, i + 1):
                break
            kept.append(line)  # not followed by a quote: what comes after is the sender's own content
            continue
        # Outlook quotes start with a From:/Sent: block with no marker line.
        if re.match(r"^\s*From:\s.+$", line, re.I) and i + 1 < len(lines) and re.match(
                r"^\s*(Sent|Date):", lines[i + 1], re.I):
            break
        if _SIGNATURE_DELIMITER.match(line) or _MOBILE_SIGNATURE.match(line):
            break
        if line.lstrip().startswith(">"):
            continue
        kept.append(line)
    cleaned = _latest_reply("\n".join(kept))
    # Stripping that leaves almost nothing (a bare forward, "FYI" above a quote) keeps the whole text.
    needed = _alnum(text, MIN_KEPT_ALNUM)
    return cleaned if _alnum(cleaned, needed) >= needed else text


def normalize_whitespace(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    text = re.sub(r"[ \t\f\v]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def clean_body(text: str, *, is_html: bool = False, warnings: list[str] | None = None) -> str:
    if is_html:
        text = html_to_text(text, warnings)
    text = drop_invisible_chars(text)
    return normalize_whitespace(strip_quotes_and_signature(normalize_whitespace(text)))
