#!/usr/bin/env bash
# Build the documentation site with warnings as errors (what CI runs):
#     pip install -e ".[docs]" && bash docs/build.sh
# Every program output on the site is produced during this build by running the
# code next to it (docs/hooks/run_blocks.py); a block that fails fails the build.
# The site goes to build/site/ (or to the folder given as the first argument).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m mkdocs build --strict --clean --site-dir "${1:-build/site}"
