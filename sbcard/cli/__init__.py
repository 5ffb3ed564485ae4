"""The command-line interface: the composition root."""
