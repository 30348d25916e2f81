#!/usr/bin/env python3
"""Execute notebooks headless with the evcxr (Rust) kernel and fail loudly.

A notebook fails when any cell raises (compile error, dead kernel, timeout), when any output
is an error, when a cell wrote to stderr (evcxr reports panics, and `Err`s propagated with `?`,
as stderr text, which nbclient alone does not treat as failure; notebooks write everything
else to stdout; a cell tagged ``smg-allow-stderr`` is exempt, but stderr that arrives
after its cell finished always fails), or when the notebook did not
produce the outputs its metadata promises: ``metadata.smg.expect = {"image/png": N, "audio": M}``.

    run_notebooks.py notebooks/00_quickstart.ipynb ...        # all must pass
    run_notebooks.py --expect-failure tests/notebooks/*.ipynb  # all must fail (harness self-test)

Executed copies go to $SMG_OUTPUT_DIR/executed (default notebooks/output/executed).
With ``--write-back`` (scripts/render_notebooks.sh) a notebook that passed is also written
over its source with its outputs, its run time stated in its first cell, so that it reads as a
document before anyone runs it.
"""
import argparse
import os
import platform
import re
import sys
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionComplete, CellExecutionError, CellTimeoutError, DeadKernelError
from nbclient.util import ensure_async

PANIC_MARKERS = ("SMG_CELL_FAILED", "panicked at", "Child process terminated", "EVCXR_ERROR")


# evcxr forwards a cell's stderr (where an `Err` propagated with `?` is printed) on its own
# thread, tagged with whichever request is the latest when the line gets there. On a busy machine
# the line can come after the cell's reply: nbclient then files it under no cell and drops it, and
# after the last cell nobody is listening at all. So every notebook gets one trailing cell that
# waits a little, and every stream message that reaches no cell is kept and counts as a failure.
SENTINEL_SOURCE = "// smg: trailing cell added by run_notebooks.py\nstd::thread::sleep(std::time::Duration::from_millis(1500));"


class RecordingClient(NotebookClient):
    """nbclient's client that keeps the stream messages it would otherwise drop."""

    stray = None

    async def _async_poll_output_msg(self, parent_msg_id, cell, cell_index):
        # nbclient 0.11's loop (pinned in requirements-ci.txt) plus the `else` branch.
        assert self.kc is not None
        while True:
            msg = await ensure_async(self.kc.iopub_channel.get_msg(timeout=None))
            if msg["parent_header"].get("msg_id") == parent_msg_id:
                try:
                    self.process_message(msg, cell, cell_index)
                except CellExecutionComplete:
                    return
            elif msg.get("msg_type") == "stream":
                if self.stray is None:
                    self.stray = []
                self.stray.append(msg)


def problems_in_outputs(nb):
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                found.append(f"cell {i}: error output {out.get('ename')}: {out.get('evalue', '')[:300]}")
            elif out.output_type == "stream":
                text = out.get("text", "")
                allowed = "smg-allow-stderr" in cell.get("metadata", {}).get("tags", [])
                if (out.get("name") == "stderr" and text.strip() and not allowed) or any(
                        m in text for m in PANIC_MARKERS):
                    found.append(f"cell {i}: {out.get('name')}: {text.strip()[:300]}")
            elif out.output_type in ("execute_result", "display_data"):
                text = out.get("data", {}).get("text/plain", "")
                if isinstance(text, str) and text.startswith("Error"):
                    found.append(f"cell {i}: {text[:300]}")
    return found


def summary(message):
    """The most telling line of an nbclient exception message."""
    lines = [l.strip() for l in message.splitlines() if l.strip() and not set(l.strip()) <= set("-")]
    for key in ("SMG_CELL_FAILED", "panicked", "error[", "error:", "Error:", "error", "Error"):
        for l in lines:
            if key in l:
                return l[:400]
    return lines[-1][:400] if lines else ""


def count_outputs(nb):
    images = audio = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "image/png" in data:
                images += 1
            html = data.get("text/html", "")
            html = "".join(html) if isinstance(html, list) else html
            images += html.count("data:image/png")
            audio += html.count("<audio")
    return {"image/png": images, "audio": audio}


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return re.sub(r"\s+", " ", line.split(":", 1)[1]).strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


FULL_RUN = "*Full run:*"
WAV_SRC = re.compile(r'src="data:audio/wav;base64,([A-Za-z0-9+/=]+)"')


def compress_players(nb):
    """Stores every audio player of `nb` as VBR MP3 instead of 16-bit WAV (about a tenth of the
    size; the notebook itself, when run, plays the exact WAV). Needs `soundfile`
    (requirements-notebooks.txt), whose libsndfile encodes MP3."""
    import base64
    import io

    import soundfile

    def mp3(match):
        x, sr = soundfile.read(io.BytesIO(base64.b64decode(match.group(1))), dtype="float32")
        out = io.BytesIO()
        soundfile.write(out, x, sr, format="MP3", subtype="MPEG_LAYER_III", compression_level=0.3,
                        bitrate_mode="VARIABLE")
        return 'src="data:audio/mpeg;base64,' + base64.b64encode(out.getvalue()).decode() + '"'

    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            html = data.get("text/html")
            if html:
                html = "".join(html) if isinstance(html, list) else html
                data["text/html"] = WAV_SRC.sub(mp3, html)


def write_back(nb, path, elapsed, mode=None):
    """Writes the executed notebook over its source, stating how long the run took."""
    mode = mode or ("quick mode (SMG_QUICK=1)" if os.environ.get("SMG_QUICK") else "full mode")
    minutes = max(1, round(elapsed / 60))
    line = (f"{FULL_RUN} the outputs below are from a {mode} run that took about {minutes} min on "
            f"{os.cpu_count()} cores ({cpu_name()}), warm build cache; its audio players are stored "
            f"as MP3 to keep the repository small (running the notebook plays the exact WAV).")
    compress_players(nb)
    first = nb.cells[0] if nb.cells and nb.cells[0].cell_type == "markdown" else None
    if first is not None:
        kept = [l for l in first.source.splitlines() if not l.startswith(FULL_RUN)]
        while kept and not kept[-1].strip():
            kept.pop()
        first.source = "\n".join(kept + ["", line])
    nb.metadata.setdefault("smg", {})["rendered"] = {"mode": mode, "seconds": round(elapsed), "cores": os.cpu_count(),
                                                    "cpu": cpu_name()}
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nbformat.write(nb, path)


def run_one(path, timeout, out_dir, keep=False):
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(SENTINEL_SOURCE))
    client = RecordingClient(
        nb,
        timeout=timeout,
        kernel_name="rust",
        # evcxr compiles the evcxr.toml dependencies before it answers: minutes when cold.
        startup_timeout=int(os.environ.get("SMG_KERNEL_STARTUP_TIMEOUT", "2400")),
        resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}},
        allow_errors=False,
        # Wait for every output of a cell (evcxr can send a cell's stderr after its reply when
        # the machine is busy; nbclient's default of 4 s then drops it and an `Err` goes unseen).
        iopub_timeout=int(os.environ.get("SMG_IOPUB_TIMEOUT", "60")),
    )
    t0 = time.time()
    failures = []
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as e:
        failures.append(f"{type(e).__name__}: {summary(str(e))}")
    except Exception as e:  # kernel could not start, etc.
        failures.append(f"{type(e).__name__}: {e}")
    elapsed = time.time() - t0
    failures += problems_in_outputs(nb)
    for msg in client.stray or []:
        content = msg.get("content", {})
        text = content.get("text", "")
        if (content.get("name") == "stderr" and text.strip()) or any(m in text for m in PANIC_MARKERS):
            failures.append(f"late {content.get('name')} output (after its cell finished): {text.strip()[:300]}")
    if nb.cells and nb.cells[-1].get("source") == SENTINEL_SOURCE:
        nb.cells.pop()
    if not failures:
        expect = nb.metadata.get("smg", {}).get("expect", {})
        got = count_outputs(nb)
        for kind, n in expect.items():
            if got.get(kind, 0) < n:
                failures.append(f"expected at least {n} {kind} outputs, got {got.get(kind, 0)}")
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        nbformat.write(nb, os.path.join(out_dir, os.path.basename(path)))
    if keep and not failures:
        write_back(nb, path, elapsed)
    return failures, elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--compress-only", action="store_true",
                    help="only store the audio players of the given notebooks as MP3 (no execution)")
    ap.add_argument("notebooks", nargs="+")
    ap.add_argument("--expect-failure", action="store_true",
                    help="succeed only if every notebook fails (tests the harness itself)")
    ap.add_argument("--timeout", type=int, default=int(os.environ.get("SMG_CELL_TIMEOUT", "2400")),
                    help="seconds per cell (the first cell may compile candle cold)")
    ap.add_argument("--write-back", action="store_true",
                    help="write each notebook that passes over its source, with its outputs")
    ap.add_argument("--warm-up", action="store_true",
                    help="start the kernel in the given notebooks' folder and run one trivial cell: builds "
                         "the evcxr cache, so the first real cell answers in seconds")
    args = ap.parse_args()
    if args.warm_up:
        folder = os.path.dirname(os.path.abspath(args.notebooks[0]))
        path = os.path.join(folder, ".warm-up.ipynb")
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
        nbformat.write(nb, path)
        try:
            failures, elapsed = run_one(path, args.timeout, None)
        finally:
            os.remove(path)
        for f in failures:
            print(f"warm-up: {f}", flush=True)
        print(f"kernel warm-up {'failed' if failures else 'done'} in {elapsed:.0f} s", flush=True)
        sys.exit(1 if failures else 0)
    if args.compress_only:
        for path in args.notebooks:
            nb = nbformat.read(path, as_version=4)
            rendered = nb.metadata.get("smg", {}).get("rendered")
            if rendered:  # also restate the run in the first cell
                write_back(nb, path, rendered["seconds"], rendered["mode"])
            else:
                compress_players(nb)
                nbformat.write(nb, path)
            print(f"{path}: {os.path.getsize(path) / 1048576:.1f} MB", flush=True)
        return
    out_dir = os.path.join(os.environ.get("SMG_OUTPUT_DIR", os.path.join(os.getcwd(), "notebooks", "output")),
                           "executed")
    bad = 0
    for path in args.notebooks:
        failures, elapsed = run_one(path, args.timeout, None if args.expect_failure else out_dir, args.write_back)
        if args.expect_failure:
            if failures:
                print(f"ok (failed as intended) {path} [{elapsed:.1f} s]: {failures[0]}", flush=True)
            else:
                print(f"FAIL {path}: ran without an error but must fail", flush=True)
                bad += 1
        elif failures:
            bad += 1
            print(f"FAIL {path} [{elapsed:.1f} s]", flush=True)
            for f in failures:
                print(f"    {f}", flush=True)
        else:
            print(f"ok {path} [{elapsed:.1f} s]", flush=True)
    total = len(args.notebooks)
    print(f"notebooks: {total - bad} passed, {bad} failed", flush=True)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
