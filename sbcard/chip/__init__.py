"""The card profile shared by the issuer, the terminals and the emulated card."""
