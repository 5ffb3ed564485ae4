"""The SQL the services need, one module per capability, behind the unit of work.

A repository is a class built on one database (``Kind(db)``) and reached through
``uow.get(Kind)``: its methods read and write rows and hold every SQL statement of their
capability, so a service says what it does (post an entry, mark a record paid) and the
store says how. A second store (PostgreSQL) gives classes with the same methods.
"""
