"""Terminal side: reader drivers, the emulated card, the PSAM and terminal applications."""
