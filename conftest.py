"""Repository-level pytest wiring. The plugin itself (options, fixtures, hooks) is
``ckptgate.plugin``, registered through the ``pytest11`` entry point when the package is
installed (``bash ci/dev.sh ...`` installs it into .venv)."""

collect_ignore = ["benchmarks"]
