"""The web studio: a page served by the daemon to prompt, listen as it streams, see every job."""
