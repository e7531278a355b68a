"""The jam: an endless MusicGen stream, steered while it plays (issue 14).

`prompts` blends weighted prompts into one conditioning, `stream` runs the endless column loop
(windows that slide on over a few seconds of their own music, the next window's cache built
beside the running one, changes from the next frame), `codec` turns its frames into audio
without an end, and `state` saves and restores all of it for a bit-exact resume.
"""
