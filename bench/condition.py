"""Benchmark: a fresh prompt's condition, the first part of its time to first audio, per precision.

For the int8 engine over one checkpoint, the condition is made each way `condition_precision.py`
can make it (float32, bfloat16, int8), in turn in the same process, for `--prompts` fresh prompts
(the bench's prompt with a number appended): the text conditioning (tokenizer, text encoder,
projection to the decoder's width: `build_conditioning`) and the cross-attention keys and values
of a guided window (`set_condition`, null rows included). Medians, and ratios against float32
measured in the same run; the hidden states' relative error against float32's; and what a served
approximate engine makes here (its encoder's and its keys' precisions, each `condition_precision.py`'s
choice for this CPU: `served`). Prints one JSON object last. `--emulate avx2` shows what a CPU without native bfloat16 gets (there bfloat16 is
oneDNN's emulation: `--precisions float32,int8`).

    python -m bench.condition [--model random/musicgen-small] [--precisions float32,bfloat16,int8]
        [--prompts 7] [--agreement-frames 48] [--emulate avx2] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast, get_args

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bench.isa import add_cpu_arguments, apply_cpu_arguments, isa_label  # noqa: E402
from daemon.cpu import this_cpu  # noqa: E402
from daemon.models.musicgen.condition_precision import ConditionPrecision, encoder_precision  # noqa: E402


def _always(precision: ConditionPrecision) -> Callable[..., ConditionPrecision]:
    """A stand-in for `condition_precision.condition_precision` that picks `precision` on any CPU."""
    return lambda *_: precision


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random/musicgen-small")
    parser.add_argument("--precisions", default="float32,bfloat16,int8")
    parser.add_argument("--prompts", type=int, default=7)
    parser.add_argument("--prompt", default="80s pop track with bassy drums and synth")
    parser.add_argument("--agreement-frames", type=int, default=0,
                        help="also the int8 engine's greedy agreement with float32 (engine and condition) over "
                             "this many forced frames of calibration's two prompts, per precision (0: skip; slow)")
    add_cpu_arguments(parser)
    args = parser.parse_args(argv)
    apply_cpu_arguments(args, "bench.condition")

    import torch

    from daemon.models.musicgen import weights as weights_module
    from daemon.models.musicgen.conditioning import Conditioning, build_conditioning
    from daemon.models.musicgen.engine import MusicgenEngine
    from daemon.models.musicgen.loader import load_folder
    from daemon.models.musicgen.options import EngineOptions
    from daemon.models.musicgen.text_encoder import TextEncoder
    from daemon.models.registry import default_cache_dir, resolve_folder

    precisions: list[ConditionPrecision] = []
    for name in ["float32", *args.precisions.split(",")]:  # float32 first: the baseline
        if name.strip() not in get_args(ConditionPrecision):
            parser.error(f"--precisions: {name!r} is not one of {', '.join(get_args(ConditionPrecision))}")
        if name.strip() not in precisions:
            precisions.append(cast(ConditionPrecision, name.strip()))
    bundle = load_folder(resolve_folder(args.model, cache_dir=default_cache_dir()), model_id=args.model,
                         device=torch.device("cpu"))
    engines, encoders = {}, {}
    chosen = weights_module.condition_precision
    try:
        for precision in precisions:
            # The decoder weights' cross projections in this precision, whatever this CPU would pick.
            weights_module.condition_precision = _always(precision)
            engines[precision] = MusicgenEngine(bundle, EngineOptions(weights="int8", warmup=False))
            encoders[precision] = TextEncoder(bundle, precision)
    finally:
        weights_module.condition_precision = chosen
    encode_s: dict[str, list[float]] = {p: [] for p in precisions}
    keys_s: dict[str, list[float]] = {p: [] for p in precisions}
    error: dict[str, float] = {}
    with torch.inference_mode():
        for index in range(args.prompts + 1):  # the first round warms up
            states = {}
            for precision in precisions:
                started = time.perf_counter()
                cond = build_conditioning(bundle, [f"{args.prompt} {index}"], guidance_scale=3.0,
                                          encoder=encoders[precision])
                encoded = time.perf_counter()
                decoder = engines[precision].decoder
                with decoder.open_cache(cond.hidden_states.shape[0], 64) as cache:
                    keyed = time.perf_counter()
                    decoder.set_condition(cache, cond)
                    done = time.perf_counter()
                if index:
                    encode_s[precision].append(encoded - started)
                    keys_s[precision].append(done - keyed)
                states[precision] = cond.hidden_states
            want = states["float32"]
            for precision in precisions:
                error[precision] = max(error.get(precision, 0.0),
                                       float((states[precision] - want).norm() / want.norm()))

    def ms(values: list[float]) -> float:
        return round(1000 * statistics.median(values), 1)

    cpu = this_cpu()
    result = {"model": args.model, "isa": isa_label(args.emulate), "cpu": cpu.model, "cores": cpu.cores,
              "threads": torch.get_num_threads(), "prompts": args.prompts, "precisions": {}}
    for precision in precisions:
        figures = {"text_conditioning_ms": ms(encode_s[precision]), "set_condition_ms": ms(keys_s[precision]),
                   "speedup_text": round(statistics.median(encode_s["float32"]) / statistics.median(encode_s[precision]), 2),
                   "speedup_keys": round(statistics.median(keys_s["float32"]) / statistics.median(keys_s[precision]), 2),
                   "max_relative_error": round(error[precision], 4)}
        result["precisions"][precision] = figures
        print(f"{precision:>9}: text conditioning {figures['text_conditioning_ms']} ms (x{figures['speedup_text']}), "
              f"set_condition {figures['set_condition_ms']} ms (x{figures['speedup_keys']}), hidden states within "
              f"{100 * figures['max_relative_error']:.2f} % of float32's")
    # What a served approximate engine makes here: the encoder and the keys each in their own
    # precision (condition_precision.encoder_precision / condition_precision), where measured above.
    text_as, keys_as = encoder_precision(EngineOptions(weights="int8"), torch.device("cpu")), chosen(
        EngineOptions(weights="int8"), torch.device("cpu"))
    if text_as in encode_s and keys_as in keys_s:
        served_ms = ms(encode_s[text_as]) + ms(keys_s[keys_as])
        result["served"] = {"text": text_as, "keys": keys_as, "condition_ms": round(served_ms, 1),
                            "speedup": round(1000 * (statistics.median(encode_s["float32"])
                                                     + statistics.median(keys_s["float32"])) / served_ms, 2)}
        print(f"   served: text in {text_as}, keys in {keys_as}: {served_ms:.1f} ms (x{result['served']['speedup']})")
    if args.agreement_frames:
        from daemon.models.musicgen.agreement import compare
        from daemon.models.musicgen.calibration import GUIDANCE_SCALE, PROMPTS

        def prompts_cond(precision: ConditionPrecision) -> Conditioning:
            return build_conditioning(bundle, list(PROMPTS), guidance_scale=GUIDANCE_SCALE, encoder=encoders[precision])

        reference = MusicgenEngine(bundle, EngineOptions(warmup=False))
        exact = prompts_cond("float32")
        for precision in precisions:
            agreement = compare(reference, engines[precision], exact, args.agreement_frames, GUIDANCE_SCALE,
                                fast_cond=prompts_cond(precision))
            result["precisions"][precision]["int8_token_agreement"] = round(agreement.token_agreement, 4)
            print(f"{precision:>9}: the int8 engine with this condition agrees with float32 on "
                  f"{100 * agreement.token_agreement:.1f} % of greedy codes ({agreement.steps} steps)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
