"""An HTTP-level fake of Supabase Storage's object API, served on a local port.

It answers the requests the official `supabase` / `storage3` client sends, in the shapes Supabase
documents (https://supabase.com/docs/reference/api — storage object endpoints):

    POST   /storage/v1/object/{bucket}/{path}        upload (multipart `file`; `x-upsert: true` replaces)
    PUT    /storage/v1/object/{bucket}/{path}        update
    GET    /storage/v1/object/{bucket}/{path}        download
    POST   /storage/v1/object/list/{bucket}          list one folder level: {"prefix", "limit", "offset", ...}
    DELETE /storage/v1/object/{bucket}               {"prefixes": [paths]}

Errors come back as {"statusCode": "...", "error": "...", "message": "..."}. Every request must carry the
service key (`apikey` and `Authorization: Bearer`). A real server on a socket, so a second process (the
CLI in a subprocess) sees the same bucket. `fail_uploads_after` makes uploads fail (HTTP 500) after that
many succeeded, for partial-upload tests.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

PREFIX = "/storage/v1/object/"


class FakeStorage:
    def __init__(self, key: str = "service-role-test-key"):
        self.key = key
        self.objects: dict[tuple[str, str], bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.fail_uploads_after: int | None = None
        self._uploads = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeStorage:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def keys(self, bucket: str = "models") -> list[str]:
        return sorted(k for b, k in self.objects if b == bucket)

    # -- the API -------------------------------------------------------------------------------------
    def _list(self, bucket: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        prefix = str(body.get("prefix") or "").strip("/")
        base = f"{prefix}/" if prefix else ""
        files: dict[str, dict[str, Any]] = {}
        folders: set[str] = set()
        for (b, key), data in self.objects.items():
            if b != bucket or not key.startswith(base):
                continue
            rest = key[len(base):]
            if "/" in rest:
                folders.add(rest.split("/", 1)[0])
            else:
                now = datetime.now(UTC).isoformat()
                files[rest] = {"name": rest, "id": str(uuid.uuid5(uuid.NAMESPACE_URL, key)), "updated_at": now,
                               "created_at": now, "last_accessed_at": now,
                               "metadata": {"size": len(data), "mimetype": "application/octet-stream",
                                            "eTag": f'"{hash(data) & 0xffffffff:x}"', "cacheControl": "no-cache"}}
        entries = [{"name": f, "id": None, "updated_at": None, "created_at": None, "last_accessed_at": None,
                    "metadata": None} for f in folders] + list(files.values())
        entries.sort(key=lambda e: e["name"])
        offset, limit = int(body.get("offset") or 0), int(body.get("limit") or 100)
        return entries[offset : offset + limit]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        storage = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet test output
                pass

            def _reply(self, status: int, body: Any, content_type: str = "application/json") -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, error: str, message: str) -> None:
                self._reply(status, {"statusCode": str(status), "error": error, "message": message})

            def _authorised(self) -> bool:
                ok = (self.headers.get("apikey") == storage.key
                      and self.headers.get("Authorization") == f"Bearer {storage.key}")
                if not ok:
                    self._error(403, "Unauthorized", "invalid signature")
                return ok

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _route(self) -> tuple[str, str] | None:
                path = unquote(urlsplit(self.path).path)
                if not path.startswith(PREFIX):
                    self._error(404, "not_found", "no such route")
                    return None
                rest = path[len(PREFIX):]
                bucket, _, key = rest.partition("/")
                return bucket, key

            def do_GET(self) -> None:  # noqa: N802
                if not self._authorised() or (route := self._route()) is None:
                    return
                storage.requests.append(("GET", route[1]))
                data = storage.objects.get(route)
                if data is None:
                    self._error(404, "not_found", "Object not found")
                else:
                    self._reply(200, data, "application/octet-stream")

            def _upload(self, method: str) -> None:
                if not self._authorised() or (route := self._route()) is None:
                    return
                bucket, key = route
                body = self._body()
                if bucket == "list":  # POST /object/list/{bucket}
                    storage.requests.append(("LIST", key))
                    self._reply(200, storage._list(key, json.loads(body or b"{}")))
                    return
                storage.requests.append((method, key))
                message = BytesParser().parsebytes(
                    f"Content-Type: {self.headers.get('Content-Type')}\r\n\r\n".encode() + body)
                parts = [p for p in message.get_payload() if p.get_param("name", header="content-disposition") == "file"] \
                    if message.is_multipart() else []
                if not parts:
                    self._error(400, "InvalidRequest", "no file in the form")
                    return
                with storage._lock:
                    if storage.fail_uploads_after is not None and storage._uploads >= storage.fail_uploads_after:
                        self._error(500, "InternalError", "upstream storage unavailable")
                        return
                    exists = route in storage.objects
                    if method == "POST" and exists and self.headers.get("x-upsert") != "true":
                        self._error(409, "Duplicate", "The resource already exists")
                        return
                    storage.objects[route] = parts[0].get_payload(decode=True) or b""
                    storage._uploads += 1
                self._reply(200, {"Key": f"{bucket}/{key}", "Id": str(uuid.uuid4())})

            def do_POST(self) -> None:  # noqa: N802
                self._upload("POST")

            def do_PUT(self) -> None:  # noqa: N802
                self._upload("PUT")

            def do_DELETE(self) -> None:  # noqa: N802
                if not self._authorised() or (route := self._route()) is None:
                    return
                bucket = route[0]
                prefixes = json.loads(self._body() or b"{}").get("prefixes") or []
                storage.requests.append(("DELETE", ",".join(prefixes)))
                removed = []
                for key in prefixes:
                    if storage.objects.pop((bucket, key), None) is not None:
                        removed.append({"name": key, "bucket_id": bucket})
                self._reply(200, removed)

        return Handler
