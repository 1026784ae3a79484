"""The commands built on the library: `riskalign eval`, `demo`, `study`, `overopt`, `rlaif` and
`generate` (`riskalign ppo` is `ppo.run`, which the Python API shares); `cli.py` parses the
command line and calls them."""
