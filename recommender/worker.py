"""The gunicorn worker: slow or abusive clients cannot starve the service.

A subclass of gunicorn's threaded worker in which no thread ever waits on a client:

- Requests are read in the worker's event loop, without blocking, and framed by h11 (a
  request's headers, its Content-Length or chunked body). Only a complete request goes to a
  thread, so any number of connections that dribble bytes cost a socket each and nothing more.
  A request not complete ``read_timeout`` seconds after its first byte is answered 408, a body
  over the limit 413 (both as soon as it is known), in the API's JSON error shape.
- POST requests (the ones that run the model) compute in ``compute_slots`` threads; every other
  request has its own few threads, so ``/health``, ``/ready`` and ``/metrics`` never queue
  behind a computation.
- Closing a connection lingers (RFC 9112 section 9.6: send FIN, read what the client still
  sends, then close) in the event loop too. gunicorn's threaded worker lingers up to 2 s per
  connection on its main thread, so a burst of closes (ten dribblers answered 408 at once)
  stalled every other connection of the worker, kept-alive ones included, for seconds.
- gunicorn's own refusals (a bad request line, too many headers, an unsupported transfer
  coding) keep gunicorn's statuses and messages but go out as JSON.
- On SIGTERM the worker first accepts what is already waiting in the listen backlog, then
  answers what it holds (``Connection: close``) within gunicorn's ``graceful_timeout``.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import io
import itertools
import selectors
import socket
import time
import uuid
from concurrent import futures
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus
from typing import Any

import h11
from gunicorn import util
from gunicorn.http.body import Body
from gunicorn.http.errors import NoMoreData
from gunicorn.http.parser import RequestParser
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, ThreadWorker

from recommender.observability import REQUEST_ID, REQUEST_ID_HEADER
from recommender.schemas import ErrorBody, ErrorDetail, to_json

# Most header bytes one request may send (gunicorn's own limits on the request line, the
# number of fields and each field's size then apply as usual).
MAX_HEADER_BYTES = 64 * 1024
# Threads for requests that do not compute (GET, HEAD, OPTIONS ...).
QUICK_THREADS = 4
# How long a closing connection may still send before it is closed regardless.
LINGER_SECONDS = 2.0
LINGER_MAX_BYTES = 64 * 1024
RECEIVE_BYTES = 64 * 1024


@dataclass(frozen=True)
class ServingLimits:
    """What the worker enforces before a request reaches the app."""

    # Seconds from a request's first byte to its last (headers and body).
    read_timeout: float = 10.0
    # Requests computing (POST) at once in one worker; others wait their turn in order.
    compute_slots: int = 1
    # Largest request body, in bytes (the app's MAX_CONTENT_LENGTH).
    max_body: int = 64 * 1024

    @classmethod
    def of(cls, app: Any) -> ServingLimits:
        """The limits the served app's configuration sets (the one place settings are read)."""
        config = getattr(app, "config", {})
        default = cls()
        return cls(
            read_timeout=float(config.get("READ_TIMEOUT", default.read_timeout)),
            compute_slots=int(config.get("COMPUTE_SLOTS", default.compute_slots)),
            max_body=int(config.get("MAX_CONTENT_LENGTH", default.max_body)),
        )


def too_large(limit: int) -> str:
    """The 413 message, the same from the worker (any framing) and from the app."""
    return f"request body over the limit of {limit} bytes"


def printable(message: str, limit: int = 300) -> str:
    """A message that may echo client bytes: escaped to ASCII-safe UTF-8 and capped."""
    text = message.encode("utf-8", "backslashreplace").decode("utf-8")
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_response(status: int, code: str, message: str, request_id: str) -> bytes:
    """A complete HTTP/1.1 response in the API's error shape; the connection closes after it."""
    detail = ErrorDetail(code=code, message=printable(message), request_id=request_id)
    body = to_json(ErrorBody(error=detail)).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"{REQUEST_ID_HEADER}: {request_id}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


def write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's ``util.write_error`` with the API's JSON body instead of an HTML page."""
    phrase = HTTPStatus(status_int).phrase
    code = phrase.lower().replace(" ", "_").replace("-", "_")
    message = mesg or ("internal error; see the server log" if status_int >= 500 else phrase)
    util.write_nonblock(sock, error_response(status_int, code, message, REQUEST_ID.get()))


class Connection:
    """A client connection between requests: its next request is read in the event loop."""

    def __init__(self, sock: socket.socket, client: Any, server: Any) -> None:
        self.sock = sock
        self.client = client
        self.server = server
        self.parser: Any = None  # gthread's handle_request reads conn.parser only for HTTP/2
        self.closed = False
        self.lingering = False
        self.drained = 0
        self.deadline = 0.0
        self.leftover = b""
        self.next_request()

    def next_request(self) -> None:
        self.reader = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        self.data = bytearray()
        self.idle = True  # not a byte of the next request yet
        self.body_bytes = 0
        self.method = b""

    @property
    def computes(self) -> bool:
        return self.method == b"POST"


class ServiceWorker(ThreadWorker):
    """gunicorn's gthread worker, reading requests in its event loop (see the module)."""

    limits = ServingLimits()
    tpool: futures.ThreadPoolExecutor

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.quick: futures.ThreadPoolExecutor | None = None
        self.deadlines: list[tuple[float, int, Connection]] = []
        self.order = itertools.count()
        self.registered: set[Connection] = set()

    def init_process(self) -> None:
        # gunicorn's refusals (400, 414, 431, 501 ...) go out as JSON from this worker on.
        util.write_error = write_json_error
        self.quick = futures.ThreadPoolExecutor(QUICK_THREADS, thread_name_prefix="quick")
        super().init_process()

    # --- the event loop -----------------------------------------------------------------

    def run(self) -> None:
        # The app is loaded now: its configuration gives the limits and the compute slots.
        self.limits = ServingLimits.of(self.wsgi)
        self.tpool.shutdown(wait=False)
        self.tpool = futures.ThreadPoolExecutor(
            self.limits.compute_slots, thread_name_prefix="compute"
        )
        self.poller.register(
            self.method_queue.fileno(), selectors.EVENT_READ, self.method_queue.run_callbacks
        )
        self.set_accept_enabled(True)
        while self.alive:
            self.notify()
            can_accept = self.nr_conns < self.worker_connections
            if can_accept != self._accepting:
                self.set_accept_enabled(can_accept)
            self.wait_for_and_dispatch_events(timeout=self.until_next_deadline())
            if not self.is_parent_alive():
                break
            self.expire()
        self.shut_down()

    def shut_down(self) -> None:
        """Take what waits in the listen backlog, then answer everything held, within bounds."""
        if self.is_parent_alive():
            for listener in self.sockets:
                self.drain_backlog(listener)
        self.set_accept_enabled(False)
        for listener in self.sockets:  # once every worker has, new connections are refused
            listener.close()
        # A kept-alive client may be sending its next request now: it gets a short while.
        soon = time.monotonic() + STOP_KEEPALIVE_LINGER
        for conn in list(self.registered):
            if conn.idle and not conn.lingering:
                self.set_deadline(conn, min(conn.deadline, soon))
        graceful = time.monotonic() + self.cfg.graceful_timeout
        while self.nr_conns > 0 and time.monotonic() < graceful:
            self.notify()
            self.wait_for_and_dispatch_events(timeout=self.until_next_deadline())
            self.expire()
        for conn in list(self.registered):
            self.close_now(conn)
        self.tpool.shutdown(wait=False)
        if self.quick is not None:
            self.quick.shutdown(wait=False)
        self.poller.close()
        self.method_queue.close()

    def drain_backlog(self, listener: socket.socket) -> None:
        listener.setblocking(False)
        while self.nr_conns < self.worker_connections:
            if not self.accept(listener):
                return

    def until_next_deadline(self) -> float:
        if not self.deadlines:
            return 1.0
        return min(1.0, max(0.0, self.deadlines[0][0] - time.monotonic()))

    def set_deadline(self, conn: Connection, deadline: float) -> None:
        conn.deadline = deadline
        heapq.heappush(self.deadlines, (deadline, next(self.order), conn))

    def expire(self) -> None:
        """Act on connections whose time is up: 408, a silent close, or the end of a linger."""
        now = time.monotonic()
        while self.deadlines and self.deadlines[0][0] <= now:
            deadline, _, conn = heapq.heappop(self.deadlines)
            if conn.closed or deadline != conn.deadline or conn not in self.registered:
                continue  # superseded, dispatched or closed meanwhile
            if conn.lingering or conn.idle:
                self.close_now(conn)
            else:
                seconds = f"{self.limits.read_timeout:g}"
                self.refuse(
                    conn, 408, "request_timeout", f"the request was not complete in {seconds} s"
                )

    # --- reading ------------------------------------------------------------------------

    def accept(self, listener: socket.socket) -> bool:
        try:
            sock, client = listener.accept()
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return False
        sock.setblocking(False)
        self.nr_conns += 1
        conn = Connection(sock, client, listener.getsockname())
        self.wait_for_request(conn, self.limits.read_timeout)
        return True

    def wait_for_request(self, conn: Connection, idle_timeout: float) -> None:
        self.set_deadline(conn, time.monotonic() + idle_timeout)
        self.watch(conn, self.on_readable)
        if conn.leftover:  # pipelined bytes read along with the previous request
            data, conn.leftover = conn.leftover, b""
            self.feed(conn, data)

    def watch(self, conn: Connection, callback: Any) -> None:
        if conn in self.registered:
            self.poller.modify(conn.sock, selectors.EVENT_READ, partial(callback, conn))
        else:
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(callback, conn))
            self.registered.add(conn)

    def unwatch(self, conn: Connection) -> None:
        if conn in self.registered:
            self.registered.discard(conn)
            with contextlib.suppress(KeyError, ValueError, OSError):
                self.poller.unregister(conn.sock)

    def on_readable(self, conn: Connection, _sock: Any = None) -> None:
        try:
            data = conn.sock.recv(RECEIVE_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close_now(conn)
            return
        if not data:  # the client closed its side
            if conn.idle:
                self.close_now(conn)
            else:
                self.refuse(
                    conn,
                    400,
                    "bad_request",
                    "the connection closed before the request was complete",
                )
            return
        self.feed(conn, data)

    def feed(self, conn: Connection, data: bytes) -> None:
        """Frame what arrived; dispatch a complete request, refuse one that cannot be served."""
        if conn.idle:
            conn.idle = False
            self.set_deadline(conn, time.monotonic() + self.limits.read_timeout)
        conn.data += data
        conn.reader.receive_data(data)
        try:
            while True:
                event = conn.reader.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    return
                if isinstance(event, h11.Request):
                    conn.method = bytes(event.method)
                    length = next((int(v) for k, v in event.headers if k == b"content-length"), 0)
                    if length > self.limits.max_body:
                        self.too_large(conn)
                        return
                    if conn.reader.they_are_waiting_for_100_continue:
                        self.send(conn, b"HTTP/1.1 100 Continue\r\n\r\n")
                elif isinstance(event, h11.Data):
                    conn.body_bytes += len(event.data)
                    if conn.body_bytes > self.limits.max_body:
                        self.too_large(conn)
                        return
                elif isinstance(event, h11.EndOfMessage):
                    trailing = conn.reader.trailing_data[0]
                    request = bytes(conn.data[: len(conn.data) - len(trailing)])
                    self.dispatch(conn, request, bytes(trailing), problem=None)
                    return
        except h11.RemoteProtocolError as error:
            if error.error_status_hint == 431:
                self.refuse(
                    conn,
                    431,
                    "request_header_fields_too_large",
                    f"the request's headers are over {MAX_HEADER_BYTES} bytes",
                )
                return
            # gunicorn's parser says exactly what is wrong (400, 414, 431, 501 ...).
            self.dispatch(conn, bytes(conn.data), b"", problem=str(error))

    def too_large(self, conn: Connection) -> None:
        self.refuse(conn, 413, "request_entity_too_large", too_large(self.limits.max_body))

    def dispatch(self, conn: Connection, request: bytes, leftover: bytes, problem: str | None):
        self.unwatch(conn)
        conn.leftover = leftover
        pool = self.tpool if conn.computes else self.quick
        assert pool is not None
        future = pool.submit(self.serve, conn, request, problem)
        future.add_done_callback(
            lambda done: self.method_queue.defer(self.finish_request, conn, done)
        )

    # --- serving (in a thread) ----------------------------------------------------------

    def serve(self, conn: Connection, request: bytes, problem: str | None) -> bool:
        """Answer one complete request; whether the connection may serve another."""
        req = None
        try:
            conn.sock.setblocking(True)
            # Writing the response must not wait forever on a client that does not read.
            conn.sock.settimeout(self.limits.read_timeout)
            parser = RequestParser(self.cfg, [request], conn.client)
            req = next(parser)
            # The whole body is here: read it now, so a malformed one is a 400 before the app.
            body = req.body.read()
            req.body = Body(io.BytesIO(body))
            req._expected_100_continue = False  # sent by the event loop already
            keepalive = self.handle_request(req, conn)
            # A request gunicorn framed differently from h11 leaves bytes behind: never reuse.
            return bool(keepalive) and not parser.unreader.take_buffered()
        except NoMoreData:
            if problem is not None:
                self.refuse(conn, 400, "bad_request", problem, close=False)
        except StopIteration:
            pass
        except OSError as error:
            if error.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, None):
                self.log.exception("socket error answering a request")
        except Exception as error:
            self.handle_error(req, conn.sock, conn.client, error)
        return False

    def finish_request(self, conn: Connection, future: futures.Future) -> None:  # type: ignore[override]
        """Back in the event loop: wait for the next request, or close."""
        try:
            keepalive = not future.cancelled() and future.result()
        except Exception:
            keepalive = False
        if conn.closed:
            return
        if keepalive and self.alive:
            try:
                conn.sock.setblocking(False)
            except OSError:
                self.close_now(conn)
                return
            conn.next_request()
            self.wait_for_request(conn, self.cfg.keepalive)
        else:
            self.close(conn)

    # --- answering and closing from the event loop ----------------------------------------

    def send(self, conn: Connection, data: bytes) -> None:
        """Write a short response without blocking; what does not fit is dropped (the client
        is not reading, and the connection closes)."""
        with contextlib.suppress(OSError):
            conn.sock.send(data)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """gunicorn's refusal (its status, message and log line), with a request id."""
        token = REQUEST_ID.set(uuid.uuid4().hex)
        try:
            super().handle_error(req, client, addr, exc)
        finally:
            REQUEST_ID.reset(token)

    def refuse(
        self, conn: Connection, status: int, code: str, message: str, *, close: bool = True
    ) -> None:
        """Answer in the API's error shape; the connection closes after it."""
        token = REQUEST_ID.set(uuid.uuid4().hex)
        try:
            self.log.warning("%s %s from %s: %s", status, code, conn.client[0], message)
            self.send(conn, error_response(status, code, message, REQUEST_ID.get()))
        finally:
            REQUEST_ID.reset(token)
        if close:
            self.close(conn)

    def close(self, conn: Connection) -> None:
        """Close after lingering: FIN first, then read (and drop) what the client still sends
        for a short while, so the kernel does not answer it with a reset that could destroy
        the response on its way."""
        if conn.closed or conn.lingering:
            return
        try:
            conn.sock.setblocking(False)
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close_now(conn)
            return
        conn.lingering = True
        self.set_deadline(conn, time.monotonic() + LINGER_SECONDS)
        self.watch(conn, self.on_linger)

    def on_linger(self, conn: Connection, _sock: Any = None) -> None:
        try:
            data = conn.sock.recv(RECEIVE_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        conn.drained += len(data)
        if not data or conn.drained > LINGER_MAX_BYTES:
            self.close_now(conn)

    def close_now(self, conn: Connection) -> None:
        if conn.closed:
            return
        self.unwatch(conn)
        conn.closed = True
        self.nr_conns -= 1
        util.close(conn.sock)
