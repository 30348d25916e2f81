#!/usr/bin/env python3
"""Size budget of the committed notebooks (they carry their outputs: PNG figures and WAV players).

Fails when all of notebooks/*.ipynb together exceed 25 MB or one notebook exceeds 6 MB, and
says which outputs are the largest, so that a notebook that grew gets shorter audio or fewer
figures rather than bloating the repository.
"""
import glob
import json
import os
import sys

TOTAL_MB, EACH_MB = 25.0, 6.0
MB = 1024 * 1024


def largest_outputs(path, n=3):
    nb = json.load(open(path))
    sizes = []
    for i, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []):
            sizes.append((len(json.dumps(out)), i))
    return sorted(sizes, reverse=True)[:n]


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "notebooks")
    paths = sorted(glob.glob(os.path.join(root, "*.ipynb")))
    total, bad = 0, []
    for p in paths:
        size = os.path.getsize(p)
        total += size
        if size > EACH_MB * MB:
            top = ", ".join(f"cell {i}: {s / MB:.1f} MB" for s, i in largest_outputs(p))
            bad.append(f"{os.path.basename(p)} is {size / MB:.1f} MB (over {EACH_MB:.0f} MB; largest outputs {top})")
    if total > TOTAL_MB * MB:
        bad.append(f"the notebooks together are {total / MB:.1f} MB (over {TOTAL_MB:.0f} MB)")
    for b in bad:
        print(f"[smg] notebook size budget: {b}", file=sys.stderr)
    print(f"[smg] notebooks: {len(paths)} files, {total / MB:.1f} MB of {TOTAL_MB:.0f} MB", file=sys.stderr)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
