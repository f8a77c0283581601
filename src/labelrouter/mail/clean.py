"""Body cleaning: HTML to text, quoted replies and signatures stripped, whitespace normalised."""

from __future__ import annotations

import re
import warnings

from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning

_BLOCK_TAGS = ("p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote")

# A line that opens the quoted original in a reply ("On Mon, 3 Jun 2024, Ann <a@x> wrote:").
_REPLY_HEADER = re.compile(
    r"^\s*(On\s.{0,200}?wrote:|Le\s.{0,200}?a écrit\s?:|Am\s.{0,200}?schrieb.{0,80}:|El\s.{0,200}?escribió:)\s*$",
    re.IGNORECASE,
)
_FORWARD_OR_ORIGINAL = re.compile(r"^\s*-{2,}\s*(Original Message|Forwarded message)\s*-{2,}\s*$", re.IGNORECASE)
_OUTLOOK_HEADER = re.compile(r"^\s*From:\s.+$", re.IGNORECASE)
_SIGNATURE_DELIMITER = re.compile(r"^--\s?$")
_MOBILE_SIGNATURE = re.compile(r"^\s*(Sent from my \w+|Get Outlook for \w+)", re.IGNORECASE)


def html_to_text(html: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "head", "title", "meta", "noscript"]):
        tag.decompose()
    for tag in soup.find_all("blockquote"):  # quoted replies in HTML mail
        tag.decompose()
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.insert_before("\n")
    return soup.get_text()


def strip_quotes_and_signature(text: str) -> str:
    """Keep what the sender wrote: drop quoted lines, the quoted original and the signature."""
    kept: list[str] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if _REPLY_HEADER.match(line) or _FORWARD_OR_ORIGINAL.match(line):
            break
        # Outlook quotes start with a From:/Sent: block with no marker line.
        if _OUTLOOK_HEADER.match(line) and i + 1 < len(lines) and re.match(r"^\s*(Sent|Date):", lines[i + 1], re.I):
            break
        if _SIGNATURE_DELIMITER.match(line) or _MOBILE_SIGNATURE.match(line):
            break
        if line.lstrip().startswith(">"):
            continue
        kept.append(line)
    # A message that is nothing but a quote (a bare forward) keeps its text rather than becoming empty.
    cleaned = "\n".join(kept)
    return cleaned if cleaned.strip() else text


def normalize_whitespace(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    text = re.sub(r"[ \t\f\v]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def clean_body(text: str, *, is_html: bool = False) -> str:
    if is_html:
        text = html_to_text(text)
    return normalize_whitespace(strip_quotes_and_signature(normalize_whitespace(text)))
