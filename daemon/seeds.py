"""The one way riffd draws a seed for a request that gave none, and turns a seed into a random
generator. The seed drawn is the one reported in the job's `started` event, by construction.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: Seeds the daemon draws are below this, so the seed a patch shows is the seed: Pure Data holds a
#: number as a 32-bit float and shows it with six significant digits (2494469 shows as 2.49447e+06,
#: which sends back 2494470), and the Max for Live device's seed box goes up to 1000000. Below 10^6
#: every digit shows, and the float is exact (10^6 < 2^24). A seed a request gives keeps its full range.
DRAWN_SEED_LIMIT = 10**6


def draw_seed() -> int:
    """A fresh seed for a request without one."""
    return secrets.randbelow(DRAWN_SEED_LIMIT)


def seeded_rng(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A random generator private to one request, so concurrent jobs cannot disturb each other's draws."""
    import torch

    rng = torch.Generator(device=device)
    rng.manual_seed(seed)
    return rng
