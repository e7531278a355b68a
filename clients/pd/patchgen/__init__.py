"""Builders of the Pure Data patches in clients/pd (see __main__ for why they are generated)."""
