#!/usr/bin/env bash
# CI: the command line against the lowest lightning and torchmetrics that pyproject.toml states.
#
# Run inside the CI virtual environment (.ci/run activates .ci-venv first). Installs
# lightning==<floor> and torchmetrics==<floor> (read from pyproject.toml's "name>=floor" lines),
# runs the CLI tests, then puts back the versions that were installed before, pass or fail.
# torch and torchvision stay as installed: their floors are wheels of several GB (see README).
set -euo pipefail
cd "$(dirname "$0")/.."

floor() {  # the version after "name>=" in pyproject.toml's dependencies
    sed -n "s/^ *\"$1>=\([0-9][0-9.]*\)[,\"].*/\1/p" pyproject.toml | head -n 1
}
installed() {
    python -c "import importlib.metadata as m; print(m.version('$1'))"
}

LIGHTNING_FLOOR=$(floor lightning)
TORCHMETRICS_FLOOR=$(floor torchmetrics)
LIGHTNING_NOW=$(installed lightning)
TORCHMETRICS_NOW=$(installed torchmetrics)
restore() {
    pip install --quiet "lightning==$LIGHTNING_NOW" "torchmetrics==$TORCHMETRICS_NOW"
}
trap restore EXIT

echo "floors: lightning==$LIGHTNING_FLOOR torchmetrics==$TORCHMETRICS_FLOOR (installed: $LIGHTNING_NOW, $TORCHMETRICS_NOW)"
pip install --quiet "lightning==$LIGHTNING_FLOOR" "torchmetrics==$TORCHMETRICS_FLOOR"
python -c "import lightning, torchmetrics; print('testing with lightning', lightning.__version__, 'torchmetrics', torchmetrics.__version__)"
pytest -q tests/test_cli.py tests/test_subcommands.py "$@"
