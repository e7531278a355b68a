"""Command-line options shared by `riffd render` and the daemon client commands."""

from __future__ import annotations

import argparse

from protocol.params import GenerationParams


class _Given(argparse.Action):
    """Stores the value and notes that the flag was given (`args.NAME_given`): a default cannot say."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        setattr(namespace, f"{self.dest}_given", True)


def add_generation_options(parser: argparse.ArgumentParser) -> None:
    """The per-request controls of GenerationParams, as flags."""
    defaults = GenerationParams()
    parser.add_argument("--duration", type=float, default=defaults.duration_s, metavar="SECONDS", action=_Given,
                        help=f"seconds of new audio (default {defaults.duration_s:g})")
    parser.add_argument("--seed", type=int, default=None, help="same seed and settings give identical audio")
    parser.add_argument("--top-k", type=int, default=defaults.top_k, help=f"sample among the k best codes, 0 = all (default {defaults.top_k})")
    parser.add_argument("--top-p", type=float, default=defaults.top_p, help="nucleus sampling mass in [0, 1], 0 = off (default 0)")
    parser.add_argument("--temperature", type=float, default=defaults.temperature, help="sampling temperature > 0 (default 1)")
    parser.add_argument("--guidance-scale", type=float, default=defaults.guidance_scale,
                        help=f"classifier-free guidance, 1 = off (default {defaults.guidance_scale:g})")
    parser.add_argument("--greedy", action="store_true", help="always take the most likely code")
    parser.add_argument("--extend-stride", type=float, default=defaults.extend_stride_s, metavar="SECONDS",
                        help=f"long renders: seconds each new window advances (default {defaults.extend_stride_s:g})")


def generation_params(args: argparse.Namespace) -> GenerationParams:
    """GenerationParams from parsed flags (validated later, at the model, against its limits)."""
    return GenerationParams(
        duration_s=args.duration, top_k=args.top_k, top_p=args.top_p, temperature=args.temperature,
        guidance_scale=args.guidance_scale, seed=args.seed, greedy=args.greedy, extend_stride_s=args.extend_stride,
    )

