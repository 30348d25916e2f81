"""The spectrogram studio in a real browser (headless Chromium through WebDriver).

Starts `smg studio` on a free port, then in the page: uploads a real corpus clip, drags a time
range over the spectrogram, presses Generate and waits for the result player; checks that the
result has the input's length and rate and that every sample outside the selection (and its
crossfades) is the input's, bit for bit. Then the same for a painted time x frequency region,
then a junk upload, which must show an error on the page. The server must still answer at the
end. Saves screenshots into $SMG_ARTIFACTS (default $SMG_CACHE/artifacts).

Usage: python tests/browser/studio_browser.py   (from the checkout; scripts/test.sh runs it)
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import wave
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("SMG_CACHE", Path.home() / ".cache/specmaskgit"))
DATA = Path(os.environ.get("SMG_DATA_DIR", CACHE / "data"))
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
SMG = Path(os.environ.get("SMG_BIN", TARGET / "release/smg"))
ARTIFACTS = Path(os.environ.get("SMG_ARTIFACTS", CACHE / "artifacts"))
FADE_S = 0.05  # crossfades are at most 50 ms each side


def fail(msg):
    print(f"studio browser test FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_clip():
    """A real recording: the first test-split clip of the small corpus with 2 s of audio."""
    manifest = DATA / "corpus/sound-small/manifest.jsonl"
    for line in manifest.read_text().splitlines():
        r = json.loads(line)
        if r["split"] == "test" and r["audio_samples"] >= 2 * r["sample_rate"]:
            return DATA / r["path"]
    fail(f"no test clip of 2 s in {manifest}")


def read_wav(url):
    with urllib.request.urlopen(url) as r, wave.open(r) as w:
        return w.getframerate(), w.getnchannels(), w.getsampwidth(), w.readframes(w.getnframes())


def check_outside_unchanged(base, orig_id, result_id, from_s, to_s):
    sr, ch, width, a = read_wav(f"{base}/api/audio/{orig_id}/wav")
    sr2, ch2, width2, b = read_wav(f"{base}/api/audio/{result_id}/wav")
    if (sr, ch, width, len(a)) != (sr2, ch2, width2, len(b)):
        fail(f"result is {sr2} Hz x{ch2} {width2 * 8}-bit {len(b)} bytes, input {sr} Hz x{ch} {width * 8}-bit {len(a)} bytes")
    frame = ch * width
    lo, hi = int((from_s - FADE_S) * sr) * frame, int((to_s + FADE_S) * sr + 1) * frame
    if a[:max(lo, 0)] != b[:max(lo, 0)] or a[hi:] != b[hi:]:
        fail(f"samples outside {from_s:.3f}-{to_s:.3f} s changed")
    if a[lo:hi] == b[lo:hi]:
        fail("nothing changed inside the selection")
    return len(a) // frame / sr


def main():
    for p, what in [(SMG, "the smg binary (cargo build --release -p smg-cli)"), (Path("/usr/bin/chromedriver"), "chromium-driver")]:
        if not p.exists():
            fail(f"{p} is missing: {what}")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, SMG_DATA_DIR=str(DATA))
    server = subprocess.Popen([str(SMG), "studio", "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    driver = None
    try:
        line = server.stdout.readline()
        if "studio at" not in line:
            fail(f"smg studio did not start: {line!r} (exit {server.poll()})")
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1300"]:
            opts.add_argument(a)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
        wait = WebDriverWait(driver, 120)
        driver.get(base + "/")
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
        err = driver.find_element(By.ID, "error").text
        if err:
            fail(f"the page shows an error after loading: {err}")
        # The knobs start at the loaded generator's preset (its sampler.json).
        with urllib.request.urlopen(base + "/api/health") as r:
            preset = json.load(r)["models"]["sampler"]
        for k in ["iterations", "guidance", "guidance_schedule", "guidance_rescale", "temperature", "draw", "mask_schedule"]:
            shown = driver.find_element(By.ID, k).get_attribute("value")
            if shown != str(preset[k]) and not (isinstance(preset[k], float) and float(shown) == preset[k]):
                fail(f"the {k} knob shows {shown!r}, the generator's preset says {preset[k]!r}")
        if "preset" not in driver.find_element(By.ID, "sampler-note").text:
            fail("the page does not say where its sampler defaults come from")
        print(f"knobs at the generator's preset: {preset}")

        # Upload a real clip.
        clip = test_clip()
        driver.find_element(By.ID, "file").send_keys(str(clip))
        wait.until(lambda d: d.find_element(By.ID, "orig-audio").get_attribute("data-id"))
        orig_id = driver.find_element(By.ID, "orig-audio").get_attribute("data-id")
        print(f"uploaded {clip.name} as {orig_id}")

        def drag(x0, y0, x1, y1):
            """Drags over the spectrogram's plot area; coordinates are fractions of it."""
            c = driver.find_element(By.ID, "spec")
            r = driver.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.width, r.height];", c)
            s = r[0] / int(c.get_attribute("width"))
            left, top = float(c.get_attribute("data-left")) * s, float(c.get_attribute("data-top")) * s
            pw, ph = float(c.get_attribute("data-width")) * s, float(c.get_attribute("data-height")) * s
            pt = lambda fx, fy: (round(left + fx * pw - r[0] / 2), round(top + fy * ph - r[1] / 2))
            (ax, ay), (bx, by) = pt(x0, y0), pt(x1, y1)
            ActionChains(driver).move_to_element_with_offset(c, ax, ay).click_and_hold().move_to_element_with_offset(c, bx, by).release().perform()

        def generate_and_check(label):
            sel = driver.execute_script("return sel;")
            if not sel:
                fail(f"{label}: dragging selected nothing")
            driver.find_element(By.ID, "generate").click()
            wait.until(lambda d: d.find_element(By.ID, "result-audio").get_attribute("data-id") or d.find_element(By.ID, "error").text)
            err = driver.find_element(By.ID, "error").text
            if err:
                fail(f"{label}: the page shows an error: {err}")
            rid = driver.find_element(By.ID, "result-audio").get_attribute("data-id")
            dur = check_outside_unchanged(base, orig_id, rid, sel["from_s"], sel["to_s"])
            print(f"{label}: {sel['from_s']:.3f}-{sel['to_s']:.3f} s rows {sel['rows']} -> {rid}, {dur:.3f} s, "
                  f"outside unchanged; {driver.find_element(By.ID, 'status').text}")
            return sel

        drag(0.35, 0.5, 0.6, 0.5)
        generate_and_check("time range")
        time.sleep(1.5)  # let the step animation finish for the screenshot
        driver.save_screenshot(str(ARTIFACTS / "studio.png"))

        driver.find_element(By.CSS_SELECTOR, "input[name=mode][value=region]").click()
        drag(0.2, 0.15, 0.45, 0.55)
        sel = generate_and_check("painted region")
        if not sel["rows"]:
            fail("the painted region covers every row; expected a band")
        driver.save_screenshot(str(ARTIFACTS / "studio-region.png"))

        # Text-to-audio longer than one window: the asked length, and the token grid steps
        # through every window in turn.
        prev = driver.find_element(By.ID, "result-audio").get_attribute("data-id")
        for el, value in [("prompt", "rain on a tin roof"), ("duration", "5")]:
            driver.find_element(By.ID, el).clear()
            driver.find_element(By.ID, el).send_keys(value)
        driver.find_element(By.ID, "gen-prompt").click()
        wait.until(lambda d: d.find_element(By.ID, "step-label").text.lower().startswith("window 2 of") or d.find_element(By.ID, "error").text)
        wait.until(lambda d: d.find_element(By.ID, "result-audio").get_attribute("data-id") not in (None, "", prev)
                   or d.find_element(By.ID, "error").text)
        err = driver.find_element(By.ID, "error").text
        if err:
            fail(f"long generation: the page shows an error: {err}")
        sr, ch, width, frames = read_wav(f"{base}/api/audio/{driver.find_element(By.ID, 'result-audio').get_attribute('data-id')}/wav")
        if abs(len(frames) // (ch * width) - 5 * sr) > 1:
            fail(f"long generation: {len(frames) // (ch * width)} frames for 5 s at {sr} Hz")
        print(f"long generation: 5 s, the grid stepped through several windows; {driver.find_element(By.ID, 'status').text}")

        # A junk upload is refused with an error on the page.
        with tempfile.NamedTemporaryFile("wb", suffix=".wav", delete=False) as f:
            f.write(b"this is not audio at all" * 10)
        driver.find_element(By.ID, "file").send_keys(f.name)
        wait.until(lambda d: d.find_element(By.ID, "error").text)
        err = driver.find_element(By.ID, "error").text
        if "not audio" not in err:
            fail(f"junk upload: unexpected message {err!r}")
        print(f"junk upload refused on the page: {err}")
        driver.save_screenshot(str(ARTIFACTS / "studio-error.png"))

        with urllib.request.urlopen(base + "/api/health") as r:
            if not json.load(r)["ok"]:
                fail("the server is unhealthy at the end")
        print(f"studio browser test passed; screenshots in {ARTIFACTS}")
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
