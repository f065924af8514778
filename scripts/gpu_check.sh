#!/usr/bin/env bash
# The GPU check: on a machine with one NVIDIA GPU and only the package registries reachable, install
# r3graph with the `gpu` extra (CUDA vLLM) into its own environment, run the real-engine and
# real-server tests and bench/latency.py on the shipped scenes-vlm, write the results under
# bench/results/gpu/<UTC time>/, and print what was measured. Budget: 8 minutes in all; each phase
# gets what is left (a phase cut by the budget is reported as such, the later phases still report).
#
#   scripts/gpu_check.sh            # from the repository root or anywhere inside it
#   GPU_CHECK_BUDGET_S=600 scripts/gpu_check.sh
#   GPU_VENV=.venv-gpu GPU_CHECK_SKIP_INSTALL=1 scripts/gpu_check.sh   # reuse an installed environment
#
# Nothing else depends on it; the CPU suite (`make test`) is the project's gate.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
REPO=$PWD
BUDGET_S=${GPU_CHECK_BUDGET_S:-450}   # 7.5 min for the phases: under 8 minutes with kill grace and summary
PYTHON=${PYTHON:-python3.11}
VENV=${GPU_VENV:-$REPO/.venv-gpu}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$REPO/bench/results/gpu/$STAMP
START=$(date +%s)
command -v nvidia-smi > /dev/null || { echo "gpu_check: nvidia-smi not found: this needs an NVIDIA GPU" >&2; exit 2; }
mkdir -p "$OUT"
# Model weights are in the repository; nothing is fetched at run time.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
export VLLM_CACHE_ROOT=$REPO/.cache/vllm HF_HOME=$REPO/.cache/hf VLLM_LOGGING_LEVEL=WARNING

left() { echo $(( BUDGET_S - ($(date +%s) - START) )); }
note() { printf '[gpu_check %4ss] %s\n' "$(( $(date +%s) - START ))" "$*" | tee -a "$OUT/log.txt"; }

# run_phase NAME CMD...: runs CMD under what is left of the budget, records seconds and exit status.
declare -A PHASE_S PHASE_RC
run_phase() {
    local name=$1; shift
    local budget; budget=$(left)
    if (( budget < 20 )); then
        note "$name: skipped, budget spent"; PHASE_RC[$name]=skipped; PHASE_S[$name]=0; return 0
    fi
    note "$name: starting (budget ${budget}s)"
    local t0=$SECONDS
    timeout --kill-after=10 "$budget" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    PHASE_S[$name]=$(( SECONDS - t0 ))
    if (( rc == 124 || rc == 137 )); then PHASE_RC[$name]="cut by budget"; else PHASE_RC[$name]=$rc; fi
    note "$name: exit ${PHASE_RC[$name]} after ${PHASE_S[$name]}s (log: $OUT/$name.log)"
    return 0
}

install_env() {
    test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV" || return 1
    "$VENV/bin/python" -m pip install -q --upgrade pip uv || return 1
    # uv resolves and unpacks the CUDA wheels (vllm, torch, nvidia-*) several times faster than pip.
    "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" -e "${REPO}[gpu,dev,otlp]" -e "${REPO}/scenes" || return 1
    "$VENV/bin/python" -m pip freeze --exclude-editable > "$OUT/pip-freeze.txt"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/gpu.txt"
note "GPU: $(head -1 "$OUT/gpu.txt")"

if [[ -n ${GPU_CHECK_SKIP_INSTALL:-} ]]; then
    note "install: skipped (GPU_CHECK_SKIP_INSTALL), using $VENV"; PHASE_RC[install]=0; PHASE_S[install]=0
else
    run_phase install install_env
fi
if [[ ${PHASE_RC[install]} == 0 ]]; then
    "$VENV/bin/python" -c "import vllm, torch; print(f'vllm {vllm.__version__}, torch {torch.__version__}, cuda {torch.cuda.is_available()}')" \
        > "$OUT/versions.txt" 2>&1
    note "$(tail -1 "$OUT/versions.txt")"
    # The real-engine and real-server tests (one engine, then one server, as the suite's conftest runs them).
    TEST_ARGS=(-m "engine or server" tests)
    [[ -n ${GPU_CHECK_TEST_ARGS:-} ]] && read -r -a TEST_ARGS <<< "$GPU_CHECK_TEST_ARGS"  # a dry run's selection
    run_phase tests "$VENV/bin/python" -m pytest -q -p no:cacheprovider --junitxml="$OUT/tests.xml" "${TEST_ARGS[@]}"
    # Latency on scenes-vlm: one-shot vs R3, concurrency, prefix cache (3 repeats to fit the budget).
    # latency.py writes bench/results/latency.{md,json}: the CPU figures there are set aside first, so
    # what is there afterwards is this run's (none if the phase was cut), then they are put back.
    for f in latency.md latency.json; do
        if [[ -f bench/results/$f ]]; then mv "bench/results/$f" "$OUT/.cpu-$f"; fi
    done
    run_phase latency "$VENV/bin/python" bench/latency.py --repeats 3 --model scenes/r3graph_scenes/models/scenes-vlm
    for f in latency.md latency.json; do
        if [[ -f bench/results/$f ]]; then mv "bench/results/$f" "$OUT/$f"; fi
        if [[ -f $OUT/.cpu-$f ]]; then mv "$OUT/.cpu-$f" "bench/results/$f"; fi
    done
fi

# -- what was measured -------------------------------------------------------------------------------
{
    echo "# GPU check $STAMP"
    echo
    echo "GPU: $(head -1 "$OUT/gpu.txt")"
    [[ -f $OUT/versions.txt ]] && echo "Stack: $(tail -1 "$OUT/versions.txt")"
    echo
    echo "| phase | exit | seconds |"
    echo "| --- | --- | --- |"
    for name in install tests latency; do
        echo "| $name | ${PHASE_RC[$name]:-not run} | ${PHASE_S[$name]:-0} |"
    done
    if [[ -f $OUT/tests.xml ]]; then
        echo
        "$PYTHON" - "$OUT/tests.xml" <<'PY'
import sys
import xml.etree.ElementTree as ET

suite = ET.parse(sys.argv[1]).getroot()
suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
get = lambda k: int(suite.get(k, 0))
print(f"Tests (engine and server): {get('tests')} run, {get('failures')} failed, {get('errors')} errors, "
      f"{get('skipped')} skipped, {float(suite.get('time', 0)):.0f} s")
for case in suite.iter("testcase"):
    if case.find("failure") is not None or case.find("error") is not None:
        print(f"  FAILED {case.get('classname')}::{case.get('name')}")
PY
    fi
    if [[ -f $OUT/latency.md ]]; then
        echo
        sed -n '3,$p' "$OUT/latency.md"
    fi
    echo
    echo "Total: $(( $(date +%s) - START )) s of the ${BUDGET_S} s budget. Files: $OUT"
} | tee "$OUT/summary.md"

[[ ${PHASE_RC[install]} == 0 && ${PHASE_RC[tests]:-1} == 0 && ${PHASE_RC[latency]:-1} == 0 ]]
