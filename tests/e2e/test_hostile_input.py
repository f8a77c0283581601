"""Hostile input: every class is a usable result or that message's recorded failure, never a stall or a crash."""

import time

import pytest

from labelrouter.errors import MessageParseError
from labelrouter.mail.clean import clean_body, strip_quotes_and_signature
from labelrouter.mail.parse import ParseLimits, decode_bytes, parse_message
from labelrouter.util.limits import BudgetExceeded, describe_error, time_budget
from tests import hostile


@pytest.mark.parametrize("codec", ["rot13", "base64", "idna", "zlib", "hex"])
def test_a_charset_that_is_not_a_text_encoding_is_detected_instead(codec):
    msg = parse_message(hostile.non_text_charset(codec))
    assert "tracking number 1Z999" in msg.body
    assert any(codec in w for w in msg.parse_warnings)


def test_mime_nested_a_thousand_levels_is_one_clear_error_at_once():
    with pytest.raises(MessageParseError, match="MIME bomb"):
        parse_message(hostile.deep_mime(1000))


def test_mime_deeper_than_the_cap_is_truncated_with_a_warning():
    msg = parse_message(hostile.deep_mime(40), limits=ParseLimits(max_mime_depth=8))
    assert msg.body == ""
    assert any("nested deeper than 8" in w for w in msg.parse_warnings)
    assert parse_message(hostile.deep_mime(5)).body == "hello from the bottom"


def test_a_to_header_of_200k_commas_is_cut_before_parsing():
    # Python's structured address parser is quadratic: uncapped, this header takes minutes.
    msg = parse_message(hostile.comma_bomb(200_000))
    assert msg.subject == "Team lunch on Friday" and "Lunch with the team" in msg.body
    assert any("To header of 200,005 bytes cut" in w for w in msg.parse_warnings)


def test_header_flood_keeps_the_first_fields():
    msg = parse_message(hostile.header_flood(100_000))
    assert msg.subject == "Weekly digest" and "newsletter digest" in msg.body
    assert any("header fields, kept the first 500" in w for w in msg.parse_warnings)


def test_recipients_are_parsed_linearly_and_correctly():
    raw = (b"From: a@example.com\r\nTo: Ann <ann@example.com>, \"Doe, Bob\" <bob@example.com>\r\n"
           b"Cc: carol@example.org\r\nSubject: s\r\n\r\nbody")
    assert parse_message(raw).recipients == ["ann@example.com", "bob@example.com", "carol@example.org"]


def test_time_budget_turns_a_stall_into_a_failure():
    with pytest.raises(BudgetExceeded, match="budget"), time_budget(0.05, "parsing this message"):
        while True:  # a parser stuck in pure Python
            pass
    with time_budget(5, "quick work"):  # a budget that is not exceeded leaves no timer behind
        sum(range(1000))
    time.sleep(0)  # no stray alarm fires later


def test_hidden_html_text_is_dropped():
    msg = parse_message(hostile.hidden_text_alert())
    assert "newsletter" not in msg.body and "unsubscribe" not in msg.body
    assert "New sign-in to your account" in msg.body
    assert any("hidden HTML text" in w for w in msg.parse_warnings)


@pytest.mark.parametrize(
    "html",
    [
        '<style>.pre { display: none }</style><span class="pre">SECRET</span><p>visible words here</p>',
        '<div style="visibility:hidden">SECRET</div><p>visible words here</p>',
        '<div style="opacity:0">SECRET</div><p>visible words here</p>',
        '<div style="max-height:0;overflow:hidden">SECRET</div><p>visible words here</p>',
        '<body bgcolor="#000"><font color="black">SECRET</font><p style="color:#fff">visible words here</p></body>',
        '<div style="background-color: rgb(250,250,250)"><span style="color:#FAFAFA">SECRET</span>visible words here</div>',
        '<div hidden>SECRET</div><p>visible words here</p>',
    ],
    ids=["stylesheet-class", "visibility", "opacity", "collapsed", "same-colour", "rgb-same-colour", "hidden-attr"],
)
def test_each_kind_of_invisible_html_is_dropped(html):
    text = clean_body(html, is_html=True)
    assert "SECRET" not in text and "visible words here" in text


def test_zero_width_characters_do_not_split_words():
    msg = parse_message(hostile.zero_width_words())
    assert "password reset code" in msg.body


def test_content_below_a_reply_marker_that_is_not_a_quote_is_kept():
    msg = parse_message(hostile.alert_below_reply_marker())
    assert "new sign-in to your account was detected" in msg.body.lower()


def test_a_real_quote_is_still_stripped_and_almost_nothing_keeps_the_text():
    reply = "Thanks, that works for me on Friday.\nOn Mon, Bob <b@example.com> wrote:\n> shall we meet?\n> Bob"
    assert strip_quotes_and_signature(reply) == "Thanks, that works for me on Friday."
    outlook = "Agreed, go ahead with the migration plan.\n-----Original Message-----\nFrom: Bob\nSent: Monday\nSubject: plan\n\nold"
    assert strip_quotes_and_signature(outlook) == "Agreed, go ahead with the migration plan."
    fyi = "FYI\n---------- Forwarded message ---------\nFrom: Bank <b@x>\nDate: Mon\nSubject: x\n\nNew sign-in detected"
    assert "New sign-in detected" in strip_quotes_and_signature(fyi)


def test_bad_base64_is_reported_after_decoding():
    msg = parse_message(hostile.bad_base64())
    assert "Your invoice" in msg.body
    assert any("Base64" in w for w in msg.parse_warnings)


def test_multipart_without_boundary_keeps_its_body():
    msg = parse_message(hostile.no_boundary())
    assert "boarding pass for flight TP123" in msg.body
    assert any("without a usable boundary" in w for w in msg.parse_warnings)


def test_a_lying_charset_is_redetected_and_reported():
    msg = parse_message(hostile.lying_charset())
    assert msg.body == "Grüße aus München: die Rechnung für April ist da."
    assert any("is UTF-8" in w for w in msg.parse_warnings)


def test_iso_8859_1_means_windows_1252():
    text, warning = decode_bytes("“Quoted” — café".encode("cp1252"), "iso-8859-1")
    assert text == "“Quoted” — café" and "windows-1252" in warning
    text, warning = decode_bytes("café".encode("latin-1"), "iso-8859-1")
    assert text == "café" and warning is None


def test_control_characters_from_a_wrong_charset_are_redetected():
    text, warning = decode_bytes("Привет, как дела? Всё хорошо.".encode(), "utf-16-le")
    assert "Привет" in text and warning and "detected" in warning


def test_describe_error_never_echoes_message_text():
    from labelrouter.state import EmailMessage

    with pytest.raises(Exception) as info:
        EmailMessage(id="", body="TOP SECRET BODY")
    assert "TOP SECRET" not in describe_error(info.value)
