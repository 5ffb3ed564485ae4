"""SQLite through sqlite-utils: schema, migrations, the unit of work."""
