"""Model residency: load once, pinned vs on-demand, keep-alive, references held by jobs."""

from __future__ import annotations

import gc
import threading
import weakref

import pytest
from daemon_harness import fake_loader

from daemon.residency import ModelPool
from protocol.errors import ModelUnavailable, NotFound, UnknownModel


class Clock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def counting_loader():
    calls: list[str] = []

    def load(model_id: str, device: str):
        calls.append(model_id)
        return fake_loader(model_id, device)

    return load, calls


def test_concurrent_requests_for_a_model_load_it_once() -> None:
    load, calls = counting_loader()
    pool = ModelPool(load, "cpu")
    barrier = threading.Barrier(4)
    results = []

    def worker() -> None:
        barrier.wait()
        results.append(pool.load("fake/slow"))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == ["fake/slow"] and len({id(r) for r in results}) == 1


def test_keep_alive_unloads_on_demand_models_but_not_pinned_or_in_use() -> None:
    load, calls = counting_loader()
    clock = Clock()
    pool = ModelPool(load, "cpu", keep_alive_s=10.0, clock=clock)
    pool.load("fake/fast", pin=True)
    pool.load("fake/stereo")
    with pool.use("fake/slow"):
        clock.now_s = 11.0
        assert pool.expire() == ["fake/stereo"]
        assert set(pool.loaded()) == {"fake/fast", "fake/slow"}
    clock.now_s = 15.0
    assert pool.expire() == []  # fake/slow was last used at 11 s
    clock.now_s = 21.5
    assert pool.expire() == ["fake/slow"]
    assert pool.loaded() == ["fake/fast"]
    pool.load("fake/stereo")
    assert calls.count("fake/stereo") == 2


def test_unload_and_failures() -> None:
    pool = ModelPool(fake_loader, "cpu")
    with pytest.raises(NotFound):
        pool.unload("fake/fast")
    with pytest.raises(ModelUnavailable):
        pool.load("fake/broken")
    assert pool.loaded() == []
    backend = pool.load("fake/fast")
    with pool.use("fake/fast") as in_use:
        pool.unload("fake/fast")  # a running job keeps the backend it has
        assert in_use is backend and pool.loaded() == []


def test_failed_loads_leave_nothing_behind() -> None:
    pool = ModelPool(fake_loader, "cpu")
    for n in range(50):
        with pytest.raises(UnknownModel):
            pool.load(f"nope/{n}")
    assert pool.loaded() == [] and pool._load_locks == {}


@pytest.fixture
def thawed():
    """The collector's frozen set empty before and after the test (a load freezes what is alive)."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_a_load_freezes_the_model_out_of_full_collections_and_an_unload_thaws_its_cycles(thawed) -> None:
    """A loaded model's objects leave the collector's scans (a full collection over musicgen-small held the GIL
    ~0.2-0.3 s inside a decode step); an unloaded one's reference cycles are still collected."""

    class Cyclic:
        def __init__(self, backend) -> None:
            self.backend, self.me = backend, self  # a cycle: only the collector frees it

        def __getattr__(self, name: str):
            return getattr(self.backend, name)

    pool = ModelPool(lambda model_id, device: Cyclic(fake_loader(model_id, device)), "cpu")
    assert gc.get_freeze_count() == 0
    backend = pool.load("fake/fast")
    assert gc.get_freeze_count() > 0
    gone = weakref.ref(backend)
    del backend
    pool.unload("fake/fast")
    assert gone() is None
    pool.load("fake/fast")
    pool.clear()  # nothing resident: nothing frozen again
    assert gc.get_freeze_count() == 0


def test_a_device_named_by_a_function_is_named_once_when_first_needed() -> None:
    named: list[str] = []
    devices: list[str] = []

    def name() -> str:
        named.append("cuda:0")
        return "cuda:0"

    def load(model_id: str, device: str):
        devices.append(device)
        return fake_loader(model_id, "cpu")

    pool = ModelPool(load, name)
    assert named == []  # not at construction: the daemon tries its ports first
    pool.load("fake/fast")
    assert pool.device == "cuda:0" and devices == ["cuda:0"] and named == ["cuda:0"]
