"""A client refused by a CurveZMQ daemon times out; it never waits in send for good.

libzmq leaves a DEALER whose handshake was refused without a peer some of the time (2 to 8
connections in 40 on this 2-core machine), and a send on a DEALER without a peer blocks: before the client bounded
its sends, such a client hung past its timeout (tests/examples/test_recipes_curve.py, once in CI).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
import zmq

from clients import AsyncClient, Client

ATTEMPTS = 30
TIMEOUT_S = 0.1


@pytest.fixture()
def curve_endpoint() -> Iterator[str]:
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    public, secret = zmq.curve_keypair()
    router.curve_server, router.curve_publickey, router.curve_secretkey = True, public, secret
    port = router.bind_to_random_port("tcp://127.0.0.1")
    yield f"tcp://127.0.0.1:{port}"
    router.close(linger=0)
    context.term()


def _bounded(call: object) -> BaseException | None:
    """Run `call` on a thread; the exception it raised, or fail if it is still running after 5 s."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()  # type: ignore[operator]
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(5.0)
    assert not thread.is_alive(), "the client hung past its timeout"
    return outcome[0]


def test_a_client_without_keys_times_out_every_time(curve_endpoint: str) -> None:
    for _ in range(ATTEMPTS):
        def status() -> None:
            with Client(curve_endpoint, timeout_s=TIMEOUT_S) as client:
                time.sleep(0.02)  # let the daemon refuse the handshake first (makes the peerless case likelier)
                client.status()

        assert isinstance(_bounded(status), TimeoutError)


def test_an_async_client_without_keys_times_out_every_time(curve_endpoint: str) -> None:
    async def status() -> None:
        async with AsyncClient(curve_endpoint, timeout_s=TIMEOUT_S) as client:
            await asyncio.sleep(0.02)
            await client.status()

    for _ in range(ATTEMPTS):
        assert isinstance(_bounded(lambda: asyncio.run(status())), TimeoutError)
