"""Local stand-ins for exchanges, for tests and demos: nothing here talks to the internet."""
