"""riffd's wire protocol: requests, events and their validation, shared by daemon and clients.

Nothing here imports torch, so clients stay light.
"""
