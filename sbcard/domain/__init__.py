"""Pure rules and values. No I/O, no storage, no clock reads: everything here is a function of its arguments."""
