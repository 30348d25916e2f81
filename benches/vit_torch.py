"""PyTorch reference for `cargo bench --bench pipeline`: one forward pass of the
paper's masked ViT (24 blocks x 768, 8 heads, MLP 3072, 265 tokens + 1 condition, batch 2 for
CFG; timm's pre-norm block with LayerNorm eps 1e-6, exact GELU, qkv bias) on random weights,
timed in eager f32 and in bf16 weights/activations (AMX on Sapphire Rapids), on the same
number of threads as the Rust bench. Prints one JSON line: {"f32_ms": .., "bf16_ms": .., ...}.

Not part of CI: needs torch from PyPI (`pip install torch`), e.g. in the venv that
`SMG_TORCH_PYTHON` points the Rust bench at.
"""
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, dim, heads, mlp):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, mlp)
        self.fc2 = nn.Linear(mlp, dim)

    def forward(self, x):
        b, n, d = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        x = x + self.proj(a.transpose(1, 2).reshape(b, n, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class Vit(nn.Module):
    def __init__(self, vocab=1024, seq=265, dim=768, depth=24, heads=8, mlp=3072, cond=384):
        super().__init__()
        self.emb = nn.Embedding(vocab + 1, dim)
        self.cond = nn.Linear(cond, dim)
        self.pos = nn.Parameter(torch.randn(1, seq + 1, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, vocab)

    def forward(self, tokens, cond):
        h = torch.cat([self.emb(tokens), self.cond(cond)[:, None]], 1) + self.pos
        for blk in self.blocks:
            h = blk(h)
        return self.head(self.norm(h)[:, :-1])


def best_ms(f, reps):
    f()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = Vit().eval()
    tokens = torch.randint(0, 1024, (2, 265))
    cond = torch.randn(2, 384)
    out = {"torch": torch.__version__, "threads": threads}
    with torch.inference_mode():
        out["f32_ms"] = best_ms(lambda: model(tokens, cond), reps)
        m16 = model.to(torch.bfloat16)
        c16 = cond.to(torch.bfloat16)
        out["bf16_ms"] = best_ms(lambda: m16(tokens, c16), reps)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
