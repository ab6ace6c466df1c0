#!/usr/bin/env bash
# Screenshots of a real run's TensorBoard in a real browser: serve the run's tb/ on 127.0.0.1, load the
# scalars and the text tab in headless Chromium (the Debian package, installed here when missing), and
# save PNGs, to check how the logged sample text renders (grpo/monitor.py).
#   bash scripts/tb_screenshot.sh RUN_DIR [OUT_DIR]    e.g. runs/study/grpo-group docs/tensorboard
set -euo pipefail
cd "$(dirname "$0")/.."
RUN="${1:?usage: tb_screenshot.sh RUN_DIR [OUT_DIR]}"
OUT="${2:-docs/tensorboard}"
PORT="${PORT:-6123}"
[ -d "$RUN/tb" ] || { echo "tb_screenshot: $RUN/tb: no TensorBoard folder there" >&2; exit 2; }
if ! command -v chromium-headless-shell >/dev/null; then
    echo "[tb_screenshot] installing chromium-headless-shell (Debian package)"
    apt-get install -y -q chromium-headless-shell >/dev/null
fi
mkdir -p "$OUT"
.venv/bin/tensorboard --logdir "$RUN/tb" --host 127.0.0.1 --port "$PORT" --load_fast=false >/tmp/tb_screenshot.log 2>&1 &
tb=$!
trap 'kill $tb 2>/dev/null || true' EXIT
for _ in $(seq 60); do  # until TensorBoard has read the event files
    curl -sf "http://127.0.0.1:$PORT/data/plugins_listing" | grep -q '"text"' && break
    sleep 1
done
shot() {  # tab, png name, window size
    chromium-headless-shell --no-sandbox --disable-gpu --hide-scrollbars --window-size="$3" \
        --virtual-time-budget=20000 --screenshot="$OUT/$2" "http://127.0.0.1:$PORT/#$1" >/dev/null 2>&1
    echo "[tb_screenshot] $OUT/$2"
}
shot "timeseries" scalars.png 1600,1400
shot "text" text.png 1600,2400
# The text card scrolls inside a fixed height; the whole of one logged group: the HTML the text plugin
# serves for the first step's sample (exactly what the card renders), in a page of its own.
page="$(mktemp --suffix=.html)"
curl -sf "http://127.0.0.1:$PORT/data/plugin/text/text?run=.&tag=samples%2Ftext_summary" > "$page.json"
.venv/bin/python - "$page.json" > "$page" <<'PY'
import json, sys
entry = json.load(open(sys.argv[1]))[0]
print('<html><body style="font-family: Roboto, sans-serif; font-size: 13px; margin: 16px">'
      f'<p>TensorBoard text plugin, samples/text_summary, step {entry["step"]}</p>{entry["text"]}</body></html>')
PY
chromium-headless-shell --no-sandbox --disable-gpu --hide-scrollbars --window-size=1600,4200 \
    --screenshot="$OUT/text_sample_full.png" "file://$page" >/dev/null 2>&1
rm -f "$page" "$page.json"
echo "[tb_screenshot] $OUT/text_sample_full.png"
