"""The riffd daemon: resident models, scheduler, OSC and ZeroMQ endpoints, audio sinks."""

import os
import sys

from daemon.inductor_cache import separate_by_capability

# PyTorch's OpenMP runtime (libgomp) makes a thread that finished its part of a parallel region
# spin for the next one, some 300 000 iterations (milliseconds), when it manages no more threads
# than there are CPUs, which is the case on a process's main thread. A decode step runs a few
# PyTorch ops between riffd's own threaded kernels (daemon/native/pool.c), and those spinning
# threads then take the cores the kernels need: measured on a 2-core machine with one other busy
# process, the int8 decode ran 3 to 15 times slower on the main thread (`riffd render`, the
# benchmarks) than on a worker thread like the daemon's, where libgomp already throttles its
# spinning because it manages more threads than CPUs. Passive waiting is that throttled behaviour,
# everywhere (tests/musicgen/test_native_threads.py). It must be set before torch is first imported
# (the runtime reads it once, when it loads): riffd's entry points import `daemon` first, and
# whoever sets it themselves keeps their value.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# torch.compile's cache, a folder per ATEN_CPU_CAPABILITY (inductor_cache.py says why): before Inductor reads it.
separate_by_capability(os.environ)
#: Whether torch was loaded too early for that (daemon.native warns once when its kernels load).
TORCH_LOADED_FIRST = "torch" in sys.modules
