"""The simulator behind ``sbcard simulate``: the Jing-Jin-Ji card service as one world, from a seed.

- ``population``: the synthetic people of the three regions (ids, ages, insurance, commuters);
- ``setup``: the world before day 1 (staff, registry, stock, terminals, the cards people hold);
- ``plan``: one day's events (trips in the rush hours, visits, applications, losses, subsidies);
- ``engine``: carries the plan out through the real services, terminal apps and software
  cards, then the night (uploads, clearing, settlement, invariants, checkpoint);
- ``faults``: the ``--faults`` profiles; ``checkpoint``: the days' checkpoints and ``--resume``;
- ``tally``, ``invariants``, ``report``: what happened, what must hold, the summary and page.

Like ``sbcard/cli`` it is an entry point that drives whole terminals, so it may import ``terminals``.
"""
