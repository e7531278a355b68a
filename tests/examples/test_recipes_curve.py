"""The recipes reach a daemon that requires CurveZMQ (as one listening beyond loopback does)."""

from __future__ import annotations

import argparse
import asyncio
import shutil
from pathlib import Path

import soundfile as sf
from daemon_harness import DaemonThread, fake_loader, make_config
from recipe_harness import run_recipe

from clients import AsyncClient
from clients.cli.main import main as riffd
from clients.examples.live_pads import _curve


def test_recipes_use_curve_keys(tmp_path: Path) -> None:
    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    allowed.mkdir()
    for name in ("server", "laptop"):
        assert riffd(["keys", str(keys), "--name", name]) == 0
    shutil.copy(keys / "laptop.key", allowed / "laptop.key")
    config = make_config(tmp_path / "out", models=("fake/fast",), zmq_curve=True,
                         curve_secret_key=keys / "server.key_secret", curve_clients_dir=allowed)
    daemon = DaemonThread(config, loader=fake_loader).start()
    try:
        setlist = tmp_path / "set.toml"
        setlist.write_text('[[section]]\nprompt = "a"\nduration_s = 0.5\n\n'
                           '[[section]]\nprompt = "b"\nduration_s = 0.5\ncontinue = true\n')
        keyed = ["--curve-secret-key", str(keys / "laptop.key_secret"), "--curve-server-key", str(keys / "server.key")]
        done = run_recipe("setlist", str(setlist), "--out", str(tmp_path / "set"), "--endpoint", daemon.zmq, *keyed)
        assert done.returncode == 0, done.stderr
        assert sf.info(tmp_path / "set" / "02-section2.wav").frames == 8000
        # Without keys the daemon ignores the client: the recipe gives up when its timeout passes.
        done = run_recipe("setlist", str(setlist), "--out", str(tmp_path / "nokeys"), "--endpoint", daemon.zmq,
                          "--timeout", "1")
        assert done.returncode == 2 and not (tmp_path / "nokeys" / "01-section1.wav").exists()
        assert "CurveZMQ keys" in done.stderr and "Traceback" not in done.stderr

        # The asyncio recipe (live pads) builds its client the same way.
        args = argparse.Namespace(curve_secret_key=keys / "laptop.key_secret", curve_server_key=keys / "server.key")

        async def status() -> str:
            async with AsyncClient(daemon.zmq, timeout_s=10, curve=_curve(args)) as client:
                return (await client.status()).default_model

        assert asyncio.run(status()) == "fake/fast"
    finally:
        daemon.stop()
