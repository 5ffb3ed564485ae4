"""The simulator behind ``sbcard simulate``: the Jing-Jin-Ji card service as one world, from a seed.

Like ``sbcard/cli`` it is an entry point that drives whole terminals, so it may import ``terminals``.

Where the code is (arrows go down the list, never up):

- ``engine``: ``Simulation`` and ``Options``, the public API: the run, the day loop (each
  event of the plan to its act), the clock's moves (``move_to``, ``step``), the cards in
  the engine's hands, the places people go, the checkpoints of the days; ``Simulation`` is
  made of the three parts below;
- ``acts``: the ``on_<kind>`` handlers, one per kind of event — rides, applications, loads,
  hospitals, venues and libraries, losses, replacements, subsidies, hub links;
- ``tap_lane``: the engine's side of the hand-off of transit taps, and when their outcomes
  are applied;
- ``night``: uploads, messages, lapsed losses, restocking, blacklist sync, clearing and
  settlement, the invariants (and the card files read ahead for them);
- ``validators``: the validators' side of the taps, the lanes (in process, or a worker
  process) and the card images kept between taps;
- ``setup``: the world before day 1 (staff, registry, stock, terminals, the cards people
  hold, made in production batches, a process per region in a big world);
- ``processes``: how helper processes start (spawned) and end with the simulation;
  ``tuning``: the simulator's SQLite connections; ``heap``: the garbage collector's settings;
- ``population``: the synthetic people; ``plan``: one day's events; ``faults``: the
  ``--faults`` profiles; ``checkpoint``: the days' checkpoints and ``--resume``;
- ``tally``, ``invariants``, ``report``, ``progress``: what happened, what must hold, the
  summary and page, where the day stands.
"""
