"""Gmail as a mailbox, through google-api-python-client (the Gmail API v1).

What labelrouter needs and nothing more: list the inbox, fetch raw messages, list and create labels (the
name → id mapping is kept in `config/gmail_labels.json`), apply one label and archive by removing INBOX,
read current labels and signals back (UNREAD, IMPORTANT), and change detection through `history.list`
from a stored history id — a 404 for an expired id means a full resync, not an error.

Every call goes through `GmailApi.call`: a per-user quota budget (Gmail's costs: messages.get/modify 5
units, history.list 2, batchModify 50; 15,000 units per user per minute), then retries on 429, 5xx and
403 `rateLimitExceeded`/`userRateLimitExceeded`, honouring `Retry-After`, with waits through an injected
sleeper (tests never sleep). `states` batches its reads, at most 50 calls a batch, as Google advises.
Tested against `googleapiclient.http.HttpMockSequence` with responses in the API's documented shapes;
docs/gmail.md says what has not been run against a live account.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from labelrouter.errors import MailboxError
from labelrouter.mail.mailbox import INBOX, Fetched, MailboxChange, MessageState, planned_change
from labelrouter.util.files import private_dir, write_json_atomic

log = logging.getLogger(__name__)

SCOPES = ["https://www.googleapis.com/auth/gmail.modify"]
# Quota units per method (developers.google.com/gmail/api/reference/quota).
COSTS = {"messages.get": 5, "messages.list": 5, "messages.modify": 5, "messages.batchModify": 50,
         "history.list": 2, "labels.list": 1, "labels.create": 5, "labels.patch": 5, "labels.delete": 5,
         "users.getProfile": 1}
USER_UNITS_PER_MINUTE = 15_000
BATCH_LIMIT = 50
RAW_FIELDS = "id,labelIds,raw"  # a raw message and, in the same answer, the labels it carries
RETRY_STATUSES = {429, 500, 502, 503, 504}
RATE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded"}


class HistoryExpired(MailboxError):
    """The stored history id is too old (history.list answered 404): resync everything."""


class QuotaBudget:
    """Units spent in the last minute, per user; a call that would exceed the budget waits its turn."""

    def __init__(self, units_per_minute: int = USER_UNITS_PER_MINUTE, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.limit, self.clock, self.sleep = units_per_minute, clock, sleep
        self._spent: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()  # the graph's threads take units at once; the wait is outside it

    def take(self, units: int) -> None:
        while True:
            with self._lock:
                now = self.clock()
                while self._spent and now - self._spent[0][0] >= 60.0:
                    self._spent.popleft()
                if sum(u for _, u in self._spent) + units <= self.limit or not self._spent:
                    self._spent.append((now, units))
                    return
                wait = 60.0 - (now - self._spent[0][0])
            self.sleep(wait)


def _status_and_reason(exc: Exception) -> tuple[int, str, float | None]:
    resp = getattr(exc, "resp", None)
    status = int(getattr(resp, "status", 0) or 0)
    retry_after = None
    if resp is not None and resp.get("retry-after"):
        try:
            retry_after = float(resp.get("retry-after"))
        except ValueError:
            retry_after = None
    reason = ""
    try:
        error = json.loads(getattr(exc, "content", b"{}") or b"{}").get("error", {})
        reason = str((error.get("errors") or [{}])[0].get("reason") or error.get("status") or "")
    except (ValueError, AttributeError):
        pass
    return status, reason, retry_after


class GmailApi:
    """The Gmail service with the budget and retries around every call."""

    def __init__(self, service: Any, *, user: str = "me", budget: QuotaBudget | None = None,
                 sleep: Callable[[float], None] = time.sleep, attempts: int = 6, backoff_s: float = 1.0):
        self.service, self.user = service, user
        self.sleep = sleep
        self.budget = budget or QuotaBudget(sleep=sleep)
        self.attempts, self.backoff_s = attempts, backoff_s

    def retryable(self, exc: Exception) -> tuple[bool, float | None]:
        status, reason, retry_after = _status_and_reason(exc)
        return status in RETRY_STATUSES or (status == 403 and reason in RATE_REASONS), retry_after

    def call(self, method: str, request: Any, *, units: int | None = None) -> Any:
        """Execute `request` within the quota budget (`units`, default the method's cost), with retries."""
        from googleapiclient.errors import HttpError

        for attempt in range(1, self.attempts + 1):
            self.budget.take(COSTS.get(method, 5) if units is None else units)
            try:
                return request.execute()
            except HttpError as exc:
                retry, retry_after = self.retryable(exc)
                if not retry or attempt == self.attempts:
                    raise
                wait = retry_after if retry_after is not None else self.backoff_s * 2 ** (attempt - 1)
                log.info("Gmail %s: HTTP %s, retrying in %.1f s", method, exc.resp.status, wait)
                self.sleep(min(wait, 300.0))
        raise AssertionError("unreachable")

    def users(self) -> Any:
        return self.service.users()


def _raw_of(message: dict[str, Any]) -> bytes:
    raw = message["raw"]
    return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))


def _http_error_line(exc: Exception) -> str:
    status, reason, _ = _status_and_reason(exc)
    return f"HTTP {status}{f' {reason}' if reason else ''}"


class GmailMailbox:
    """The Mailbox protocol on one Gmail account."""

    def __init__(self, api: GmailApi, *, mapping_path: Path, state_dir: Path):
        self.api = api
        self.mapping_path = mapping_path
        self.state_dir = state_dir
        self._lock = FileLock(str(private_dir(state_dir) / "gmail.lock"))

    # -- calls ---------------------------------------------------------------------------------
    def _call(self, method: str, request: Any, doing: str, *, units: int | None = None) -> Any:
        from googleapiclient.errors import HttpError

        try:
            return self.api.call(method, request, units=units)
        except HttpError as exc:
            raise MailboxError(f"Gmail {doing} failed: {_http_error_line(exc)}") from None
        except OSError as exc:  # the network is down: one line, the run records the message as failed
            raise MailboxError(f"Gmail {doing} failed: {exc}") from None

    @property
    def _messages(self) -> Any:
        return self.api.users().messages()

    # -- reading -------------------------------------------------------------------------------
    def _message_ids(self, label_id: str, doing: str) -> list[str]:
        """Every message carrying a label, across pages, newest first (Gmail's order)."""
        ids: list[str] = []
        token = None
        while True:
            page = self._call("messages.list", self._messages.list(
                userId=self.api.user, labelIds=[label_id], maxResults=500, pageToken=token), doing)
            ids.extend(m["id"] for m in page.get("messages", []))
            token = page.get("nextPageToken")
            if not token:
                return ids

    def list_inbox(self) -> list[str]:
        return self._message_ids(INBOX, "listing the inbox")[::-1]  # labelrouter works oldest first

    def fetch(self, message_id: str) -> bytes:
        return self._fetch_one(message_id)[0]

    def _fetch_one(self, message_id: str) -> Fetched:
        message = self._call("messages.get", self._messages.get(
            userId=self.api.user, id=message_id, format="raw", fields=RAW_FIELDS), f"fetching message {message_id}")
        return _raw_of(message), sorted(message.get("labelIds", []))

    def label_ids(self, message_id: str) -> list[str]:
        message = self._call("messages.get", self._messages.get(
            userId=self.api.user, id=message_id, format="minimal", fields="id,labelIds"),
            f"reading labels of {message_id}")
        return sorted(message.get("labelIds", []))

    def _batch_get(self, chunk: list[str], doing: str, **params: str) -> dict[str, Any]:
        """messages.get for each id (at most BATCH_LIMIT) in one batch: id → response or HttpError."""
        results: dict[str, Any] = {}

        def collect(request_id: str, response: Any, exception: Exception | None) -> None:
            results[request_id] = exception if exception is not None else response

        batch = self.api.service.new_batch_http_request(callback=collect)
        for mid in chunk:
            batch.add(self._messages.get(userId=self.api.user, id=mid, **params), request_id=mid)
        # A batch costs what its calls cost, charged once (and again only if the batch is retried).
        self._call("batch", batch, doing, units=COSTS["messages.get"] * len(chunk))
        return results

    def fetch_many(self, message_ids: list[str]) -> dict[str, Fetched | MailboxError]:
        """Raw messages and their labels in batches of 50 (one call each instead of two, and one round
        trip per batch); a message throttled inside a batch is fetched again alone, with the retry policy."""
        from googleapiclient.errors import HttpError

        fetched: dict[str, Fetched | MailboxError] = {}
        for start in range(0, len(message_ids), BATCH_LIMIT):
            chunk = message_ids[start : start + BATCH_LIMIT]
            try:
                results = self._batch_get(chunk, "fetching messages", format="raw", fields=RAW_FIELDS)
            except MailboxError as exc:  # the batch itself failed (network, auth): each message with it
                fetched.update({mid: exc for mid in chunk})
                continue
            for mid in chunk:
                outcome = results.get(mid)
                if isinstance(outcome, HttpError) and self.api.retryable(outcome)[0]:
                    try:
                        fetched[mid] = self._fetch_one(mid)
                    except MailboxError as exc:
                        fetched[mid] = exc
                elif isinstance(outcome, HttpError):
                    fetched[mid] = MailboxError(f"Gmail fetching message {mid} failed: {_http_error_line(outcome)}")
                elif not isinstance(outcome, dict) or "raw" not in outcome:
                    fetched[mid] = MailboxError(f"Gmail fetching message {mid}: the batch brought no message")
                else:
                    fetched[mid] = (_raw_of(outcome), sorted(outcome.get("labelIds", [])))
        return fetched

    def states(self, message_ids: list[str]) -> dict[str, MessageState]:
        """Batched reads (at most 50 calls a batch); a message Gmail answers 404 for is gone."""
        from googleapiclient.errors import HttpError

        found: dict[str, MessageState] = {}
        for start in range(0, len(message_ids), BATCH_LIMIT):
            chunk = message_ids[start : start + BATCH_LIMIT]
            results = self._batch_get(chunk, "reading message labels", format="minimal", fields="id,labelIds")
            retry = []
            for mid in chunk:
                outcome = results.get(mid)
                if isinstance(outcome, HttpError):
                    status = _status_and_reason(outcome)[0]
                    if status == 404:
                        continue  # deleted
                    if self.api.retryable(outcome)[0]:
                        retry.append(mid)
                        continue
                    raise MailboxError(f"Gmail reading labels of {mid} failed: {_http_error_line(outcome)}")
                if outcome is not None:
                    labels = outcome.get("labelIds", [])
                    found[mid] = MessageState(tuple(sorted(labels)), seen="UNREAD" not in labels,
                                              important="IMPORTANT" in labels)
            for mid in retry:  # throttled inside the batch: one at a time, with the retry policy
                try:
                    labels = self.label_ids(mid)
                except MailboxError:
                    raise
                found[mid] = MessageState(tuple(labels), seen="UNREAD" not in labels, important="IMPORTANT" in labels)
        return found

    def history_id(self) -> str:
        profile = self._call("users.getProfile", self.api.users().getProfile(userId=self.api.user), "reading the profile")
        return str(profile["historyId"])

    def changed_since(self, history_id: str) -> tuple[set[str], str]:
        """Ids of messages whose labels changed (or that were deleted) since `history_id`, and the newest
        history id. Raises HistoryExpired when Gmail no longer has that history (404)."""
        from googleapiclient.errors import HttpError

        changed: set[str] = set()
        token, newest = None, history_id
        while True:
            request = self.api.users().history().list(
                userId=self.api.user, startHistoryId=history_id, pageToken=token,
                historyTypes=["labelAdded", "labelRemoved", "messageDeleted"])
            try:
                page = self.api.call("history.list", request)
            except HttpError as exc:
                if _status_and_reason(exc)[0] == 404:
                    raise HistoryExpired(f"Gmail history {history_id} has expired: a full resync follows") from None
                raise MailboxError(f"Gmail reading history failed: {_http_error_line(exc)}") from None
            for entry in page.get("history", []):
                for key in ("labelsAdded", "labelsRemoved", "messagesDeleted"):
                    changed.update(item["message"]["id"] for item in entry.get(key, []))
            newest = str(page.get("historyId", newest))
            token = page.get("nextPageToken")
            if not token:
                return changed, newest

    def change_feed(self, cursor: str | None) -> tuple[set[str] | None, str | None]:
        if cursor is None:
            return None, self.history_id()
        try:
            return self.changed_since(cursor)
        except HistoryExpired:
            log.warning("Gmail history %s expired: syncing every unsynced message", cursor)
            return None, self.history_id()

    # -- labels --------------------------------------------------------------------------------
    def _mapping(self) -> dict[str, str]:
        try:
            data = json.loads(self.mapping_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise MailboxError(f"{self.mapping_path} is unreadable ({exc}); delete it to rebuild it from Gmail") from None
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def ensure_labels(self, names: list[str], *, create: bool = True) -> dict[str, str]:
        """Label name → Gmail label id, creating missing labels when `create`; the mapping is saved."""
        existing = {lb["name"]: lb["id"] for lb in self._call(
            "labels.list", self.api.users().labels().list(userId=self.api.user), "listing labels").get("labels", [])}
        mapping = self._mapping()
        for name in names:
            if name in existing:
                mapping[name] = existing[name]
            elif create:
                created = self._call("labels.create", self.api.users().labels().create(
                    userId=self.api.user, body={"name": name, "labelListVisibility": "labelShow",
                                                "messageListVisibility": "show"}), f"creating label {name!r}")
                mapping[name] = existing[name] = created["id"]
        if create or mapping != self._mapping():
            write_json_atomic(self.mapping_path, mapping)
        return {name: mapping[name] for name in names if name in mapping}

    def our_label_ids(self) -> set[str]:
        return set(self._mapping().values())

    def rename_label(self, old: str, new: str) -> None:
        mapping = self._mapping()
        label_id = mapping.get(old) or self.ensure_labels([old], create=False).get(old)
        if label_id is None:
            return
        self._call("labels.patch", self.api.users().labels().patch(userId=self.api.user, id=label_id,
                                                                  body={"name": new}), f"renaming {old!r}")
        mapping.pop(old, None)
        mapping[new] = label_id
        write_json_atomic(self.mapping_path, mapping)

    def merge_label(self, source_label: str, target_label: str) -> int:
        ids = self.ensure_labels([source_label, target_label])
        source, target = ids[source_label], ids[target_label]
        moved = self._message_ids(source, "listing a label")
        for start in range(0, len(moved), 1000):  # batchModify takes up to 1,000 ids
            self._call("messages.batchModify", self._messages.batchModify(userId=self.api.user, body={
                "ids": moved[start : start + 1000], "addLabelIds": [target], "removeLabelIds": [source]}),
                "moving messages")
        self._call("labels.delete", self.api.users().labels().delete(userId=self.api.user, id=source),
                   f"deleting {source_label!r}")
        mapping = self._mapping()
        mapping.pop(source_label, None)
        write_json_atomic(self.mapping_path, mapping)
        return len(moved)

    # -- writing -------------------------------------------------------------------------------
    @contextmanager
    def lock(self, wait_s: float = 0.0) -> Iterator[None]:
        try:
            self._lock.acquire(timeout=wait_s)
        except Timeout:
            raise MailboxError(f"another labelrouter run is labeling this Gmail account (lock "
                               f"{self.state_dir / 'gmail.lock'}); let it finish, or pass --wait SECONDS") from None
        try:
            yield
        finally:
            self._lock.release()

    def _modify(self, message_id: str, add: list[str], remove: list[str], doing: str) -> list[str]:
        response = self._call("messages.modify", self._messages.modify(
            userId=self.api.user, id=message_id, body={"addLabelIds": add, "removeLabelIds": remove}), doing)
        return sorted(response.get("labelIds", []))

    def apply_label(self, message_id: str, label_id: str, *, archive: bool, known_label_ids: set[str],
                    dry_run: bool = False) -> MailboxChange:
        before = self.label_ids(message_id)
        plan = planned_change(before, label_id, archive=archive, known_label_ids=known_label_ids, dry_run=dry_run)
        if isinstance(plan, MailboxChange):
            return plan
        now = self._modify(message_id, [label_id], [INBOX] if archive else [], f"labeling {message_id}")
        return MailboxChange(True, before, now)

    def move_label(self, message_id: str, source_id: str, target_id: str, *, archive: bool,
                   restore_inbox: bool) -> MailboxChange:
        """One messages.modify adds the target and removes the source: Gmail applies it atomically."""
        before = self.label_ids(message_id)
        add = [i for i in (target_id, INBOX if restore_inbox and not archive else None) if i and i not in before]
        remove = [i for i in (source_id, INBOX if archive else None) if i and i in before and i != target_id]
        if not add and not remove:
            return MailboxChange(False, before, before)
        return MailboxChange(True, before, self._modify(message_id, add, remove, f"re-labeling {message_id}"))

    def remove_label(self, message_id: str, label_id: str, *, restore_inbox: bool) -> MailboxChange:
        before = self.label_ids(message_id)
        add = [INBOX] if restore_inbox and INBOX not in before else []
        remove = [label_id] if label_id in before else []
        if not add and not remove:
            return MailboxChange(False, before, before)
        return MailboxChange(True, before, self._modify(message_id, add, remove, f"undoing a label on {message_id}"))


def gmail_service(token_path: Path, http: Any = None) -> Any:
    """The Gmail v1 service from an authorised-user token file (`labelrouter gmail auth` writes it);
    `http` replaces the transport (tests pass an HttpMockSequence). Discovery is the library's bundled
    copy: building the service needs no network."""
    from googleapiclient.discovery import build

    if http is not None:
        return build("gmail", "v1", http=http, cache_discovery=False, static_discovery=True)
    from google.auth.exceptions import RefreshError
    from google.auth.transport.requests import Request
    from google.oauth2.credentials import Credentials

    try:
        credentials = Credentials.from_authorized_user_file(str(token_path), SCOPES)
    except (OSError, ValueError) as exc:
        raise MailboxError(f"no usable Gmail token at {token_path} ({exc}); run `labelrouter gmail auth`") from None
    if not credentials.valid and credentials.refresh_token:
        try:
            credentials.refresh(Request())
        except RefreshError as exc:
            raise MailboxError(f"the Gmail token at {token_path} was refused ({exc}); run `labelrouter gmail auth`") from None
        token_path.write_text(credentials.to_json(), encoding="utf-8")
    return build("gmail", "v1", http=_per_thread_http(credentials), requestBuilder=_per_thread_request(credentials),
                 cache_discovery=False, static_discovery=True)


def _per_thread_http(credentials: Any) -> Any:
    import google_auth_httplib2
    from googleapiclient.http import build_http  # the library's own connection settings (timeout, redirects)

    return google_auth_httplib2.AuthorizedHttp(credentials, http=build_http())


def _per_thread_request(credentials: Any) -> Callable[..., Any]:
    """httplib2 connections are not thread-safe, and the graph applies labels from many threads at once:
    each thread gets its own authorised connection, kept for its later requests (the library's advice,
    docs/thread_safety.md of google-api-python-client, with reuse instead of one connection a request)."""
    from googleapiclient.http import HttpRequest

    local = threading.local()

    def build_request(_shared_http: Any, *args: Any, **kwargs: Any) -> Any:
        http = getattr(local, "http", None)
        if http is None:
            http = local.http = _per_thread_http(credentials)
        return HttpRequest(http, *args, **kwargs)

    return build_request


def authorise(client_secrets: Path, token_path: Path) -> None:
    """The OAuth installed-app flow: a browser consent, then the token saved owner-only."""
    from google_auth_oauthlib.flow import InstalledAppFlow

    flow = InstalledAppFlow.from_client_secrets_file(str(client_secrets), SCOPES)
    credentials = flow.run_local_server(port=0)
    private_dir(token_path.parent)
    token_path.write_text(credentials.to_json(), encoding="utf-8")
    token_path.chmod(0o600)
