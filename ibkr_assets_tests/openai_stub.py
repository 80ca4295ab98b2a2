"""A scriptable OpenAI-compatible server on 127.0.0.1 for tests of the real ``openai`` client.

``start_openai_stub()`` serves ``POST /v1/chat/completions`` from a thread; each request takes
the next scripted reply (``answer``, ``refusal``, ``error``, ``hang``, and the faults of a
misbehaving server or proxy: ``non_json``, ``drip``, ``truncated``) and is recorded, so tests can
assert what the client sent and how many HTTP requests it made. With no reply left the stub
answers 500 with ``x-should-retry: false`` so a missing script fails loudly. ``route`` replaces
the script with a function of the request body, for concurrent calls whose order is not known.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_HANG_S = 3.0
PROXY_PAGE = (
    "<html><head><title>502 Bad Gateway</title></head>"
    "<body><h1>502 Bad Gateway</h1><hr>nginx</body></html>"
)


@dataclass(frozen=True)
class StubReply:
    """One scripted reply: an HTTP status, a body (JSON, or text sent as is) and headers.

    It is sent after ``delay_s``; with ``drip_s`` the first ``drip_bytes`` of the body go out
    one byte every ``drip_s`` seconds, then the rest; with ``truncate_at`` the connection closes
    after that many body bytes although ``Content-Length`` announced the whole body.
    """

    status: int
    body: dict[str, Any] | str
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    content_type: str = "application/json"
    drip_s: float = 0.0
    drip_bytes: int = 0
    truncate_at: int | None = None


def answer(
    content: str | None,
    *,
    refusal: str | None = None,
    prompt_tokens: int = 1200,
    completion_tokens: int = 150,
    model: str = "stub-model",
    finish_reason: str = "stop",
) -> StubReply:
    """A 200 chat completion whose message content is ``content``."""
    message = {"role": "assistant", "content": content, "refusal": refusal}
    return StubReply(
        200,
        {
            "id": "chatcmpl-stub",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        },
    )


def refusal(text: str = "I'm sorry, I can't help with that.") -> StubReply:
    return answer(None, refusal=text)


def error(status: int, message: str = "stub error", **headers: str) -> StubReply:
    """An error reply in OpenAI's shape; headers use underscores (``retry_after="0"``)."""
    return StubReply(
        status,
        {"error": {"message": message, "type": "stub_error", "code": None}},
        {name.replace("_", "-"): value for name, value in headers.items()},
    )


def hang(seconds: float = MAX_HANG_S) -> StubReply:
    """Answer only after ``seconds`` (bounded), to trip the client's timeout."""
    return StubReply(200, answer('{"never": "read"}').body, delay_s=min(seconds, MAX_HANG_S))


def non_json(
    text: str = PROXY_PAGE, *, content_type: str = "text/html", status: int = 200
) -> StubReply:
    """A body that is not a chat completion (by default a proxy's HTML error page, HTTP 200)."""
    return StubReply(status, text, content_type=content_type)


def drip(reply: StubReply, seconds_per_byte: float = 1.0, count: int = 20) -> StubReply:
    """``reply`` whose first ``count`` body bytes come one every ``seconds_per_byte`` seconds.

    Each byte arrives well within a per-read timeout, so only a deadline on the whole call
    stops the client before ``count * seconds_per_byte`` seconds.
    """
    return dataclasses.replace(reply, drip_s=seconds_per_byte, drip_bytes=count)


def truncated(reply: StubReply, keep: int = 40) -> StubReply:
    """``reply`` cut off after ``keep`` body bytes: the connection closes mid-body."""
    return dataclasses.replace(reply, truncate_at=keep)


class OpenAIStub:
    """The running stub: ``base_url`` for the client, ``requests`` as received."""

    def __init__(self) -> None:
        self.base_url = ""  # set once the server has a port
        self.requests: list[dict[str, Any]] = []  # {"path", "headers", "body"}
        self._replies: list[StubReply] = []
        self._route: Callable[[dict[str, Any]], StubReply] | None = None
        self._lock = threading.Lock()
        self.stopping = threading.Event()

    def script(self, *replies: StubReply) -> None:
        """Queue replies, served one per request in order."""
        with self._lock:
            self._replies.extend(replies)

    def route(self, reply_for: Callable[[dict[str, Any]], StubReply] | None) -> None:
        """Answer each request with ``reply_for(body)`` instead of the script (None: the script)."""
        with self._lock:
            self._route = reply_for

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [request["body"] for request in self.requests]

    def _take(self, record: dict[str, Any]) -> StubReply:
        with self._lock:
            self.requests.append(record)
            route = self._route
            if route is None and self._replies:
                return self._replies.pop(0)
        if route is not None:
            return route(record["body"])
        return error(500, "stub: no scripted reply left", x_should_retry="false")


def _handler(stub: OpenAIStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {"unparsed": raw.decode("utf-8", "replace")}
            record = {"path": self.path, "headers": dict(self.headers.items()), "body": body}
            if self.path.rstrip("/") != "/v1/chat/completions":
                reply = error(404, f"stub: no route {self.path}")
                with stub._lock:
                    stub.requests.append(record)
            else:
                reply = stub._take(record)
            if reply.delay_s and stub.stopping.wait(reply.delay_s):
                return
            body = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
            payload = body.encode("utf-8")
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if reply.truncate_at is not None:
                    self.wfile.write(payload[: reply.truncate_at])
                    self.close_connection = True
                elif reply.drip_s:
                    for i in range(min(reply.drip_bytes, len(payload))):
                        if stub.stopping.wait(reply.drip_s):
                            return
                        self.wfile.write(payload[i : i + 1])
                    self.wfile.write(payload[reply.drip_bytes :])
                else:
                    self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (timeout) before the reply

    return Handler


@contextmanager
def start_openai_stub() -> Iterator[OpenAIStub]:
    """Serve a fresh stub on 127.0.0.1 (a free port) until the block ends."""
    stub = OpenAIStub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))  # handler threads are daemons
    stub.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="openai-stub", daemon=True
    )
    thread.start()
    try:
        yield stub
    finally:
        stub.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
