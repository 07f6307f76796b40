"""A small notes service: a JSON API and an HTML page over a SQLite database."""
