"""Benchmark: which weight formats with fewer bytes than int8 keep auto's greedy agreement with float32?

A decode step reads every projection's weights once, so fewer bytes a weight is the one lever left
where the step already reads int8 weights at the memory's speed. Whether a format is worth a kernel
depends first on its accuracy: `--engine auto` takes no mode under 90 % greedy agreement
(`engine_choice.MIN_AGREEMENT`). This run measures that before any kernel exists: each format is
simulated on the float32 model's own weights (each projection's weights quantised and dequantised in
place, activations and cache float32), and the float32 engine, fed float32's greedy columns for
calibration's two prompts, counts the greedy codes that stay float32's (`agreement.forced_scores`'
comparison, as calibration makes it).

A format is bits and a scale per row of a projection (`int8`: what riffd's int8 engines store) or per
group of that many inputs (`int6g64`: 6-bit codes -31..31 and a scale per 64 inputs). `int4g32` is
riffd's own int4 (`int4_matvec.quantize`: codes -8..7, the extreme at -8). A `+` sets the format of
some projection kinds only, the others int8: `int6g64+fc` quantises fc1 and fc2 to 6 bits. The lm
heads stay int8 throughout. Bytes a step: codes at their bits, a float32 scale per row or a bfloat16
one per group, every projection a step reads (the cross-attention's query and output included: a
prompt that does not fold reads them).

Prints a table, then one JSON object as the last line.

    python -m bench.weight_bits [--model random/musicgen-small] [--frames 96]
        [--formats int8,int7,int6,int6g64,int6g64+fc,int6g32,int5g32,int4g32,int4g32+fc2] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import daemon.native  # noqa: E402,F401 - before torch (daemon/native/__init__.py says why)
import torch  # noqa: E402

from bench.kv4_agreement import symmetric  # noqa: E402
from daemon.models.musicgen.agreement import forced_scores, greedy_agreement  # noqa: E402
from daemon.models.musicgen.calibration import GUIDANCE_SCALE, PROMPTS  # noqa: E402
from daemon.models.musicgen.conditioning import build_conditioning  # noqa: E402
from daemon.models.musicgen.engine import MusicgenEngine  # noqa: E402
from daemon.models.musicgen.engine_choice import MIN_AGREEMENT  # noqa: E402
from daemon.models.musicgen.loader import load_folder, pick_device  # noqa: E402
from daemon.models.musicgen.options import EngineOptions  # noqa: E402
from daemon.models.registry import default_cache_dir, resolve_folder  # noqa: E402
from daemon.native import int4_matvec  # noqa: E402
from daemon.native.branches import cpu_name  # noqa: E402
from protocol.params import GenerationParams  # noqa: E402

#: A decoder layer's projections a step reads, by kind (a `+` names kinds: `fc` is fc1 and fc2).
KINDS: dict[str, tuple[str, ...]] = {
    "attn": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj"),
    "cross": ("encoder_attn.q_proj", "encoder_attn.out_proj"),
    "fc1": ("fc1",), "fc2": ("fc2",), "fc": ("fc1", "fc2"),
}
PROJECTIONS = KINDS["attn"] + KINDS["cross"] + KINDS["fc"]
DEFAULT_FORMATS = "int8,int7,int6,int6g64,int6g64+fc,int6g32,int5g32,int4g32,int4g32+fc2"


@dataclass(frozen=True)
class WeightFormat:
    """`bits`-bit symmetric codes, a scale per row (`group` None) or per `group` inputs."""

    bits: int
    group: int | None

    def quantised(self, weight: torch.Tensor) -> torch.Tensor:
        """`weight` `[rows, cols]` rounded to this format and back to float32."""
        if self.bits == 4 and self.group is not None:  # riffd's int4: its own rounding, exactly
            q = int4_matvec.quantize(weight, self.group)
            codes = q.codes.float().unflatten(-1, (-1, self.group)) - 8
            return (codes * q.scales.float().unsqueeze(-1)).flatten(-2)
        return symmetric(float(2 ** (self.bits - 1) - 1), self.group or weight.shape[-1])(weight)

    def nbytes(self, rows: int, cols: int) -> int:
        """Codes at `bits` a weight, with a float32 scale a row or a bfloat16 one a group."""
        scales = rows * 4 if self.group is None else rows * (cols // self.group) * 2
        return rows * cols * self.bits // 8 + scales


INT8 = WeightFormat(8, None)


def parse(name: str) -> dict[str, WeightFormat]:
    """`int6g64+fc` -> {projection: format} for every projection of a layer (the unnamed ones int8)."""
    match = re.fullmatch(r"int(\d)(?:g(\d+))?(?:\+([a-z0-9,]+))?", name)
    if match is None or not 2 <= int(match[1]) <= 8:
        raise SystemExit(f"format {name!r}: want int<bits>[g<group>][+<kinds>], bits 2-8, kinds of {sorted(KINDS)}")
    fmt = WeightFormat(int(match[1]), int(match[2]) if match[2] else None)
    kinds = match[3].split(",") if match[3] else list(KINDS)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise SystemExit(f"format {name!r}: unknown kinds {unknown}; known {sorted(KINDS)}")
    chosen = {p for k in kinds for p in KINDS[k]}
    return {p: fmt if p in chosen else INT8 for p in PROJECTIONS}


@contextmanager
def applied(layers: Any, heads: Any, formats: dict[str, WeightFormat]) -> Iterator[int]:
    """The layers' projections (and the lm heads, int8) rounded in place for the block; the bytes a step
    reads, yielded; the float32 weights back after."""
    saved: list[tuple[torch.nn.Parameter, torch.Tensor]] = []
    nbytes = 0
    try:
        with torch.no_grad():
            for layer in layers:
                for name, fmt in formats.items():
                    weight = layer.get_submodule(name).weight
                    saved.append((weight, weight.detach().clone()))
                    weight.copy_(fmt.quantised(weight.float()))
                    nbytes += fmt.nbytes(*weight.shape)
            for head in heads:
                saved.append((head.weight, head.weight.detach().clone()))
                head.weight.copy_(INT8.quantised(head.weight.float()))
                nbytes += INT8.nbytes(*head.weight.shape)
        yield nbytes
    finally:
        with torch.no_grad():
            for weight, original in saved:
                weight.copy_(original)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random/musicgen-small")
    parser.add_argument("--frames", type=int, default=96, help="greedy frames of each of calibration's two prompts")
    parser.add_argument("--formats", default=DEFAULT_FORMATS)
    parser.add_argument("--threads", type=int, default=None, help="torch's threads (default: torch's choice)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    formats = {name: parse(name) for name in args.formats.split(",")}
    started = time.perf_counter()
    bundle = load_folder(resolve_folder(args.model, cache_dir=default_cache_dir()), model_id=args.model,
                         device=pick_device("cpu"))
    reference = MusicgenEngine(bundle, EngineOptions(warmup=False))
    batch = build_conditioning(bundle, list(PROMPTS), guidance_scale=GUIDANCE_SCALE)
    greedy = GenerationParams(duration_s=args.frames / bundle.frame_rate, greedy=True, guidance_scale=GUIDANCE_SCALE)
    with torch.inference_mode():
        columns = torch.stack(list(reference.columns(batch, None, args.frames, greedy, None)), dim=-1)
        want = forced_scores(reference, batch, columns, GUIDANCE_SCALE).argmax(-1)
    decoder = bundle.model.decoder
    layers, heads = decoder.model.decoder.layers, decoder.lm_heads
    results: dict[str, dict[str, float]] = {}
    print(f"{args.model}, {args.frames} frames x {len(PROMPTS)} prompts ({want.numel()} greedy codes), "
          f"simulated weight formats; {cpu_name()}")
    print(f"{'format':>16} {'agreement':>10} {'MB a step':>10}  (auto's bar: {100 * MIN_AGREEMENT:.0f} %)")
    for name, chosen in formats.items():
        with applied(layers, heads, chosen) as nbytes, torch.inference_mode():
            # The float32 engine over the rounded weights: its step reads the module's weights as they are now.
            engine = MusicgenEngine(bundle, EngineOptions(warmup=False))
            agreement = greedy_agreement(engine, batch, columns, want, GUIDANCE_SCALE)
        results[name] = {"agreement": round(agreement, 4), "mb_a_step": round(nbytes / 1e6, 1)}
        print(f"{name:>16} {100 * agreement:9.1f} % {nbytes / 1e6:10.1f}", flush=True)
    summary = {"model": args.model, "frames": args.frames, "prompts": len(PROMPTS), "codes": want.numel(),
               "cpu": cpu_name(), "min_agreement": MIN_AGREEMENT, "formats": results,
               "seconds": round(time.perf_counter() - started, 1)}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
