"""PyTorch reference for `cargo run --release -p smg-tokenizer --example disc_phase_speed`: the
tokenizer trainer's discriminator phase alone (PatchGAN of `train_torch.py`, ndf 16, batch 16 of
80 × 128 mels, eager f32 on 2 threads), best of 10, in ms: the generator's adversarial pass
(forward + gradient to the reconstruction) and the discriminator's pass (real and fake forward,
hinge loss, backward).

Usage: python benches/disc_phase_torch.py   (torch from PyPI, e.g. the `SMG_TORCH_PYTHON` venv)
"""
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_torch import discriminator  # noqa: E402


def best(f):
    f()
    b = float("inf")
    for _ in range(10):
        t = time.perf_counter()
        f()
        b = min(b, time.perf_counter() - t)
    return b * 1e3


def main():
    torch.set_num_threads(2)
    torch.manual_seed(0)
    d = discriminator()
    x = torch.rand(16, 1, 80, 128)
    rec = torch.rand(16, 1, 80, 128, requires_grad=True)

    def generator_pass():
        (-d(rec).mean()).backward()

    def discriminator_pass():
        real, fake = d(x), d(rec.detach())
        (0.5 * (F.relu(1 - real).mean() + F.relu(1 + fake).mean())).backward()

    print(f"generator's adversarial pass {best(generator_pass):.1f} ms, discriminator's pass {best(discriminator_pass):.1f} ms")


if __name__ == "__main__":
    main()
