"""Developer tools for the clients and their documentation."""
