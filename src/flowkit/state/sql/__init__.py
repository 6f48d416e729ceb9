"""Building blocks of the SQLite state store: errors, recipe locks, the group-commit writer
and the SQL of each operation. `flowkit.state.sqlite` assembles them."""
