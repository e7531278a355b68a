"""Load, lighter than bench/daemon_load.py: 32 ZeroMQ clients at once, and an OSC flood beside a client."""

from __future__ import annotations

import os
import threading

from daemon_harness import DaemonThread

from bench.daemon_load import RssSampler, osc_flood, render_s, run_clients, status_round_trips, summarize

CLIENTS, REQUESTS = 32, 2


def test_32_clients_every_request_completes_in_order_or_is_refused_at_once(debug_daemon: DaemonThread) -> None:
    render_s(debug_daemon.zmq, 0.25)  # warm
    with RssSampler(os.getpid()) as rss:
        outcomes = run_clients(debug_daemon.zmq, clients=CLIENTS, requests=REQUESTS, duration_s=0.25, timeout_s=60)
    summary = summarize(outcomes, CLIENTS * REQUESTS)
    print(f"\n{summary}; RSS before {rss.before_mib:.0f} MiB, peak {rss.peak_mib:.0f} MiB, "
          f"after {rss.read_mib():.0f} MiB")
    assert summary["answered"] == CLIENTS * REQUESTS, summary  # nothing lost
    assert summary["failed"] == 0, summary["failures"]  # in order, contiguous, nobody else's events
    assert summary["duplicate_jobs"] == 0
    assert summary["done"] >= 1 and summary["done"] + summary["refused_queue_full"] == CLIENTS * REQUESTS
    # The whole test process (32 clients included) stays within bounds.
    assert rss.peak_mib - rss.before_mib < 300, (rss.before_mib, rss.peak_mib)
    status = status_round_trips(debug_daemon.zmq, count=1)
    assert status


def test_an_osc_flood_does_not_starve_zeromq_clients(debug_daemon: DaemonThread) -> None:
    quiet_render_s = render_s(debug_daemon.zmq, 0.5)
    result: dict = {}

    def flood() -> None:
        result["sent"], result["seconds"] = osc_flood(debug_daemon.osc_port, packets=6000, rate_per_s=5000.0,
                                                      max_s=4.0)

    flooder = threading.Thread(target=flood)
    flooder.start()
    try:
        round_trips = status_round_trips(debug_daemon.zmq, count=40)
        flooded_render_s = render_s(debug_daemon.zmq, 0.5)
    finally:
        flooder.join(10)
    print(f"\nflood {result}; status worst {max(round_trips) * 1000:.1f} ms; render {quiet_render_s:.2f} s quiet, "
          f"{flooded_render_s:.2f} s flooded")
    assert result["sent"] >= 4000  # thousands of packets a second really were sent
    assert max(round_trips) < 2.0, "a status request waited seconds behind the flood"
    assert flooded_render_s < quiet_render_s + 10.0
    assert status_round_trips(debug_daemon.zmq, count=3)
