#!/usr/bin/env bash
# `circuitscope report` in a real browser: Debian's chromium (installed when missing) loads the page
# headless, dumps its DOM and console, and takes screenshots at two sizes; scripts/report/check_page.py
# then checks them (no console message, figures in the DOM, SVG well-formed, screenshots not blank).
# A page with a script error must fail the same checks (so that they can fail).
#   scripts/report/test_browser.sh OUT_DIR INPUT... (inputs as for `circuitscope report`)
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$1
shift
mkdir -p "$out"
out=$(cd "$out" && pwd)
if ! command -v chromium > /dev/null; then
  echo "test_browser: installing chromium" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends chromium > /dev/null
fi
CS=${CS:-$root/build/circuitscope}
$CS report "$@" --out "$out/page.html" --svg-dir "$out/svg"

browse() {  # browse PAGE NAME WIDTH: DOM, console log and a screenshot of PAGE at WIDTH pixels
  local page=$1 name=$2 width=$3
  # --no-sandbox: CI runs as root in a container; the page is our own file.
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --enable-logging=stderr --v=0 \
    --window-size="$width,2400" --dump-dom "file://$page" > "$out/$name.dom.html" 2> "$out/$name.log"
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --enable-logging=stderr --v=0 \
    --window-size="$width,2400" --screenshot="$out/$name-$width.png" "file://$page" >> "$out/$name.log" 2>&1
}
browse "$out/page.html" page 1280
browse "$out/page.html" page 480
figures=()
while IFS= read -r id; do figures+=(--figure "fig-$id"); done < <(ls "$out/svg" | sed 's/\.svg$//')
svgs=()
for f in "$out"/svg/*.svg; do svgs+=(--svg "$f"); done
python3 "$root/scripts/report/check_page.py" --page "$out/page.html" --dom "$out/page.dom.html" --log "$out/page.log" \
  --png "$out/page-1280.png" --png "$out/page-480.png" "${figures[@]}" "${svgs[@]}"

# The checks must be able to fail: the same page with a script error.
sed 's|</body>|<script>undefinedFunction();</script></body>|' "$out/page.html" > "$out/broken.html"
browse "$out/broken.html" broken 1280
if python3 "$root/scripts/report/check_page.py" --page "$out/broken.html" --dom "$out/broken.dom.html" \
    --log "$out/broken.log" --png "$out/broken-1280.png" > "$out/broken.check" 2>&1; then
  echo "test_browser: FAIL: a page with a script error passed the checks" >&2
  exit 1
fi
grep -q "Uncaught ReferenceError" "$out/broken.check" || { cat "$out/broken.check"; exit 1; }
echo "test_browser: the page with a script error was caught: $(grep -c '^FAIL' "$out/broken.check") failed check(s)"
echo "test_browser: passed ($out/page.html, screenshots page-1280.png and page-480.png)"
