"""Synthetic mail streams for drift scenarios, written from templates of our own (no real mail copied).

A scenario is a labeled stream in date order (`LabeledSet`, what `stream.run_stream` takes) with one thing
changing part-way through, as it does in a real mailbox:

- `steady`: nothing changes (the yardstick);
- `burst`: a new automated sender starts and fills a folder that had no mail, one message after another;
- `added`: a new kind of mail, and a label for it, joins the stream mixed with the rest;
- `retired`: a label stops receiving mail;
- `newsletter`: a newsletter changes its sender and template;
- `renamed`: the user renames a folder (`labelrouter labels rename`, the real command, run by the stream);
- `partial`: the user corrects only a third of the mistakes.

`lessons` reads a stream report (`StreamConfig(record=True)`) for the bounds the tests and the benchmark
hold each scenario to: how many retrainings until the changed folder is labeled right, how often a retired
label is still given.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from labelrouter.labels import Label, LabelSet
from labelrouter.training.importer import LabeledSet


@dataclass(frozen=True)
class Folder:
    name: str
    description: str
    senders: tuple[str, ...]
    subjects: tuple[str, ...]  # templates: {n} a number, {w} a word of the folder's
    words: tuple[str, ...]


FOLDERS = (
    Folder("invoices", "Bills, invoices and payment reminders from suppliers",
           ("billing@northwind-supply.example", "accounts@harbor-tools.example", "ar@copperline.example"),
           ("Invoice {n} for your order", "Payment reminder: invoice {n}", "Statement of account {n}"),
           ("invoice", "payment", "amount", "due", "balance", "remittance", "bank", "transfer", "purchase",
            "order", "net", "terms", "overdue", "receipt", "total", "tax", "credit", "account")),
    Folder("travel", "Flight, hotel and train bookings and itineraries",
           ("bookings@skyways.example", "stay@harborinn.example", "tickets@railnet.example"),
           ("Your trip {n} is confirmed", "Itinerary update for booking {n}", "Check-in is open: {w}"),
           ("flight", "boarding", "gate", "hotel", "check", "reservation", "seat", "itinerary", "departure",
            "arrival", "terminal", "luggage", "room", "night", "train", "platform", "fare", "passenger")),
    Folder("recruiting", "Candidates, interviews and hiring",
           ("talent@brightpath-hr.example", "jobs@hirewell.example", "dana.recruits@example.org"),
           ("Candidate for the {w} role", "Interview schedule {n}", "Feedback on candidate {n}"),
           ("candidate", "interview", "resume", "offer", "role", "hiring", "manager", "feedback", "onsite",
            "salary", "reference", "position", "skills", "experience", "panel", "shortlist", "start")),
    Folder("family", "Personal mail from family and friends",
           ("grandma.rose@homemail.example", "tom.k@homemail.example", "aunt.lia@example.net"),
           ("Dinner on {w}?", "Photos from the weekend", "Plans for the holidays"),
           ("dinner", "weekend", "kids", "grandma", "school", "birthday", "photos", "garden", "holiday",
            "cake", "visit", "movie", "park", "dog", "soccer", "lunch", "cousins", "love")),
    Folder("atlas", "atlas",  # a folder named after an internal tool: its name says nothing to the router
           ("ci@atlas.corp.example", "pm.jordan@corp.example", "reviews@atlas.corp.example"),
           ("atlas sprint {n} review", "Build {n} of atlas", "atlas: merge request {n}"),
           ("release", "deploy", "branch", "review", "ticket", "sprint", "milestone", "build", "merge",
            "pipeline", "staging", "rollback", "backlog", "standup", "estimate", "blocker", "tests")),
    Folder("newsletters", "Newsletters and digests",
           ("digest@weeklyreader.example", "news@weeklyreader.example"),
           ("This week: {w} and more", "Weekly digest {n}", "Top stories: {w}"),
           ("unsubscribe", "digest", "stories", "read", "weekly", "edition", "subscribers", "featured",
            "column", "opinion", "headlines", "sponsored", "archive", "preferences", "issue")),
)
# Words any mail may hold: they make the folders overlap, as real mail does.
COMMON = ("hi", "thanks", "please", "let", "me", "know", "regards", "today", "tomorrow", "attached", "see",
          "below", "update", "quick", "question", "best", "time", "next", "week", "call", "note", "soon")

NEW_SENDER = Folder(  # the `burst` scenario's automated sender, and `added`'s kind of mail
    "sentinel-alerts", "sentinel-alerts",
    ("noreply@sentinel.monitoring.example",),
    ("[sentinel] alert {n}: {w} degraded", "[sentinel] alert {n} resolved", "[sentinel] {w} latency high"),
    ("alert", "monitor", "threshold", "latency", "degraded", "resolved", "incident", "service", "probe",
     "uptime", "cpu", "memory", "disk", "endpoint", "status", "paging", "escalation"))
CONFERENCE = Folder(
    "conference", "Conference registration, talks and schedules",
    ("program@devsummit.example", "speakers@devsummit.example"),
    ("Your talk {n} at the summit", "Summit schedule: {w}", "Registration {n} confirmed"),
    ("talk", "speaker", "session", "keynote", "registration", "badge", "venue", "schedule", "abstract",
     "slides", "track", "workshop", "attendees", "summit", "agenda"))
REDESIGNED = Folder(  # `newsletter`: the same newsletter after its redesign
    "newsletters", "Newsletters and digests",
    ("hello@mail.weeklyreader-news.example",),
    ("Your {w} briefing", "{w}, {w} and {w}: the briefing", "The briefing no. {n}"),
    ("briefing", "curated", "explore", "trending", "picks", "creators", "listen", "podcast", "watch",
     "community", "members", "manage", "email", "settings", "view", "browser"))

SCENARIOS = ("steady", "burst", "added", "retired", "newsletter", "renamed", "partial")
RENAMED = ("atlas", "atlas-platform")  # `renamed`: old name → new name


@dataclass
class Scenario:
    name: str
    data: LabeledSet
    start: int  # index in the stream (date order) where the change begins
    watch: str | None = None  # the label the change concerns (its name after the change)
    correction_rate: float = 1.0
    # index in the stream → what the user does to labelrouter before the chunk holding that message is
    # delivered (`stream.run_stream`'s `events`): `renamed` renames a label with the real command.
    events: dict[int, tuple[str, ...]] = field(default_factory=dict)


def _message(folder: Folder, rng: random.Random, i: int, when: datetime, label: str | None = None) -> dict[str, Any]:
    own = [rng.choice(folder.words) for _ in range(rng.randint(6, 24))]
    common = [rng.choice(COMMON) for _ in range(rng.randint(8, 30))]
    if rng.random() < 0.3:  # another topic, as mail that mentions something else in passing
        other = rng.choice(FOLDERS)
        common += [rng.choice(other.words) for _ in range(rng.randint(3, 10))]
    words = own + common
    rng.shuffle(words)
    subject = rng.choice(folder.subjects).format(n=rng.randint(100, 9999), w=rng.choice(folder.words))
    return {"id": f"m{i:05d}", "subject": subject, "sender": rng.choice(folder.senders), "to": "me@example.com",
            "body": " ".join(words).capitalize() + ".", "label": label or folder.name,
            "date": (when + timedelta(minutes=37 * i)).isoformat()}


def scenario(name: str, *, n: int = 600, at: float = 0.4, seed: int = 0) -> Scenario:
    """The named scenario: `n` messages, the change beginning `at` of the way through."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}: use one of {', '.join(SCENARIOS)}")
    rng = random.Random(seed)
    start = int(n * at)
    when = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    folders = list(FOLDERS)
    extra: list[Folder] = []
    watch: str | None = None
    pick: Callable[[int], Folder] = lambda _i: rng.choice(folders)  # noqa: E731
    if name == "burst":
        extra, watch = [NEW_SENDER], NEW_SENDER.name
        burst = range(start, start + n // 4)  # most of the mail while it lasts; the rest still arrives
        pick = lambda i: NEW_SENDER if i in burst and rng.random() < 0.9 else rng.choice(folders)  # noqa: E731
    elif name == "added":
        extra, watch = [CONFERENCE], CONFERENCE.name
        pick = lambda i: CONFERENCE if i >= start and rng.random() < 0.2 else rng.choice(folders)  # noqa: E731
    elif name == "retired":
        watch = "recruiting"
        kept = [f for f in folders if f.name != watch]
        pick = lambda i: rng.choice(folders if i < start else kept)  # noqa: E731
    elif name == "newsletter":
        watch = "newsletters"
        pick = lambda i: (REDESIGNED if i >= start else FOLDERS[-1]) if rng.random() < 1 / 6 else \
            rng.choice(folders[:-1])  # noqa: E731
    elif name == "renamed":  # the stream runs the rename before the chunk holding `start` (`run_stream`)
        watch = RENAMED[1]
    rows = []
    for i in range(n):
        folder = pick(i)
        # A person files inconsistently: now and then a message goes to another of the usual folders.
        label = rng.choice(FOLDERS).name if folder in FOLDERS and rng.random() < 0.05 else None
        rows.append(_message(folder, rng, i, when, label))
    labels = [Label(f.name, None, f.description) for f in (*folders, *extra)]
    taxonomy = LabelSet(tuple(labels))
    events = {start: ("rename", *RENAMED)} if name == "renamed" else {}
    return Scenario(name, LabeledSet(f"scenario-{name}", taxonomy, rows), start, watch,
                    correction_rate=1 / 3 if name == "partial" else 1.0, events=events)


def lessons(report: dict[str, Any], case: Scenario) -> dict[str, Any]:
    """What a scenario's stream report says about the change (`report` from a run with `record=True`):

    - `retrainings_to_learn`: retrainings after the watched label's first message (the change) until a
      window in which at least 80 % of its messages get it (None: never within the stream);
    - `watched_accuracy_after`: how often its messages got it from the second retraining after the change on;
    - `retired_given_after`: for `retired`, the share of messages given the retired label from the second
      window after the change on (it receives no mail any more, so every one is a mistake)."""
    outcomes, every = report["outcomes"], report["train_every"]
    out: dict[str, Any] = {"scenario": case.name, "prequential_accuracy": report["prequential_accuracy"],
                           "tfidf_svm": report["baselines"]["tfidf_svm"], "watch": case.watch}
    if case.watch is None:
        return out
    start = case.start
    if case.events:  # the stream acts on an event at the chunk boundary before it: the change starts there
        start = next((i for i, o in enumerate(outcomes) if o["truth"] == case.watch), start)
    first_window = start // every
    if case.name == "retired":
        late = outcomes[(first_window + 2) * every:]
        out["retired_given_after"] = sum(o["label"] == case.watch for o in late) / max(1, len(late))
        return out
    windows: dict[int, list[bool]] = {}
    for i, o in enumerate(outcomes):
        if o["truth"] == case.watch and i >= start:
            windows.setdefault(i // every, []).append(o["label"] == o["truth"])
    learned = [w for w, hits in sorted(windows.items()) if sum(hits) >= 0.8 * len(hits)]
    out["retrainings_to_learn"] = learned[0] - first_window if learned else None
    late = [hit for w, hits in windows.items() if w >= first_window + 2 for hit in hits]
    out["watched_accuracy_after"] = sum(late) / len(late) if late else None
    return out
