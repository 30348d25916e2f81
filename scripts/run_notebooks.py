#!/usr/bin/env python3
"""Execute notebooks headless with the evcxr (Rust) kernel and fail loudly.

A notebook fails when any cell raises (compile error, dead kernel, timeout), when any output
is an error, when a cell wrote to stderr (evcxr reports panics, and `Err`s propagated with `?`,
as stderr text, which nbclient alone does not treat as failure; notebooks write everything
else to stdout; a cell tagged ``smg-allow-stderr`` is exempt), or when the notebook did not
produce the outputs its metadata promises: ``metadata.smg.expect = {"image/png": N, "audio": M}``.

    run_notebooks.py notebooks/00_quickstart.ipynb ...        # all must pass
    run_notebooks.py --expect-failure tests/notebooks/*.ipynb  # all must fail (harness self-test)

Executed copies go to $SMG_OUTPUT_DIR/executed (default notebooks/output/executed).
"""
import argparse
import os
import sys
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

PANIC_MARKERS = ("SMG_CELL_FAILED", "panicked at", "Child process terminated", "EVCXR_ERROR")


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


def run_one(path, timeout, out_dir):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
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
    if not failures:
        expect = nb.metadata.get("smg", {}).get("expect", {})
        got = count_outputs(nb)
        for kind, n in expect.items():
            if got.get(kind, 0) < n:
                failures.append(f"expected at least {n} {kind} outputs, got {got.get(kind, 0)}")
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        nbformat.write(nb, os.path.join(out_dir, os.path.basename(path)))
    return failures, elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("notebooks", nargs="+")
    ap.add_argument("--expect-failure", action="store_true",
                    help="succeed only if every notebook fails (tests the harness itself)")
    ap.add_argument("--timeout", type=int, default=int(os.environ.get("SMG_CELL_TIMEOUT", "2400")),
                    help="seconds per cell (the first cell may compile candle cold)")
    args = ap.parse_args()
    out_dir = os.path.join(os.environ.get("SMG_OUTPUT_DIR", os.path.join(os.getcwd(), "notebooks", "output")),
                           "executed")
    bad = 0
    for path in args.notebooks:
        failures, elapsed = run_one(path, args.timeout, None if args.expect_failure else out_dir)
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
