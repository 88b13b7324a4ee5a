#!/usr/bin/env bash
# Every check of mammoth_min, in the project's venv, from the repo root:
#   1. the package, the notebooks and the README are exactly what the notebooks make of them;
#   2. every notebook runs its reduced setting (nbdev-test sets IN_TEST=1);
#   3. pytest runs what reads badly as a notebook (multi-process and fault tests in tests/).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 GRADIO_ANALYTICS_ENABLED=False TOKENIZERS_PARALLELISM=false

test_command=$(grep -E '^python3 -m venv' .ci/run)
grep -qxF "$test_command" README.md || { echo "README.md does not show the test command that .ci/run runs: $test_command"; exit 1; }

snapshot() { find nbs mammoth_min README.md -type f -not -path '*/__pycache__/*' -not -path '*/.ipynb_checkpoints/*' -print0 | sort -z | xargs -0 sha256sum; }
before=$(snapshot)
nbdev-export
nbdev-clean
jupyter nbconvert --log-level WARN --to markdown nbs/index.ipynb --output-dir . --output README
after=$(snapshot)
if [ "$before" != "$after" ]; then
  echo "nbdev-export / nbdev-clean / the README build changed these files; run them and commit the result:"
  diff <(echo "$before") <(echo "$after") | grep '^[<>]' | awk '{print $3}' | sort -u
  exit 1
fi
echo "package, notebooks and README are in sync"

# The demo's browser test drives Debian's chromium (Playwright's own browser download needs the internet).
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else echo "the browser test needs Debian's chromium: sudo apt-get install -y chromium"; exit 1; fi
fi

nbdev-test --n-workers 2 --timing
python -m pytest -q tests
