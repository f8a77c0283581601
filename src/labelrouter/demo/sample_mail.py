"""Sample mail for the demo: written by the labelrouter authors for this purpose (no real people).

Each entry is (expected label, sender, subject, body, format). Formats exercise the parser the way real
mail does: plain text, HTML-only, multipart/alternative, a reply with a quote and a signature, latin-1.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage as MIMEMessage
from email.utils import format_datetime, make_msgid

SAMPLES: list[tuple[str, str, str, str, str]] = [
    ("💼-work-projects", "Priya Natarajan <priya@northwind.example>", "Q3 dashboard: release candidate ready for review",
     "Hi team,\n\nThe release candidate for the Q3 analytics dashboard is on staging. Please review the new "
     "filters and the export bug fix before Thursday so we can ship on Friday. The open issues are listed in the "
     "tracker.\n\nThanks,\nPriya", "reply"),
    ("💼-work-projects", "GitLab <gitlab@northwind.example>", "Merge request !482: Fix rounding in invoice totals",
     "Marco Rossi requested your review on merge request !482 'Fix rounding in invoice totals' in "
     "billing-service. 3 files changed, 41 additions, 12 deletions. Pipeline passed.", "plain"),
    ("💼-work-projects", "Daniel Okafor <daniel@client-co.example>", "Updated project timeline and deliverables",
     "Hello,\n\nAttached is the revised timeline for the website migration project. We moved the content "
     "freeze to May 12 and the go-live to May 26. Could you confirm your team can deliver the API changes by "
     "then?\n\nBest regards,\nDaniel", "plain"),
    ("💼-work-meetings", "Calendar <calendar@northwind.example>", "Invitation: Sprint planning @ Tue 10:00 - 11:00",
     "You have been invited to the following event.\n\nSprint planning\nWhen: Tuesday 10:00 – 11:00\nWhere: "
     "Meeting room 3 / video call\nAgenda: review backlog, estimate stories, agree on sprint goal.\n\nAccept | "
     "Decline | Maybe", "html"),
    ("💼-work-meetings", "Sofia Lindqvist <sofia@northwind.example>", "Can we move our 1:1 to Thursday?",
     "Hi, something came up on Wednesday afternoon. Could we reschedule our weekly one-on-one meeting to "
     "Thursday at 2pm? Same video call link.\n\nSofia", "plain"),
    ("💼-work-meetings", "Lena Fischer <lena@northwind.example>", "Minutes: architecture review meeting",
     "Here are the minutes of today's architecture review meeting. Decisions: we adopt Postgres for the event "
     "store; action items for Ravi and Tom are listed below. Next meeting in two weeks.", "plain"),
    ("💼-work-admin", "HR Team <hr@northwind.example>", "Your payslip for March is available",
     "Your payslip for March has been published in the employee portal. Log in to view your salary, tax and "
     "pension deductions. Contact payroll with any questions.", "html"),
    ("💼-work-admin", "Expenses <expenses@northwind.example>", "Expense report EXP-2291 approved",
     "Your expense report EXP-2291 (Client visit Berlin, 412.50 EUR) was approved by your manager and will be "
     "reimbursed with the next payroll run.", "plain"),
    ("💼-work-admin", "IT Service Desk <it@northwind.example>", "Your new laptop is ready for pickup",
     "Your replacement laptop has been set up with your company account. Please pick it up at the IT desk on "
     "floor 2 and bring your old equipment for return.", "plain"),
    ("💼-work-recruiting", "Jordan Blake <jordan@talentbridge.example>", "Senior backend engineer role - interested?",
     "Hi,\n\nI'm a recruiter at TalentBridge. A fintech client is hiring a senior backend engineer (Python, "
     "Postgres, remote-friendly). Would you be open to a quick call this week to discuss the role and salary "
     "range?\n\nJordan", "plain"),
    ("💼-work-recruiting", "Careers <careers@acme-robotics.example>", "Interview schedule for your application",
     "Thank you for applying to Acme Robotics. We would like to invite you to a technical interview with the "
     "hiring team next Monday. Please pick a time slot using the link below.", "alternative"),
    ("👤-personal-family", "Mum <mum@family-mail.example>", "Sunday lunch and grandma's birthday",
     "Hi love,\n\nGrandma turns 85 next Sunday, so we're doing a family lunch at our place at 1pm. Your brother "
     "is bringing the cake. Can you pick up Aunt Rita from the station?\n\nLots of love,\nMum", "reply"),
    ("👤-personal-family", "Tom <tom.brother@family-mail.example>", "Photos from the kids' school play",
     "Hey! Here are the photos from Emma and Leo's school play last night. Emma was a very convincing tree. "
     "Say hi to everyone at home.", "plain"),
    ("👤-personal-friends", "Chris Park <chris.park@mailbox.example>", "Board game night on Saturday?",
     "Hey, a few of us are getting together on Saturday evening for board games and pizza at my place. Fancy "
     "joining? Bring a friend if you like!", "plain"),
    ("👤-personal-friends", "Aisha <aisha.m@mailbox.example>", "Long time no see!",
     "It's been ages! I'm in town for a few days next week, so let's catch up over coffee and I'll tell you "
     "all about the new job and the trip to Portugal.", "latin1"),
    ("👤-personal-health", "City Dental Clinic <appointments@citydental.example>", "Appointment reminder: dental check-up",
     "This is a reminder of your dental check-up and cleaning with Dr. Haddad on 14 May at 9:30. Please "
     "arrive 10 minutes early. Reply C to cancel.", "html"),
    ("👤-personal-health", "Riverside Medical Lab <results@riversidelab.example>", "Your blood test results are available",
     "Your recent blood test results have been reviewed by your doctor and are now available in the patient "
     "portal. No follow-up appointment is needed.", "plain"),
    ("👤-personal-home", "Harbour Lettings <lettings@harbour.example>", "Boiler repair visit and rent update",
     "Dear tenant, the plumber will come to repair the boiler in your flat on Wednesday morning. Please also "
     "note that the rent for your lease renewal from July is unchanged. Kind regards, your landlord's agent.",
     "plain"),
    ("💰-finance-banking", "First Harbor Bank <alerts@firstharbor.example>", "Your monthly account statement is ready",
     "Your checking account statement for April is ready to view in online banking. Closing balance and all "
     "card transactions and transfers are listed in the statement.", "html"),
    ("💰-finance-banking", "First Harbor Bank <alerts@firstharbor.example>", "You received a transfer of 250.00 EUR",
     "A bank transfer of 250.00 EUR from J. Meyer was credited to your account ending 4821 today.", "plain"),
    ("💰-finance-bills", "Volta Energy <billing@volta-energy.example>", "Your electricity bill for April",
     "Your electricity bill for April is 84.20 EUR. The payment is due on 15 May and will be taken by direct "
     "debit. View your invoice and meter readings in your account.", "alternative"),
    ("💰-finance-bills", "FiberNet <invoices@fibernet.example>", "Invoice #88213 - payment reminder",
     "Reminder: invoice #88213 for your internet and phone subscription (39.99 EUR) is overdue. Please pay "
     "within 7 days to avoid a late fee.", "plain"),
    ("💰-finance-taxes", "Tax Office <noreply@tax-office.example>", "Your income tax return has been processed",
     "Your income tax return for the last tax year has been processed. You are due a refund of 612 EUR, which "
     "will be paid to your bank account. The tax assessment notice is available online.", "plain"),
    ("💰-finance-investments", "Evergreen Brokerage <statements@evergreen.example>", "Quarterly portfolio statement",
     "Your quarterly portfolio statement is available. Your index funds and stocks returned 3.2% this quarter; "
     "dividends of 48.10 EUR were reinvested in your retirement account.", "html"),
    ("🛒-shopping-orders", "ShopRight <orders@shopright.example>", "Your order #A-77120 has shipped",
     "Good news! Your order #A-77120 (wireless headphones) has shipped. Track your package with tracking "
     "number 1Z84X. Estimated delivery: Thursday.", "alternative"),
    ("🛒-shopping-orders", "BookNook <receipts@booknook.example>", "Receipt for your purchase",
     "Thanks for shopping with BookNook. Receipt: 2 paperbacks, 27.80 EUR, paid by card. Returns are accepted "
     "within 30 days.", "html"),
    ("🛒-shopping-promotions", "StyleHub <news@stylehub.example>", "48-hour flash sale: 40% off everything!",
     "Don't miss our biggest flash sale of the season: 40% off everything with code FLASH40. New arrivals "
     "included. Free shipping on orders over 50 EUR. Shop now!", "html"),
    ("🛒-shopping-promotions", "GadgetWorld <deals@gadgetworld.example>", "Exclusive coupon inside just for you",
     "As a valued customer, here is an exclusive 15% discount coupon on smart home gadgets. Offer ends Sunday.",
     "alternative"),
    ("✈️-travel-bookings", "SkyJet Airlines <bookings@skyjet.example>", "Booking confirmation: Lisbon, 12 June",
     "Your flight booking is confirmed. Flight SJ 482 from Amsterdam to Lisbon on 12 June, departure 07:45. "
     "Booking reference QX7P2L. Online check-in opens 24 hours before departure.", "html"),
    ("✈️-travel-bookings", "StayWell Hotels <reservations@staywell.example>", "Your hotel reservation in Lisbon",
     "Thank you for your reservation at StayWell Alfama, 12–16 June, 1 double room, 4 nights. Free "
     "cancellation until 10 June.", "plain"),
    ("📰-updates-newsletters", "The Weekly Byte <newsletter@weeklybyte.example>", "The Weekly Byte #214: Rust, Postgres 17 and more",
     "This week's issue of our newsletter: what's new in Postgres 17, a deep dive into Rust async, and five "
     "blog posts worth your time. You are receiving this digest because you subscribed.", "html"),
    ("📰-updates-newsletters", "Garden Monthly <hello@gardenmonthly.example>", "Garden Monthly: May issue",
     "In this month's magazine issue: planting tomatoes, attracting bees, and our readers' best balcony "
     "gardens. Unsubscribe at any time.", "alternative"),
    ("🔔-updates-security", "Account Security <security@mailhost.example>", "New sign-in to your account from Chrome on Windows",
     "We noticed a new sign-in to your account from Chrome on Windows in Madrid, Spain. If this was you, you "
     "can ignore this alert. If not, reset your password now.", "html"),
    ("🔔-updates-security", "CloudDrive <no-reply@clouddrive.example>", "Your verification code is 481 204",
     "Use verification code 481 204 to finish signing in. This two-factor authentication code expires in 10 "
     "minutes. Never share it with anyone.", "plain"),
    ("🔔-updates-social", "Friendly <notify@friendly.example>", "Maya Chen commented on your photo",
     "Maya Chen commented on your photo: 'Looks amazing!' You also have 3 new likes and 2 new followers.",
     "html"),
    ("🔔-updates-social", "ProNet <notifications@pronet.example>", "You appeared in 9 searches this week",
     "You appeared in 9 searches this week. 2 people viewed your profile and you have a new connection request "
     "from Alex Novak.", "plain"),
    ("other", "Lottery Desk <winner@prize-desk.example>", "Re: your ref. 0091",
     "Kindly revert with the requested particulars at your earliest convenience so the file can be closed.",
     "plain"),
    ("other", "noreply <noreply@sys.example>", "(no subject)", "ok", "plain"),
]

_QUOTE = (
    "\n\nOn Mon, 3 Jun 2024 at 09:12, You <you@example.org> wrote:\n> Sounds good, let me know the details.\n"
    "> Thanks!\n\n-- \nSent with care\n"
)


def build_message(index: int, sender: str, subject: str, body: str, fmt: str, when: datetime) -> bytes:
    """Render one sample as RFC 822 bytes in the given format."""
    msg = MIMEMessage()
    msg["From"] = sender
    msg["To"] = "You <you@example.org>"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = make_msgid(idstring=f"demo{index:03d}", domain="labelrouter.example")
    paragraphs = "".join(f"<p>{p}</p>" for p in body.split("\n\n"))
    html = f"<html><head><style>p {{margin:0}}</style></head><body>{paragraphs}</body></html>"
    if fmt == "html":
        msg.set_content(html, subtype="html")
    elif fmt == "alternative":
        msg.set_content(body)
        msg.add_alternative(html, subtype="html")
    elif fmt == "reply":
        msg.set_content(body + _QUOTE)
    elif fmt == "latin1":
        msg.set_content(body + " Ça va? À bientôt!", charset="latin-1", cte="quoted-printable")
    else:
        msg.set_content(body)
    return msg.as_bytes()


def sample_messages(start: datetime | None = None) -> list[tuple[str, bytes]]:
    """(expected label, raw bytes) for every sample, one hour apart."""
    start = start or datetime(2024, 6, 3, 8, 0, tzinfo=UTC)
    return [
        (label, build_message(i, sender, subject, body, fmt, start + timedelta(hours=i)))
        for i, (label, sender, subject, body, fmt) in enumerate(SAMPLES)
    ]
