"""A fake transaction-mode pooler on 127.0.0.1: every transaction of a client goes to the next
of two server sessions, as PgBouncer (pool_mode = transaction) or Supavisor may send it.

It speaks just enough of the PostgreSQL protocol: it trusts its clients, logs in to the real
server with SCRAM-SHA-256 for each of its two sessions, and switches sessions whenever the
server reports the client idle (ReadyForQuery 'I')."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import socket
import struct
import threading
from contextlib import suppress

SSL_REQUEST = 80877103
GSS_REQUEST = 80877104


def _read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("peer closed")
        data += chunk
    return data


def _message(sock: socket.socket) -> tuple[bytes, bytes]:
    """(type byte, body) of one message."""
    head = _read_exact(sock, 5)
    return head[:1], _read_exact(sock, struct.unpack("!I", head[1:])[0] - 4)


def _send(sock: socket.socket, kind: bytes, body: bytes) -> None:
    sock.sendall(kind + struct.pack("!I", len(body) + 4) + body)


def _login(port: int, startup: bytes, password: str) -> tuple[socket.socket, list[tuple[bytes, bytes]]]:
    """A server session for ``startup`` (a StartupMessage body) and the messages the server
    sends after authentication (ParameterStatus, BackendKeyData, ReadyForQuery)."""
    params = startup[4:].split(b"\0")
    user = params[params.index(b"user") + 1].decode()
    server = socket.create_connection(("127.0.0.1", port))
    server.sendall(struct.pack("!I", len(startup) + 4) + startup)
    nonce = base64.b64encode(os.urandom(18)).decode()
    first_bare = f"n={user},r={nonce}"
    after: list[tuple[bytes, bytes]] = []
    auth_message = ""
    while True:
        kind, body = _message(server)
        if kind == b"R":
            code = struct.unpack("!I", body[:4])[0]
            if code == 10:  # SASL: send client-first
                first = ("n,," + first_bare).encode()
                _send(server, b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first)
            elif code == 11:  # server-first: send the proof
                server_first = body[4:].decode()
                fields = dict(item.split("=", 1) for item in server_first.split(","))
                salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(fields["s"]),
                                             int(fields["i"]))
                client_key = hmac.new(salted, b"Client Key", "sha256").digest()
                without_proof = f"c=biws,r={fields['r']}"
                auth_message = f"{first_bare},{server_first},{without_proof}"
                signature = hmac.new(hashlib.sha256(client_key).digest(), auth_message.encode(), "sha256").digest()
                proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature, strict=True)))
                _send(server, b"p", f"{without_proof},p={proof.decode()}".encode())
        elif kind == b"E":
            raise ConnectionError(body.decode(errors="replace"))
        elif kind != b"R":
            after.append((kind, body))
            if kind == b"Z":
                return server, after


class TransactionPooler:
    """``url(dbname)``: a URL through the pooler; ``close()`` stops it."""

    def __init__(self, server_port: int, password: str) -> None:
        self.server_port, self.password = server_port, password
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}?sslmode=disable"

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        with suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        servers: list[socket.socket] = []
        with suppress(ConnectionError, OSError), client:
            while True:
                body = _read_exact(client, struct.unpack("!I", _read_exact(client, 4))[0] - 4)
                if struct.unpack("!I", body[:4])[0] in (SSL_REQUEST, GSS_REQUEST):
                    client.sendall(b"N")
                    continue
                break
            sessions = [_login(self.server_port, body, self.password) for _ in range(2)]
            servers = [s for s, _ in sessions]
            _send(client, b"R", struct.pack("!I", 0))
            for kind, payload in sessions[0][1]:
                _send(client, kind, payload)
            current = 0
            while True:
                kind, payload = _message(client)
                if kind == b"X":
                    break
                _send(servers[current], kind, payload)
                if kind not in (b"Q", b"S"):
                    continue
                while True:
                    answer, data = _message(servers[current])
                    _send(client, answer, data)
                    if answer == b"Z":
                        break
                if data == b"I":
                    current = 1 - current
        for server in servers:
            server.close()
