"""The GePG simulator takes many payers at once (the bench's 1,000 payments met its
listen backlog): connections made while it is busy wait in the queue, none is dropped."""

from __future__ import annotations

import socket
import threading

from cryptography.hazmat.primitives.asymmetric import rsa

from deploy.gepgsim import Simulator, _Server, make_handler

PAYERS = 100


def test_a_hundred_payers_connecting_at_once_are_all_queued_then_answered() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sim = Simulator("http://127.0.0.1:9/callback", key, None)
    server = _Server(("127.0.0.1", 0), make_handler(sim))
    server.daemon_threads = True
    port = server.server_address[1]
    sockets: list[socket.socket] = []
    serving: threading.Thread | None = None
    try:
        # Not serving yet: nothing is accepted, so every connection waits in the listen
        # queue. A full queue drops the handshake and the connect would time out.
        for _ in range(PAYERS):
            sockets.append(socket.create_connection(("127.0.0.1", port), timeout=0.5))
        serving = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        serving.start()
        for s in sockets:
            s.settimeout(10)
            s.sendall(b"GET /health HTTP/1.0\r\nHost: gepg\r\n\r\n")
        answers = []
        for s in sockets:
            data = b""
            while chunk := s.recv(4096):
                data += chunk
            answers.append(data.split(b"\r\n", 1)[0])
        assert answers == [b"HTTP/1.0 200 OK"] * PAYERS
    finally:
        for s in sockets:
            s.close()
        if serving is not None:
            server.shutdown()
        server.server_close()
        sim.http.close()
