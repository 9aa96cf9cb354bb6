"""What ``pytest --checkpoint PATH`` runs: the gate's benchmarks, rooted where pytest was started.

Two things pytest would otherwise get wrong for a gate run:

* **Which tests.** Given no test path, pytest collects the current folder (or the ini file's
  ``testpaths``), which in this repository would include the project's own tests. With
  ``--checkpoint`` and no test path, the gate's benchmarks (the installed ``evaltests``
  package) are what runs, from any folder.
* **Which rootdir.** pytest picks its rootdir (where ``.pytest_cache`` is written, and which ini
  file is read) from the command line's arguments *before* plugins add their options, so the
  value of ``--checkpoint PATH`` is taken for a test path: with a checkpoint outside the current
  project, the checkpoint folder (or a common ancestor such as ``/tmp``) became the rootdir,
  pytest wrote ``.pytest_cache`` into it and ignored the project's ini file. The rootdir is
  decided again from the real test paths, as pytest would have without the checkpoint values
  (given no paths: the current folder, or the folder of the ini file found above it). This goes through pytest internals (``_pytest.config.findpaths.determine_setup``
  and the config's rootdir/ini attributes) of the pinned pytest release; the project's tests run
  pytest in a subprocess to check it still holds.
"""

from __future__ import annotations

import pytest

from ckptgate.resources import evaltests_dir


def aim_at_gate(config: pytest.Config, args: list[str]) -> None:
    """Called from ``pytest_load_initial_conftests``: ``args`` is the command line pytest is about
    to parse for good, and may be extended in place."""
    namespace = config.known_args_namespace
    if not getattr(namespace, "ckptgate_checkpoints", []):
        return
    _reroot(config, args)
    if not namespace.file_or_dir:
        args.append(str(evaltests_dir()))
        namespace.file_or_dir = [args[-1]]  # pytest looks for the initial conftests there


def _reroot(config: pytest.Config, args: list[str]) -> None:
    """Decide rootdir and ini file again from the real test paths only (not the values of
    --checkpoint / --bridge), and apply the ini file's addopts if it is another file than the
    one pytest read."""
    from _pytest.config.findpaths import determine_setup

    namespace = config.known_args_namespace
    rootpath, inipath, inicfg, _ignored = determine_setup(
        inifile=namespace.inifilename,
        override_ini=namespace.override_ini,
        args=list(namespace.file_or_dir),
        rootdir_cmd_arg=namespace.rootdir or None,
        invocation_dir=config.invocation_params.dir,
    )
    changed_ini = inipath != config.inipath
    derived_confcutdir = str(config.inipath.parent if config.inipath is not None else config.rootpath)
    config._rootpath = rootpath  # noqa: SLF001 - see the module docstring
    config._inipath = inipath  # noqa: SLF001
    config._inicfg = inicfg  # noqa: SLF001
    config._inicache.clear()  # noqa: SLF001
    config._parser.extra_info["rootdir"] = str(rootpath)  # noqa: SLF001
    config._parser.extra_info["inifile"] = str(inipath)  # noqa: SLF001
    if namespace.confcutdir == derived_confcutdir:  # pytest's default, not the user's --confcutdir
        namespace.confcutdir = str(inipath.parent if inipath is not None else rootpath)
    if changed_ini and inipath is not None:
        args[:0] = config.getini("addopts")
