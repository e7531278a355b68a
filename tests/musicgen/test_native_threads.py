"""The native int8 decode runs as fast on a process's main thread as on any other.

It once ran 10 to 25 times slower on the main thread (`riffd render`, the benchmarks): the kernels'
OpenMP regions and PyTorch's spin-waiting OpenMP threads took turns on the cores (daemon/native/
pool.c and daemon/__init__.py say how). Spinning only costs where threads outnumber free cores,
so the check runs beside one busy process of its own, as on the shared machines where it was found."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading

import pytest
import torch

from daemon.native import NativeUnavailable, kernels

SCRIPT = textwrap.dedent("""
    import json, sys, threading, time
    from pathlib import Path
    from daemon.models.registry import load_backend  # first: daemon's OpenMP settings before torch loads
    from daemon.models.musicgen.conditioning import build_conditioning
    from protocol.params import GenerationParams
    import torch

    backend = load_backend("debug/musicgen", device="cpu", cache_dir=Path(sys.argv[1]), engine="int8+nowarmup")
    engine = backend.engine
    assert engine.decoder.native is not None
    assert torch.get_num_threads() == 2, torch.get_num_threads()
    cond = build_conditioning(backend.bundle, ["drums"], guidance_scale=3.0)
    params = GenerationParams(duration_s=1.0, top_k=50)

    def columns_s(frames=150):
        start = time.perf_counter()
        for _ in engine.columns(cond, None, frames, params, torch.Generator().manual_seed(0)):
            pass
        return time.perf_counter() - start

    def on_a_thread():
        took = []
        worker = threading.Thread(target=lambda: took.append(columns_s()))
        worker.start()
        worker.join()
        return took[0]

    columns_s(5), on_a_thread()  # warm both
    main, other = [], []
    for _ in range(5):  # interleaved, so a busy moment of the machine hits both alike
        main.append(columns_s())
        other.append(on_a_thread())
    print(json.dumps({"main_s": min(main), "thread_s": min(other)}))
""")


def _kernels_missing() -> str | None:
    try:
        kernels()
    except NativeUnavailable as exc:
        return str(exc)
    return None


@pytest.mark.skipif(_kernels_missing() is not None, reason=f"native kernels: {_kernels_missing()}")
def test_native_decode_on_the_main_thread_is_as_fast_as_on_a_worker_thread(riffd_cache):
    env = {key: value for key, value in os.environ.items() if key not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    # The suite runs on one thread; the slowdown needs parallel regions.
    env.update(OMP_NUM_THREADS="2", MKL_NUM_THREADS="2")
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        done = subprocess.run([sys.executable, "-c", SCRIPT, str(riffd_cache)], env=env, capture_output=True,
                              text=True, timeout=300)
    finally:
        busy.kill()
        busy.wait()
    assert done.returncode == 0, done.stderr[-3000:]
    timing = json.loads(done.stdout.strip().splitlines()[-1])
    print(timing)
    # Same work, same process, best of five each: equal but for noise. The slowdown was 3x to 25x.
    assert timing["main_s"] <= 2.0 * timing["thread_s"], timing


def _products(threads: int, int8, int4, weight, inputs, f32_input) -> list:
    """Every threaded kernel's result on `threads` threads (the wrappers ask torch how many)."""
    from daemon.native import f32_matmul, int4_matvec, int8_matvec

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return ([int8_matvec.matvec(x, int8) for x in inputs] + [int4_matvec.matvec(x, int4) for x in inputs]
                + [f32_matmul.matmul(f32_input, weight), int4.dequantized()])
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(_kernels_missing() is not None, reason=f"native kernels: {_kernels_missing()}")
def test_kernels_on_many_threads_equal_one_thread_bit_for_bit_even_from_several_callers_at_once():
    """The suite runs on one thread (tests/conftest.py), so the pool's own paths are exercised here:
    any thread count, back-to-back regions, and callers racing for the pool (the loser runs alone)."""
    from daemon.native import int4_matvec, int8_matvec

    generator = torch.Generator().manual_seed(3)
    int8 = int8_matvec.pack(torch.randint(-127, 128, (1024, 512), dtype=torch.int8, generator=generator),
                            torch.rand(1024, generator=generator) * 0.01)
    int4 = int4_matvec.pack(int4_matvec.quantize(torch.randn((512, 512), generator=generator), 32))
    weight = torch.randn((258, 256), generator=generator)
    inputs = [torch.randn((rows, 512), generator=generator) for rows in (1, 2, 5, 16)]
    f32_input = torch.randn((3, 256), generator=generator)
    want = _products(1, int8, int4, weight, inputs, f32_input)
    for threads in (2, 3, 8):
        for _ in range(10):
            got = _products(threads, int8, int4, weight, inputs, f32_input)
            assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True)), threads

    failures: list[str] = []
    lib = int8_matvec._library()

    def caller(index: int) -> None:
        for repeat in range(200):
            x = inputs[(index + repeat) % len(inputs)]
            out = torch.empty((x.shape[0], int8.rows))
            lib.riffd_int8_matvec(x.data_ptr(), x.shape[0], int8.cols, int8.packed.data_ptr(), int8.row_sums.data_ptr(),
                                  int8.scales.data_ptr(), out.data_ptr(), int8.rows, 2 + index % 2)
            if not torch.equal(out, want[(index + repeat) % len(inputs)]):
                failures.append(f"caller {index}, repeat {repeat}")

    callers = [threading.Thread(target=caller, args=(index,)) for index in range(4)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join()
    assert not failures


@pytest.mark.skipif(_kernels_missing() is not None, reason=f"native kernels: {_kernels_missing()}")
def test_a_script_that_imports_torch_before_riffd_is_told_why_it_may_be_slow():
    script = "import torch\nfrom daemon.native import library\nlibrary()\n"
    env = dict(os.environ)  # the library this process built (the skip's check): loading it is what warns
    first = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "OMP_WAIT_POLICY=PASSIVE" in first.stderr
    fine = subprocess.run([sys.executable, "-c", script.replace("import torch\n", "") + "import torch\n"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert fine.returncode == 0 and "OMP_WAIT_POLICY" not in fine.stderr, fine.stderr[-2000:]
