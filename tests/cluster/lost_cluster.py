"""A --ray front whose cluster dies under it, then SIGTERM: run as a script (by test_ray_front.py),
PID 1 of a PID namespace of its own where the test can make one, so that the front's parent is PID 1
(as under systemd or in a container: Ray then ends a driver whose node died at once). Prints the
front's exit status and log as one JSON line.

    python tests/cluster/lost_cluster.py OUT_DIR
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from local_ray import LocalRay  # noqa: E402

from daemon.child import DaemonChild  # noqa: E402

#: Longest wait for each step: the front to see its worker lost, then to stop.
STEP_TIMEOUT_S = 60.0


def main(out: Path) -> dict[str, object]:
    head = LocalRay(num_cpus=1).wait_ready()
    front = None
    try:
        args = ["--out", str(out), "--device", "cpu", "--no-web", "--osc-port", "0", "--zmq-port", "0", "--pub-port",
                "0", "--log-level", "INFO", "--ray", head.address, "--ray-workers", "1", "--ray-call-timeout-s", "5"]
        front = DaemonChild(args, env=head.auth_env)
        head.stop()  # every process of the cluster: this machine's Ray node with it
        deadline_s = time.monotonic() + STEP_TIMEOUT_S
        while not any("Ray w0 lost" in line for line in front.log) and time.monotonic() < deadline_s:
            time.sleep(0.2)
        front.process.send_signal(signal.SIGTERM)
        status = front.process.wait(STEP_TIMEOUT_S)
        time.sleep(0.5)  # its last lines through the pipe
        return {"status": status, "parent_is_pid_1": os.getpid() == 1, "log": "".join(front.log)}
    finally:
        if front is not None:
            front.kill()
        head.stop()


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
