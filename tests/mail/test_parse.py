"""The parser turns anything mail-shaped into a usable input, and anything else into one clear error."""

import mailbox
from pathlib import Path

import pytest

from labelrouter.errors import MessageParseError
from labelrouter.mail.parse import ParseLimits, parse_message, split_messages
from tests.helpers import eml


def test_plain_message_headers_and_snippet():
    msg = parse_message(eml("Hello there", "Line one.\n\nLine two."), limits=ParseLimits(snippet_chars=8))
    assert msg.subject == "Hello there"
    assert msg.sender == "Ann <ann@example.com>"
    assert msg.recipients == ["you@example.org"]
    assert msg.date is not None and msg.date.year == 2024
    assert msg.body == "Line one.\n\nLine two."
    assert msg.snippet == "Line one"
    assert msg.id == msg.rfc822_id  # no mailbox id given: the Message-ID is the id


def test_multipart_alternative_prefers_plain_text():
    raw = eml(
        "Alt",
        "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain version\r\n"
        "--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>html version</p>\r\n--b1--",
        content_type='multipart/alternative; boundary="b1"',
    )
    assert parse_message(raw).body == "plain version"


def test_html_only_becomes_text_without_markup_scripts_or_quotes():
    html = (
        "<html><head><style>p{color:red}</style><script>alert(1)</script></head><body>"
        "<h1>Your invoice</h1><p>Amount due:&nbsp;<b>42&nbsp;EUR</b></p><p>Thanks</p>"
        "<blockquote>old quoted text</blockquote></body></html>"
    )
    msg = parse_message(eml("Invoice", html, content_type="text/html; charset=utf-8"))
    assert "<" not in msg.body and "alert" not in msg.body and "color" not in msg.body
    assert "old quoted text" not in msg.body
    assert "Your invoice" in msg.body and "Amount due: 42 EUR" in msg.body


@pytest.mark.parametrize(
    ("charset", "text"),
    [("iso-8859-1", "Grüße aus München, à bientôt"), ("koi8-r", "Привет, как дела?"),
     ("shift_jis", "会議の議事録を送ります"), ("windows-1252", "“Quoted” — café")],
)
def test_declared_non_utf8_charsets_decode(charset, text):
    raw = (
        b"From: a@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
        + f"Content-Type: text/plain; charset={charset}\r\nContent-Transfer-Encoding: 8bit\r\n\r\n".encode()
        + text.encode(charset)
    )
    assert parse_message(raw).body == text


def test_undeclared_and_unknown_charsets_are_detected_and_flagged():
    body = "Grüße aus München und schöne Tage am See. Überall Bäume.".encode("latin-1")
    raw = b"From: a@example.com\r\nSubject: x\r\nContent-Type: text/plain\r\n\r\n" + body
    msg = parse_message(raw)
    assert "München" in msg.body and "Überall Bäume" in msg.body
    assert any("charset" in w for w in msg.parse_warnings)
    raw_unknown = b"From: a@example.com\r\nSubject: x\r\nContent-Type: text/plain; charset=x-no-such\r\n\r\nhello"
    msg = parse_message(raw_unknown)
    assert msg.body == "hello"
    assert any("unknown charset" in w for w in msg.parse_warnings)


def test_quoted_reply_and_signature_are_stripped():
    body = (
        "Sounds good, see you Friday.\n\nOn Mon, 3 Jun 2024 at 09:12, Bob <bob@example.com> wrote:\n"
        "> Shall we meet Friday?\n> Bob\n"
    )
    assert parse_message(eml("Re: Friday", body)).body == "Sounds good, see you Friday."
    signed = "Please find the report attached.\n\n-- \nAnn Example\nHead of Reports\n+1 555 0100"
    assert parse_message(eml("Report", signed)).body == "Please find the report attached."
    inline = "> earlier text\nMy answer is yes, let us ship on Monday."
    assert parse_message(eml("Re: q", inline)).body == "My answer is yes, let us ship on Monday."


def test_malformed_mime_gives_a_result_with_warnings():
    # Declares multipart but the boundary never appears: the email package records defects.
    raw = eml("Broken", "no boundaries here at all", content_type='multipart/mixed; boundary="zzz"')
    msg = parse_message(raw)
    assert msg.subject == "Broken"
    assert msg.parse_warnings  # defects are kept, not hidden


@pytest.mark.parametrize("raw", [b"", b"   \r\n\r\n  ", b"\x00\x01\x02 binary junk \xff\xfe", b"just some words"])
def test_empty_or_non_email_input_is_a_clear_error(raw):
    with pytest.raises(MessageParseError) as info:
        parse_message(raw)
    assert "\n" not in str(info.value)


def test_huge_message_is_capped_and_flagged():
    body = ("This is a long line of a very large newsletter. " * 100 + "\n") * 1100  # ~5.4 MB
    raw = eml("Huge", body)
    assert len(raw) > 5_000_000
    msg = parse_message(raw, limits=ParseLimits(max_body_chars=20_000))
    assert msg.truncated and len(msg.body) == 20_000
    with pytest.raises(MessageParseError, match="over the 1,000,000-byte cap"):
        parse_message(raw, limits=ParseLimits(max_bytes=1_000_000))


def test_attachments_are_not_read_as_body():
    raw = eml(
        "With attachment",
        "--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        "--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=log.txt\r\n\r\n"
        "ERROR ERROR ERROR\r\n--b--",
        content_type='multipart/mixed; boundary="b"',
    )
    assert parse_message(raw).body == "see attached"


def test_mbox_is_split_into_messages(tmp_path: Path):
    path = tmp_path / "in.mbox"
    box = mailbox.mbox(str(path))
    for i in range(3):
        box.add(eml(f"message {i}", f"From the body of message {i}"))
    box.flush()
    box.close()
    parts = split_messages(path.read_bytes())
    assert [parse_message(p).subject for p in parts] == ["message 0", "message 1", "message 2"]
    assert parse_message(parts[0]).body == "From the body of message 0"
    assert split_messages(eml("single", "x")) == [eml("single", "x")]
