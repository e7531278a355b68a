"""The one way riffd draws a seed for a request that gave none, and turns a seed into a random
generator. The seed drawn is the one reported in the job's `started` event, by construction.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: Seeds the daemon draws are below this: exact in a 32-bit float, so a Pure Data or Max patch
#: can hold the reported seed and send it back unchanged.
DRAWN_SEED_LIMIT = 2**24


def draw_seed() -> int:
    """A fresh seed for a request without one."""
    return secrets.randbelow(DRAWN_SEED_LIMIT)


def seeded_rng(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A random generator private to one request, so concurrent jobs cannot disturb each other's draws."""
    import torch

    rng = torch.Generator(device=device)
    rng.manual_seed(seed)
    return rng
