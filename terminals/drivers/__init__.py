"""Reader drivers: emulator (in-process), pcsc (pyscard) and the vpcd bridge."""
