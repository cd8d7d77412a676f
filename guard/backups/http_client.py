"""One small HTTP helper for remote backup services (Supabase Management API, admin endpoints).

Retry budget (defaults, per plug-in options `timeout` and `retries`): each attempt may take
``timeout`` (10 s) to connect and 10 s to read; up to ``retries`` (3) retries after a connection
error, a timeout, a dropped connection, a 5xx or a 429, waiting 0.5 s, 1 s, 2 s (or what
``Retry-After`` asks, capped at 30 s); the whole request gives up after 60 s. So the worst
case is 60 s, and a service that is down (connection refused) fails in about 4 s. 401 and 403
are never retried. Error messages name the service, method and URL path, never a token or a
header.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from msgspec import Struct

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
# The largest answer read (a backups list or a restore point is a few kilobytes): a bigger one
# is refused before it fills the memory.
MAX_ANSWER_BYTES = 16 * 1024 * 1024


class HttpPolicy(Struct, frozen=True):
    timeout: float = 10.0
    retries: int = 3
    backoff: float = 0.5
    max_retry_after: float = 30.0
    total: float = 60.0


class HttpError(Exception):
    """A request that did not succeed; ``status`` is None when no answer came back;
    ``attempts`` is how many times it was sent (more than 1: an earlier attempt may have
    taken effect although its answer was lost)."""

    def __init__(self, message: str, status: int | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts


def _retry_after(value: str | None, cap: float) -> float | None:
    if not value:
        return None
    try:
        return min(float(value), cap)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, min(when.timestamp() - time.time(), cap))


def loopback(host: str) -> bool:
    """Whether ``host`` (as parsed, no brackets) is this machine: ``localhost`` or a loopback
    IP address written in full (``127.0.0.1``, ``::1``); ``127.attacker.example`` is not."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: object) -> str:
    """The host ``url`` really reaches, as httpx (the client that sends it) parses it.

    Raises ValueError (a one-line reason, without the URL's user information) unless ``url``
    is https://, or http:// to a loopback host, with no user:password@ part (which would
    hide the real host: ``http://localhost@attacker.example`` goes to attacker.example)."""
    import httpx

    if not isinstance(url, str) or not url:
        raise ValueError("must be an http(s) URL")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise ValueError("must not contain white space or control characters")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        raise ValueError("is not a valid URL") from None
    if parsed.scheme not in ("https", "http") or not parsed.host:
        raise ValueError("must be an https:// URL with a host")
    if parsed.userinfo:
        raise ValueError(f"must not carry user information before the host (it would go to {parsed.host})")
    if parsed.scheme == "http" and not loopback(parsed.host):
        raise ValueError(f"must use https (plain http only to a loopback test server), not http://{parsed.host}")
    return str(parsed.host)


def _where(url: str) -> str:
    return url.split("?", 1)[0]


def request(
    method: str,
    url: str,
    *,
    service: str,
    token: str | None = None,
    json_body: Any = None,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    policy: HttpPolicy = HttpPolicy(),
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """Send the request with retries; the decoded JSON body of a 2xx answer (None if empty).

    Raises HttpError (one line, no secrets) otherwise; malformed JSON is an HttpError too.
    """
    import httpx

    try:
        check_url(url)  # the last gate before a token leaves: whatever built the URL
    except ValueError as exc:
        raise HttpError(f"{service}: the URL {exc}") from None
    for name, value in [("token", token or ""), *(headers or {}).items()]:
        # httpx sends headers as ASCII: anything else would fail inside it, after the run began.
        if not value.isascii() or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise HttpError(f"{service}: the {name} holds characters an HTTP header cannot carry "
                            "(non-ASCII or control characters)")
    sent_headers = {"Accept": "application/json", "User-Agent": "migration-guard"}
    if token:
        sent_headers["Authorization"] = f"Bearer {token}"
    sent_headers.update(headers or {})
    started = time.monotonic()
    attempt = 0
    where = f"{service}: {method} {_where(url)}"
    timeout = httpx.Timeout(policy.timeout, connect=policy.timeout)
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        while True:
            delay: float | None
            try:
                response = _send(client, (method, url, json_body, params, sent_headers), started + policy.total)
            except _Overdue:
                raise HttpError(f"{where}: no complete answer within {policy.total:g}s "
                                "(the server sends too slowly)", None, attempt + 1) from None
            except _TooLarge:
                raise HttpError(f"{where}: the answer is larger than {MAX_ANSWER_BYTES // 2**20} MiB", None,
                                attempt + 1) from None
            except httpx.TimeoutException:
                problem, status, delay = "timed out", None, policy.backoff * (2**attempt)
            except httpx.TransportError as exc:
                problem, status, delay = f"connection failed ({exc.__class__.__name__})", None, policy.backoff * (2**attempt)
            else:
                status = response.status_code
                if 200 <= status < 300:
                    if not response.body:
                        return None
                    try:
                        return json.loads(response.body)
                    except (ValueError, RecursionError):  # RecursionError: nested too deep
                        raise HttpError(f"{where}: the answer is not valid JSON", status) from None
                if status in (401, 403):
                    raise HttpError(f"{where}: HTTP {status}", status)
                if status not in RETRY_STATUS:
                    raise HttpError(f"{where}: HTTP {status}{_detail(response, sent_headers)}", status, attempt + 1)
                problem = f"HTTP {status}"
                delay = _retry_after(response.headers.get("Retry-After"), policy.max_retry_after)
                if delay is None:
                    delay = policy.backoff * (2**attempt)
            elapsed = time.monotonic() - started
            if attempt >= policy.retries or elapsed + delay > policy.total:
                tries = attempt + 1
                raise HttpError(f"{where}: {problem} after {tries} attempt{'s' if tries > 1 else ''} "
                                f"in {elapsed:.1f}s", status)
            attempt += 1
            sleep(delay)


class _Overdue(Exception):
    """No complete answer before the request's deadline."""


class _TooLarge(Exception):
    """An answer over MAX_ANSWER_BYTES."""


class _Answer(Struct, frozen=True):
    status_code: int
    headers: Mapping[str, str]
    body: bytes


def _send(client: Any, args: tuple[str, str, Any, Any, Mapping[str, str]], deadline: float) -> _Answer:
    """One attempt: the whole answer, read by a worker thread the caller waits for until
    ``deadline`` (time.monotonic()). httpx's timeouts bound each read, not the answer: a server
    that sends a byte every few seconds (headers or body) would hold guard for hours.
    Raises _Overdue, _TooLarge, or what httpx raised."""
    method, url, json_body, params, headers = args
    outcome: list[Any] = []

    def work() -> None:
        try:
            with client.stream(method, url, json=json_body, params=params, headers=headers) as response:
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_ANSWER_BYTES:
                        raise _TooLarge
                outcome.append(_Answer(response.status_code, response.headers, bytes(body)))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread as it is
            outcome.append(exc)

    worker = threading.Thread(target=work, name="guard-http", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    if worker.is_alive() or not outcome:
        raise _Overdue  # the thread ends when client.close() closes its connection
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    answer: _Answer = outcome[0]
    return answer


def _detail(response: _Answer, sent: Mapping[str, str]) -> str:
    """A short reason from an error body ({"message": ...}), never the whole body; the token and
    the headers ``sent`` are masked in it *before* it is shortened: a cut secret is a spelling
    no masker downstream knows. A message still holding 8 characters in a row of a secret
    (a server echoing its first or last characters: ``invalid token sbp_12ab...``) is not
    shown at all."""
    from guard.report.mask import Masker

    try:
        body = json.loads(response.body)
    except (ValueError, RecursionError):
        return ""
    if isinstance(body, dict):
        message = body.get("message") or body.get("error")
        if isinstance(message, str):
            secrets = [v.removeprefix("Bearer ") for k, v in sent.items()
                       if k not in ("Accept", "User-Agent", "Idempotency-Key")]
            masked = Masker(secrets)(message)
            if any(secret[i:i + 8] in masked for secret in secrets if len(secret) >= 8
                   for i in range(len(secret) - 7)):
                return " (the answer's message is not shown: it quotes part of a secret)"
            return f" ({masked[:120]})"
    return ""
