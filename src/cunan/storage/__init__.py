"""Storage: all SQL lives here (tables, repositories, migrations, engine set-up)."""
