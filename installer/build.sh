#!/usr/bin/env bash
# Build and self-test a one-folder bundle with PyInstaller (Linux and macOS; Windows: README).
#
#   installer/build.sh inspector   # torch-free Inspector -> build/installer/dist/workbench-inspector/
#   installer/build.sh workbench   # full Workbench (CPU)  -> build/installer/dist/workbench/
#
# Needs the project and its installer extra in the Python that runs it (PYTHON, default
# python3): pip install -e '.[installer]'. Ends with the bundle's --selftest: exit 0 only when
# the bundled sample models reproduce the scores and decisions stored at build time.
set -euo pipefail
target=${1:-}
case "$target" in
  inspector) name=workbench-inspector; title="Anomaly Inspector"
             comment="Score images with exported anomaly models and review heat maps" ;;
  workbench) name=workbench; title="Anomaly Inspection Workbench"
             comment="Train, calibrate and review unsupervised visual inspection models" ;;
  *) echo "usage: $0 inspector|workbench" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
out=${WORKBENCH_BUILD_DIR:-build/installer}
start=$(date +%s)
"$PYTHON" -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath "$out/dist" --workpath "$out/work-$target" "installer/$target.spec"
bundle="$out/dist/$name"
version=$("$PYTHON" -c "import workbench; print(workbench.__version__)")
echo "$version" > "$bundle/VERSION"
if [ "$(uname -s)" = "Linux" ]; then
  # debug symbols of the interpreter's own libraries (a pyenv build carries ~20 MB of them);
  # the wheels' libraries are stripped already, and stripping their auditwheel copies in
  # *.libs/ breaks them, so those are left alone
  find "$bundle/_internal" -path '*.libs' -prune -o -name '*.so*' -type f -print | while read -r lib; do
    if file "$lib" | grep -q 'with debug_info'; then strip --strip-debug "$lib"; fi
  done
  cp workbench/resources/icons/workbench.png "$bundle/$name.png"
  sed -e "s|@NAME@|$title|" -e "s|@COMMENT@|$comment|" -e "s|@EXEC@|$(cd "$bundle" && pwd)/$name|" \
      -e "s|@ICON@|$(cd "$bundle" && pwd)/$name.png|" -e "s|@VERSION@|$version|" \
      installer/linux/desktop.in > "$bundle/$name.desktop"
  echo "desktop entry: $bundle/$name.desktop (copy it to ~/.local/share/applications/)"
fi
echo "built $bundle in $(( $(date +%s) - start )) s; size $(du -sh "$bundle" | cut -f1)"
QT_QPA_PLATFORM=offscreen "$bundle/$name" --selftest
