"""Running riffd as an older CPU would, on a newer one: an AVX2-only x86 emulated on an AVX-512 machine.

Each library PyTorch uses picks its kernels from the CPU's instruction sets once, at start; an
environment variable per library caps that choice (ATen's vectorised ops, MKL's BLAS, oneDNN's
bfloat16 and float32 products, fbgemm's int8), and riffd's own kernels are built without
AVX-512 and AVX-VNNI. What stays the host's: its caches, clock and memory bandwidth, so figures
measured this way are labelled as an emulation, never as an AVX2 CPU's.

    python -m bench.realtime --emulate avx2       (or avx_vnni)
    python -m bench.musicgen_stream --emulate avx2
    python -m bench.isa avx2 -- python -m pytest tests    (any command, run under the class's variables)
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from daemon.cpu import this_cpu
from daemon.inductor_cache import separate_by_capability
from daemon.native.branches import AVX_VNNI_ON_AVX512_CFLAGS

#: The variables per emulated class (names as daemon.config.LIBRARY_ISA_VARIABLES).
EMULATIONS: dict[str, dict[str, str]] = {
    "avx2": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "DNNL_MAX_CPU_ISA": "AVX2",
        "FBGEMM_ENABLE_INSTRUCTIONS": "AVX2",
        "RIFFD_NATIVE_CFLAGS": "-mno-avx512f -mno-avxvnni",
    },
    # Intel 12th generation and later: AVX2 with VNNI on 256-bit vectors. riffd's kernels run that
    # branch through AVX-512 VL's encoding of the same instruction, on 16 vector registers
    # (daemon/native/branches.py).
    "avx_vnni": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "ONEDNN_MAX_CPU_ISA": "AVX2_VNNI",
        "DNNL_MAX_CPU_ISA": "AVX2_VNNI",
        "FBGEMM_ENABLE_INSTRUCTIONS": "AVX2",
        "RIFFD_NATIVE_CFLAGS": AVX_VNNI_ON_AVX512_CFLAGS,
    },
}
#: Set in a re-executed benchmark, so it does not re-execute again.
MARKER = "RIFFD_BENCH_EMULATING"


def isa_label(emulate: str | None) -> str:
    """The instruction-set class a figure was measured with: the CPU's, or '<class> (emulated on <host class>)'."""
    host = this_cpu().isa
    return host if emulate is None else f"{emulate} (emulated on {host})"


def environment(emulate: str | None) -> dict[str, str]:
    """The variables to add to a child process's environment (none without emulation)."""
    return {} if emulate is None else dict(EMULATIONS[emulate])


def reexec_emulating(emulate: str | None, module: str) -> None:
    """Run `python -m module` again with the emulation's variables (a library reads them once, at
    import); returns at once when there is nothing to emulate or this is the re-executed run."""
    if emulate is None or os.environ.get(MARKER) == emulate:
        return
    os.execve(sys.executable, [sys.executable, "-m", module, *sys.argv[1:]], _emulating_environment(emulate))


def _emulating_environment(emulate: str) -> dict[str, str]:
    """This process's environment with `emulate`'s variables, its marker, and torch.compile's cache
    folder that class's own (daemon/inductor_cache.py: this process's is for its own capability)."""
    env = {**os.environ, **environment(emulate), MARKER: emulate}
    separate_by_capability(env)
    return env


def add_cpu_arguments(parser: argparse.ArgumentParser, *, emulate: bool = True,
                      threads_help: str = "torch's and riffd's kernels' threads (default: torch's choice)") -> None:
    """The CPU options benchmarks share, spelt alike: --threads N and (with `emulate`) --emulate CLASS."""
    parser.add_argument("--threads", type=int, default=None, help=threads_help)
    if emulate:
        parser.add_argument("--emulate", choices=sorted(EMULATIONS), default=None,
                            help="run as this CPU class would (PyTorch's libraries and riffd's kernels capped to it, "
                                 "bench/isa.py); figures are labelled as an emulation")


def apply_cpu_arguments(args: argparse.Namespace, module: str) -> None:
    """Act on add_cpu_arguments' options in this process: run `python -m module` again under the
    emulation, if any (the libraries read it once, at start), then set torch's threads."""
    reexec_emulating(getattr(args, "emulate", None), module)
    if args.threads:
        # Imported here: bench.realtime uses this module and keeps torch out of its own process.
        import torch

        torch.set_num_threads(args.threads)


def main(argv: list[str] | None = None) -> None:
    """`python -m bench.isa CLASS [--] COMMAND...`: COMMAND run with CLASS's variables (printed first), as
    `--emulate CLASS` runs a benchmark; e.g. the whole test suite as that class would run it."""
    parser = argparse.ArgumentParser(prog="python -m bench.isa", description=main.__doc__)
    parser.add_argument("emulate", choices=sorted(EMULATIONS), help="the CPU class")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="what to run (after --)")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give a command to run, e.g. -- python -m pytest tests")
    variables = environment(args.emulate)
    print(" ".join(f"{name}={shlex.quote(value)}" for name, value in variables.items()), flush=True)
    # The marker: a benchmark in COMMAND given --emulate CLASS does not re-execute itself again.
    os.execvpe(command[0], command, _emulating_environment(args.emulate))


if __name__ == "__main__":
    main()
