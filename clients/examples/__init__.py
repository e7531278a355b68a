"""Recipes: small programs over the Python client, each run by a test against a debug daemon.

    python -m clients.examples.live_pads        a TouchOSC-style controller plays generations live
    python -m clients.examples.continue_region  bar-aligned takes continuing a DAW region
    python -m clients.examples.setlist          a set list of prompts rendered (and chained) in order
"""
