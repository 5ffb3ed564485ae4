"""sbcard: a simulator of the Jing-Jin-Ji third-generation social security card service."""
