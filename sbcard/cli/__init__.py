"""The command-line interface: the composition root for whoever holds the world's files.

The lazy-import rule (this package only). ``sbcard --help``, ``sbcard ids check`` and shell
completion load every module of this package, so those modules import at their top only
click, the standard library and the small helpers here (context, errors, output, params).
Each command imports the services, the store, the simulator and the terminals it drives
inside its own function: a command pays only for what it uses (the simulator, pyscard and
the card emulator together cost more start-up than the rest of the CLI). Everywhere else in
sbcard imports go at the top of the module, so that every arrow between packages is seen by
the layer contracts in ``.importlinter``; import-linter reads these function-local imports
too, so the CLI's arrows are checked all the same.
"""
