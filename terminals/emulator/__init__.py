"""The software card: a small card OS persisted to a file."""
