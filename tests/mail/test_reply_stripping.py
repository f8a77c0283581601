"""Quoted replies in several languages and layouts are cut from what the head reads (our own pass, then
mail-parser-reply's headers); content is never stripped to almost nothing."""

from __future__ import annotations

import pytest

from labelrouter.mail.clean import clean_body, strip_quotes_and_signature

QUOTED = "Hallo Bob, anbei die Rechnung für Juni mit allen Positionen und der Bankverbindung."

REPLIES = {
    "German Outlook": ("Danke, passt so. Ich überweise morgen.",
                       "Von: Anna Schmidt <anna@example.de>\nGesendet: Montag, 3. Juni 2024 10:00\n"
                       "An: Bob <bob@example.de>\nBetreff: Rechnung Juni\n\n" + QUOTED),
    "German Gmail": ("Danke, passt so. Ich überweise morgen.",
                     "Am Mo., 3. Juni 2024 um 10:00 Uhr schrieb Anna Schmidt <anna@example.de>:\n\n" + QUOTED),
    "French": ("Merci pour le contrat, je le relis demain matin.",
               "Le lun. 3 juin 2024 à 10:00, Anne Dupont <anne@example.fr> a écrit :\n\n"
               "Bonjour, voici le contrat signé pour la location du bureau et les annexes."),
    "Italian": ("Va bene, grazie mille per il preventivo aggiornato.",
                "Il giorno lun 3 giu 2024 alle ore 10:00 Anna Rossi <anna@example.it> ha scritto:\n\n"
                "Ti mando il preventivo aggiornato con i costi di trasporto e montaggio."),
    "Spanish": ("Perfecto, gracias por el presupuesto revisado.",
                "El lun, 3 jun 2024 a las 10:00, Ana García <ana@example.es> escribió:\n"
                "> Te envío el presupuesto actualizado con el transporte incluido."),
    "English Gmail wrapped over two lines": ("Sounds good, see you on Tuesday at the office.",
                                             "On Mon, Jun 3, 2024 at 10:00 AM Ann Example <ann@example.com>\nwrote:\n\n"
                                             "Shall we meet on Tuesday at the office to go over the budget for Q3?"),
    "Polish": ("Dziękuję, faktura się zgadza i zapłacę jutro.",
               "Dnia 3.06.2024 o 10:00, Anna Nowak napisał(a):\n\n"
               "Dzień dobry, w załączniku faktura za czerwiec wraz z numerem konta."),
}


@pytest.mark.parametrize("layout", sorted(REPLIES))
def test_a_reply_keeps_only_what_its_sender_wrote(layout):
    own, quoted = REPLIES[layout]
    body = f"{own}\n\n{quoted}"
    assert strip_quotes_and_signature(body).strip() == own
    assert clean_body(body) == own


def test_a_message_that_is_only_a_forwarded_original_is_kept_whole():
    """Cutting at the header would leave nothing: the guard keeps the text."""
    body = "Von: Bank <service@bank.example>\nGesendet: Montag\nBetreff: Anmeldung\n\nNeue Anmeldung auf Ihrem Konto erkannt."
    assert "Neue Anmeldung auf Ihrem Konto erkannt" in strip_quotes_and_signature(body)


def test_a_message_without_a_reply_is_unchanged():
    body = "Am Montag schreiben wir die Rechnung für das Projekt, bitte die Stunden bis Freitag eintragen."
    assert clean_body(body) == body
