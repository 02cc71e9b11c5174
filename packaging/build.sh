#!/usr/bin/env bash
# Build the packaged binary: dist/opscraft/opscraft (one folder; runs without Python or a venv).
# Usage: bash packaging/build.sh [--archive]   (--archive also writes dist/opscraft-<version>-linux-<arch>.tar.gz)
# The build Python is .venv, set up with the `desktop` and `packaging` extras by the bootstrap,
# or OPSCRAFT_PYTHON when set (a Python that already has both extras installed).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${OPSCRAFT_PYTHON:-$(python3 -m opscraft.bootstrap desktop,packaging | tail -n 1)}
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath dist --workpath build/pyinstaller packaging/opscraft.spec
echo "built dist/opscraft/opscraft ($(du -sh dist/opscraft | cut -f1))"
if [ "${1:-}" = "--archive" ]; then
  VERSION=$("$PY" -c 'import opscraft; print(opscraft.__version__)')
  ARCHIVE="dist/opscraft-$VERSION-linux-$(uname -m).tar.gz"
  tar -C dist -czf "$ARCHIVE" opscraft
  echo "archived $ARCHIVE ($(du -sh "$ARCHIVE" | cut -f1))"
fi
