"""The commands built on the library: `riskalign demo`, `study`, `overopt` (`cli.py` parses
the command line and calls them)."""
