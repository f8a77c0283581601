"""The Gmail adapter against googleapiclient's own test double (HttpMockSequence), fed responses in the
API's documented shapes (developers.google.com/gmail/api/reference/rest). No network, no real waiting."""

from __future__ import annotations

import base64
import json

import pytest
from googleapiclient.http import HttpMockSequence

from labelrouter.errors import MailboxError
from labelrouter.feedback import sync
from labelrouter.mail.gmail import GmailApi, GmailMailbox, HistoryExpired, QuotaBudget, gmail_service

RAW = b"From: Ann <ann@example.com>\r\nSubject: Invoice 42\r\n\r\nPlease pay invoice 42 by Friday.\r\n"


def ok(body: dict) -> tuple[dict, str]:
    return {"status": "200", "content-type": "application/json"}, json.dumps(body)


def error(status: int, reason: str, message: str, **headers: str) -> tuple[dict, str]:
    google_status = {404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 403: "PERMISSION_DENIED", 500: "INTERNAL",
                     503: "UNAVAILABLE"}[status]
    body = {"error": {"code": status, "message": message, "status": google_status,
                      "errors": [{"message": message, "domain": "global", "reason": reason}]}}
    return {"status": str(status), "content-type": "application/json", **headers}, json.dumps(body)


def batch_response(parts: list[tuple[str, int, dict]]) -> tuple[dict, str]:
    """A multipart/mixed batch answer: (request id, HTTP status, JSON body) per part."""
    boundary = "batch_labelrouter_test"
    chunks = []
    for request_id, status, body in parts:
        reason = {200: "OK", 404: "Not Found", 429: "Too Many Requests"}[status]
        payload = json.dumps(body)
        chunks.append(f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <response-x + {request_id}>\r\n\r\n"
                      f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=UTF-8\r\n"
                      f"Content-Length: {len(payload)}\r\n\r\n{payload}\r\n")
    return ({"status": "200", "content-type": f"multipart/mixed; boundary={boundary}"},
            "".join(chunks) + f"--{boundary}--\r\n")


class Waits:
    def __init__(self) -> None:
        self.slept: list[float] = []
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def mailbox(tmp_path, responses, waits: Waits | None = None) -> tuple[GmailMailbox, HttpMockSequence]:
    waits = waits or Waits()
    http = HttpMockSequence(responses)
    api = GmailApi(gmail_service(tmp_path / "token.json", http=http), sleep=waits.sleep,
                   budget=QuotaBudget(clock=waits.clock, sleep=waits.sleep))
    return GmailMailbox(api, mapping_path=tmp_path / "gmail_labels.json", state_dir=tmp_path / "state"), http


def test_list_the_inbox_across_pages_oldest_first_and_fetch_raw(tmp_path):
    box, http = mailbox(tmp_path, [
        ok({"messages": [{"id": "m3", "threadId": "t3"}, {"id": "m2", "threadId": "t2"}], "nextPageToken": "p2",
            "resultSizeEstimate": 3}),
        ok({"messages": [{"id": "m1", "threadId": "t1"}], "resultSizeEstimate": 3}),
        ok({"id": "m1", "threadId": "t1", "labelIds": ["INBOX", "UNREAD"],
            "raw": base64.urlsafe_b64encode(RAW).decode().rstrip("=")}),
    ])
    assert box.list_inbox() == ["m1", "m2", "m3"]
    assert box.fetch("m1") == RAW
    urls = [r[0] for r in http.request_sequence]
    assert "labelIds=INBOX" in urls[0] and "pageToken=p2" in urls[1] and "format=raw" in urls[2]


def test_labels_are_listed_created_once_and_the_mapping_saved(tmp_path):
    box, http = mailbox(tmp_path, [
        ok({"labels": [{"id": "INBOX", "name": "INBOX", "type": "system"},
                       {"id": "Label_1", "name": "💼-work", "type": "user"}]}),
        ok({"id": "Label_2", "name": "🧾-bills", "type": "user", "labelListVisibility": "labelShow",
            "messageListVisibility": "show"}),
    ])
    assert box.ensure_labels(["💼-work", "🧾-bills"]) == {"💼-work": "Label_1", "🧾-bills": "Label_2"}
    assert json.loads((tmp_path / "gmail_labels.json").read_text()) == {"💼-work": "Label_1", "🧾-bills": "Label_2"}
    method, body = http.request_sequence[1][1], json.loads(http.request_sequence[1][2])
    assert method == "POST" and body["name"] == "🧾-bills"
    assert box.our_label_ids() == {"Label_1", "Label_2"}


def test_apply_adds_one_label_and_archives_by_removing_inbox(tmp_path):
    box, http = mailbox(tmp_path, [
        ok({"id": "m1", "labelIds": ["INBOX", "UNREAD"]}),
        ok({"id": "m1", "threadId": "t1", "labelIds": ["Label_2", "UNREAD"]}),
        ok({"id": "m2", "labelIds": ["INBOX", "Label_1"]}),
    ])
    change = box.apply_label("m1", "Label_2", archive=True, known_label_ids={"Label_1", "Label_2"})
    assert change.changed and change.label_ids_after == ["Label_2", "UNREAD"]
    assert json.loads(http.request_sequence[1][2]) == {"addLabelIds": ["Label_2"], "removeLabelIds": ["INBOX"]}
    left = box.apply_label("m2", "Label_2", archive=False, known_label_ids={"Label_1", "Label_2"})
    assert not left.changed and "already labeled 'Label_1'" in left.detail  # never a second label of ours
    assert len(http.request_sequence) == 3  # no modify for m2


def test_a_re_applied_decision_moves_our_label_in_one_modify(tmp_path):
    box, http = mailbox(tmp_path, [
        ok({"id": "m1", "labelIds": ["Label_1", "UNREAD"]}),  # archived under Label_1 by an earlier decision
        ok({"id": "m1", "threadId": "t1", "labelIds": ["INBOX", "Label_2", "UNREAD"]}),
        ok({"id": "m1", "labelIds": ["INBOX", "Label_2", "UNREAD"]}),  # repeated: nothing left to do
    ])
    change = box.move_label("m1", "Label_1", "Label_2", archive=False, restore_inbox=True)
    assert change.changed and change.label_ids_after == ["INBOX", "Label_2", "UNREAD"]
    # One call: Gmail applies the add and the remove together, so the message never holds both or neither.
    assert json.loads(http.request_sequence[1][2]) == {"addLabelIds": ["Label_2", "INBOX"],
                                                       "removeLabelIds": ["Label_1"]}
    assert not box.move_label("m1", "Label_1", "Label_2", archive=False, restore_inbox=True).changed
    assert len(http.request_sequence) == 3


def test_a_429_is_retried_after_retry_after_and_then_succeeds(tmp_path):
    waits = Waits()
    box, http = mailbox(tmp_path, [
        error(429, "rateLimitExceeded", "Too many concurrent requests for user", **{"retry-after": "7"}),
        error(403, "userRateLimitExceeded", "User-rate limit exceeded"),
        error(503, "backendError", "Backend Error"),
        ok({"id": "m1", "labelIds": ["INBOX"]}),
    ], waits)
    assert box.label_ids("m1") == ["INBOX"]
    assert waits.slept == [7.0, 2.0, 4.0]  # Retry-After honoured, then exponential backoff
    assert len(http.request_sequence) == 4


def test_other_errors_are_one_line_and_not_retried(tmp_path):
    waits = Waits()
    box, _ = mailbox(tmp_path, [error(403, "insufficientPermissions", "Insufficient Permission")], waits)
    with pytest.raises(MailboxError) as info:
        box.label_ids("m1")
    assert str(info.value) == "Gmail reading labels of m1 failed: HTTP 403 insufficientPermissions"
    assert waits.slept == []


def test_history_reports_changed_messages_and_an_expired_id_means_full_resync(tmp_path):
    box, http = mailbox(tmp_path, [
        ok({"history": [
            {"id": "1201", "messages": [{"id": "m1", "threadId": "t1"}],
             "labelsAdded": [{"message": {"id": "m1", "threadId": "t1", "labelIds": ["Label_2"]}, "labelIds": ["Label_2"]}]},
            {"id": "1202", "messages": [{"id": "m2", "threadId": "t2"}],
             "labelsRemoved": [{"message": {"id": "m2", "threadId": "t2", "labelIds": []}, "labelIds": ["Label_1"]}]}],
            "nextPageToken": "h2", "historyId": "1210"}),
        ok({"history": [{"id": "1205", "messagesDeleted": [{"message": {"id": "m3", "threadId": "t3"}}]}],
            "historyId": "1211"}),
        error(404, "notFound", "Requested entity was not found."),
    ])
    assert box.changed_since("1200") == ({"m1", "m2", "m3"}, "1211")
    assert "startHistoryId=1200" in http.request_sequence[0][0]
    with pytest.raises(HistoryExpired, match="full resync"):
        box.changed_since("5")


def test_states_come_from_one_batch_with_gone_messages_left_out(tmp_path):
    box, http = mailbox(tmp_path, [
        batch_response([("m1", 200, {"id": "m1", "labelIds": ["Label_2", "UNREAD", "IMPORTANT"]}),
                        ("m2", 200, {"id": "m2", "labelIds": ["INBOX", "Label_1"]}),
                        ("m3", 404, {"error": {"code": 404, "message": "Not Found", "status": "NOT_FOUND",
                                               "errors": [{"reason": "notFound"}]}})]),
    ])
    states = box.states(["m1", "m2", "m3"])
    assert set(states) == {"m1", "m2"}  # m3 was deleted
    assert states["m1"].label_ids == ("IMPORTANT", "Label_2", "UNREAD")
    assert not states["m1"].seen and states["m1"].important and not states["m1"].in_inbox
    assert states["m2"].seen and states["m2"].in_inbox
    assert len(http.request_sequence) == 1 and http.request_sequence[0][0].endswith("/batch")


def test_messages_are_fetched_with_their_labels_in_batches_and_each_failure_stays_its_own(tmp_path):
    raw = base64.urlsafe_b64encode(RAW).decode().rstrip("=")
    not_found = {"error": {"code": 404, "message": "Not Found", "status": "NOT_FOUND", "errors": [{"reason": "notFound"}]}}
    throttled = {"error": {"code": 429, "message": "Too many", "status": "RESOURCE_EXHAUSTED",
                           "errors": [{"reason": "rateLimitExceeded"}]}}
    waits = Waits()
    box, http = mailbox(tmp_path, [
        batch_response([("m1", 200, {"id": "m1", "labelIds": ["UNREAD", "INBOX"], "raw": raw}),
                        ("m2", 404, not_found),
                        ("m3", 429, throttled)]),
        ok({"id": "m3", "labelIds": ["INBOX"], "raw": raw}),  # the throttled one, alone, with the retry policy
        error(403, "insufficientPermissions", "Insufficient Permission"),  # the next batch as a whole
    ], waits)
    fetched = box.fetch_many(["m1", "m2", "m3"])
    assert fetched["m1"] == (RAW, ["INBOX", "UNREAD"]) and fetched["m3"] == (RAW, ["INBOX"])
    assert isinstance(fetched["m2"], MailboxError) and "404" in str(fetched["m2"])
    urls = [r[0] for r in http.request_sequence]
    assert urls[0].endswith("/batch") and "format=raw" in urls[1] and "labelIds" in urls[1]
    assert "format=raw" in http.request_sequence[0][2] and "fields=id%2ClabelIds%2Craw" in http.request_sequence[0][2]
    failed = box.fetch_many(["m4", "m5"])
    assert all(isinstance(e, MailboxError) and "403 insufficientPermissions" in str(e) for e in failed.values())
    assert set(failed) == {"m4", "m5"}


def test_more_than_fifty_reads_are_split_into_batches_of_fifty(tmp_path):
    ids = [f"m{i}" for i in range(120)]
    box, http = mailbox(tmp_path, [
        batch_response([(m, 200, {"id": m, "labelIds": ["INBOX"]}) for m in ids[:50]]),
        batch_response([(m, 200, {"id": m, "labelIds": ["INBOX"]}) for m in ids[50:100]]),
        batch_response([(m, 200, {"id": m, "labelIds": ["INBOX"]}) for m in ids[100:]]),
    ])
    assert len(box.states(ids)) == 120 and len(http.request_sequence) == 3
    assert all(body.count("GET /gmail/v1/users/me/messages/") <= 50 for _, _, body, _ in http.request_sequence)


def test_the_quota_budget_waits_when_a_minute_is_spent():
    waits = Waits()
    budget = QuotaBudget(100, clock=waits.clock, sleep=waits.sleep)
    for _ in range(20):
        budget.take(5)  # 100 units in the first minute
    assert waits.slept == []
    budget.take(50)  # a batchModify: must wait for the minute to roll over
    assert waits.slept == [60.0]


def test_the_quota_budget_is_shared_by_threads():
    """The graph's threads take units at once: the budget's bookkeeping must not break under them."""
    import itertools
    import sys
    import threading

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, to meet the race if there is one
    ticks = itertools.count()
    budget = QuotaBudget(10**9, clock=lambda: next(ticks) * 7.0, sleep=lambda s: None)
    errors: list[str] = []

    def worker():
        try:
            for _ in range(3000):
                budget.take(5)
        except Exception as exc:  # noqa: BLE001 - collected and asserted on
            errors.append(repr(exc))

    try:
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        sys.setswitchinterval(old)
    assert errors == []


def test_sync_reads_gmail_labels_back(tmp_path, settings):
    """The same sync that runs on a Maildir, on Gmail: a message the user moved is recorded."""
    from labelrouter.state import ApplyResult, EmailMessage, LabelingState, Routing
    from labelrouter.store import open_store

    store = open_store(settings)
    routing = Routing(label="💼-work", top_label="💼-work", router_weights={}, head_weights={}, final_scores={},
                      candidates=[], confidence=0.9, margin=40.0, threshold=0.35, fallback=False, reason="argmax",
                      model_version="m", encoder_version="e", labels_hash="h")
    for mid in ("m1", "m2"):
        applied = ApplyResult(status="applied", label="💼-work", archive=False, label_ids_before=["INBOX"],
                              label_ids_after=["INBOX", "Label_1"])
        state = LabelingState(message=EmailMessage(id=mid, subject="s", body="b"), routing=routing, applied=applied)
        assert store.record_intent(state, "Label_1") and store.complete(mid, applied)
    profile = ok({"emailAddress": "me@example.com", "messagesTotal": 2, "threadsTotal": 2, "historyId": "1200"})
    box, http = mailbox(tmp_path, [
        profile,  # first sync: no cursor yet, so the history id is taken first and every unsynced message read
        batch_response([("m1", 200, {"id": "m1", "labelIds": ["INBOX", "Label_2"]}),
                        ("m2", 200, {"id": "m2", "labelIds": ["INBOX", "Label_1", "UNREAD"]})]),
        # second sync: the history since 1200 names m2 only, so only m2 is read
        ok({"history": [{"id": "1201", "labelsRemoved": [{"message": {"id": "m2"}, "labelIds": ["UNREAD"]}]}],
            "historyId": "1207"}),
        batch_response([("m2", 200, {"id": "m2", "labelIds": ["INBOX", "Label_1"]})]),
        # third sync: the stored id has expired → every unsynced message again (none left)
        error(404, "notFound", "Requested entity was not found."),
        profile,
    ])
    report = sync(store, box)
    assert (report.looked, report.touched) == (2, 1)
    row = store.get("m1")
    assert json.loads(row["label_ids_current"]) == ["INBOX", "Label_2"]
    assert store.get("m2")["labels_synced_at"] is None  # unread and where we left it: untouched
    assert store.sync_cursor("mailbox") == "1200"
    report = sync(store, box)
    assert (report.looked, report.touched) == (1, 1) and store.get("m2")["seen"] == 1  # the user read it
    assert store.sync_cursor("mailbox") == "1207"
    assert sync(store, box).looked == 0 and store.sync_cursor("mailbox") == "1200"
    assert len(http.request_sequence) == 6


def test_gmail_is_chosen_by_settings_and_a_missing_token_says_how_to_get_one(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from labelrouter.cli.app import app

    monkeypatch.setenv("LABELROUTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LABELROUTER_MAILBOX", "gmail")
    result = CliRunner().invoke(app, ["sync"])
    assert result.exit_code == 2 and "labelrouter gmail auth" in result.stderr and "Traceback" not in result.output
    # A saved authorised-user token builds the service offline (the discovery document is bundled).
    token = tmp_path / "home" / "gmail-token.json"
    token.parent.mkdir(parents=True, exist_ok=True)
    token.write_text(json.dumps({"token": "ya29.test", "refresh_token": "1//test", "client_id": "id.apps",
                                 "client_secret": "secret", "scopes": ["https://www.googleapis.com/auth/gmail.modify"],
                                 "token_uri": "https://oauth2.googleapis.com/token",
                                 "expiry": "2999-01-01T00:00:00Z"}))
    service = gmail_service(token)
    assert service.users().messages().list(userId="me").uri.startswith("https://gmail.googleapis.com/gmail/v1/")
    # httplib2 is not thread-safe: each thread's requests go over its own authorised connection.
    import threading

    def connection():
        return service.users().messages().get(userId="me", id="m1").http

    mine = connection()
    theirs: list = []
    other = threading.Thread(target=lambda: theirs.extend([connection(), connection()]))
    other.start()
    other.join(timeout=10)
    assert connection() is mine and theirs[0] is theirs[1] and theirs[0] is not mine
    assert mine.credentials.token == "ya29.test"
