"""The exit codes of a gate run, beside pytest's own (0 all passed, 1 tests failed, 2 interrupted,
3 internal error, 4 usage error, 5 no tests collected)."""

GO = 0  # every primary comparison passed (pytest's OK)
NO_GO = 1  # a primary comparison failed (pytest's TESTS_FAILED)
USAGE = 4  # bad option, checkpoint, suite or baseline (pytest's USAGE_ERROR)
INCONCLUSIVE = 6  # nothing failed, but not every primary comparison could be shown to pass
INFRA = 7  # the machine failed (busy GPU, sandbox unavailable, dataset missing offline, engine crash), not the model
