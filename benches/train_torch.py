"""PyTorch reference for `cargo bench --bench train`: the same training steps, same shapes,
same losses and optimisers, timed in eager f32 on the same number of threads.

Each row builds the model as the Rust crates define it (masked ViT: timm pre-norm blocks,
LayerNorm eps 1e-6, exact GELU, qkv bias, conditioning element, final norm, head and
label-smoothed cross-entropy on the masked positions only, AdamW (0.9, 0.95) with decay off
for biases, norms and embeddings, gradient
clipping at 3; SpecVQGAN: taming's encoder/decoder with GroupNorm + swish, single-head attention
at the lowest level, EMA codebook, L1 + commitment loss, Adam (0.5, 0.9), hinge PatchGAN with
batch norm for the "+ discriminator" rows; CLAP audio branch: four conv stages with SiLU, mean
and max pooling, a GELU MLP, symmetric contrastive loss, AdamW, clipping at 1; HiFi-GAN V1:
the generator with plain convolutions, HiFi-GAN's period and scale discriminators at a quarter
of their widths, one discriminator update and one generator update of mel-L1 ×45 + feature
matching ×2 + least-squares adversarial loss, AdamW (0.8, 0.99)), times one
warm-up step and then `steps` steps, and reports the median.

Usage: python benches/train_torch.py THREADS STEPS [FILTER]
Prints one JSON line per row: {"trainer", "config", "params", "s_per_step"}. FILTER keeps rows
whose "trainer config" contains it (as SMG_BENCH_ONLY does on the Rust side).

Not part of CI: needs torch from PyPI (`pip install torch`), e.g. in the venv that
`SMG_TORCH_PYTHON` points the Rust bench at.
"""
import json
import math
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from vit_torch import Block  # timm's pre-norm block, the same one the pipeline bench times


def timed(steps, fn):
    fn()
    out = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def params(m):
    return sum(p.numel() for p in m.parameters())


# ---------------------------------------------------------------- masked ViT


VIT = {
    "small": dict(vocab=512, rows=5, cols=16, dim=128, depth=3, heads=4, mlp=512, cond=384),
    "medium": dict(vocab=1024, rows=5, cols=16, dim=256, depth=6, heads=4, mlp=1024, cond=384),
}


def sincos_2d(rows, cols, dim):
    q = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(q, dtype=torch.float64) / q)
    w = torch.arange(cols, dtype=torch.float64)[None, :, None] * omega
    h = torch.arange(rows, dtype=torch.float64)[:, None, None] * omega
    w, h = w.expand(rows, cols, q), h.expand(rows, cols, q)
    return torch.cat([w.sin(), w.cos(), h.sin(), h.cos()], -1).reshape(rows * cols, dim).float()


class MaskedVit(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.token_emb = nn.Embedding(c["vocab"], c["dim"])
        self.cond_proj = nn.Linear(c["cond"], c["dim"])
        self.mask_token = nn.Parameter(torch.randn(1, 1, c["dim"]) * 0.02)
        pos = torch.cat([sincos_2d(c["rows"], c["cols"], c["dim"]), torch.zeros(1, c["dim"])])
        self.register_buffer("pos", pos)
        self.blocks = nn.ModuleList([Block(c["dim"], c["heads"], c["mlp"]) for _ in range(c["depth"])])
        self.norm = nn.LayerNorm(c["dim"], eps=1e-6)
        self.head = nn.Linear(c["dim"], c["vocab"])

    def forward(self, tokens, cond, mask):
        n, m = tokens.shape[1], self.mask_token.reshape(1, -1)
        is_null = (cond * cond).sum(1, keepdim=True) == 0
        c = torch.where(is_null, m, self.cond_proj(cond))
        is_mask = tokens >= self.c["vocab"]
        e = self.token_emb(torch.where(is_mask, 0, tokens))
        e = torch.where(is_mask[..., None], c[:, None], e)
        h = torch.cat([e, c[:, None]], 1) + self.pos
        for blk in self.blocks:
            h = blk(h)
        # Norm and head on the masked positions only, as the Rust trainer computes them.
        return self.head(self.norm(h[:, :n][mask]))


def maskgit_row(name, steps):
    c = VIT[name]
    torch.manual_seed(0)
    model = MaskedVit(c)
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if n.endswith(".bias") or "norm" in n or "token_emb" in n or n == "mask_token" else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.95))
    seq, b, total = c["rows"] * c["cols"], 64, 256
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, c["vocab"], (total, seq), generator=g)
    cond = torch.rand(total, c["cond"], generator=g)
    k = [0]

    def step():
        idx = (torch.arange(b) + k[0] * b) % total
        k[0] += 1
        target, cnd = tokens[idx], cond[idx]
        r = min(max(0.55 + 0.25 * torch.randn(1, generator=g).item(), 0.0), 1.0)
        n = min(max(math.ceil(seq * r), 1), seq)
        mask = torch.zeros(b, seq, dtype=torch.bool)
        mask.scatter_(1, torch.rand(b, seq, generator=g).argsort(1)[:, :n], True)
        keep = (torch.rand(b, 1, generator=g) >= 0.1).float()
        inp = torch.where(mask, c["vocab"], target)
        logits = model(inp, cnd * keep, mask)
        loss = F.cross_entropy(logits, target[mask], label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 3.0)
        opt.step()

    return timed(steps, step), params(model)


# ---------------------------------------------------------------- SpecVQGAN tokenizer


TOK = {
    "small": dict(ch=8, mult=[1, 2, 4, 8, 8], res_blocks=1, attn=[16], resolution=256, z=64, n_embed=512, groups=8),
    "medium": dict(ch=16, mult=[1, 2, 4, 8, 8], res_blocks=1, attn=[16], resolution=256, z=64, n_embed=1024, groups=16),
}


class GnSwish(nn.GroupNorm):
    def __init__(self, groups, c, swish=True):
        super().__init__(groups, c, eps=1e-6)
        self.swish = swish

    def forward(self, x):
        x = super().forward(x)
        return F.silu(x) if self.swish else x


class ResnetBlock(nn.Module):
    def __init__(self, cin, cout, g):
        super().__init__()
        self.norm1, self.conv1 = GnSwish(g, cin), nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm2, self.conv2 = GnSwish(g, cout), nn.Conv2d(cout, cout, 3, 1, 1)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv2(self.norm2(self.conv1(self.norm1(x))))
        return (self.nin_shortcut(x) if self.nin_shortcut is not None else x) + h


class AttnBlock(nn.Module):
    def __init__(self, c, g):
        super().__init__()
        self.norm = GnSwish(g, c, swish=False)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, x):
        b, c, h, w = x.shape
        n = self.norm(x)
        q = self.q(n).reshape(b, c, h * w).transpose(1, 2)
        k = self.k(n).reshape(b, c, h * w)
        v = self.v(n).reshape(b, c, h * w)
        att = torch.softmax(torch.bmm(q, k) * c ** -0.5, -1)
        out = torch.bmm(v, att.transpose(1, 2)).reshape(b, c, h, w)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 2, 0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        g, mult, ch = c["groups"], c["mult"], c["ch"]
        self.conv_in = nn.Conv2d(1, ch, 3, 1, 1)
        layers, res, block_in = [], c["resolution"], ch
        for i in range(len(mult)):
            block_in = ch * (1 if i == 0 else mult[i - 1])
            for _ in range(c["res_blocks"]):
                layers.append(ResnetBlock(block_in, ch * mult[i], g))
                block_in = ch * mult[i]
                if res in c["attn"]:
                    layers.append(AttnBlock(block_in, g))
            if i != len(mult) - 1:
                res //= 2
                layers.append(Downsample(block_in))
        layers += [ResnetBlock(block_in, block_in, g), AttnBlock(block_in, g), ResnetBlock(block_in, block_in, g), GnSwish(g, block_in)]
        layers.append(nn.Conv2d(block_in, c["z"], 3, 1, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(self.conv_in(x))


class Decoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        g, mult, ch = c["groups"], c["mult"], c["ch"]
        block_in = ch * mult[-1]
        res = c["resolution"] // 2 ** (len(mult) - 1)
        layers = [nn.Conv2d(c["z"], block_in, 3, 1, 1), ResnetBlock(block_in, block_in, g), AttnBlock(block_in, g), ResnetBlock(block_in, block_in, g)]
        for i in reversed(range(len(mult))):
            for _ in range(c["res_blocks"] + 1):
                layers.append(ResnetBlock(block_in, ch * mult[i], g))
                block_in = ch * mult[i]
                if res in c["attn"]:
                    layers.append(AttnBlock(block_in, g))
            if i != 0:
                res *= 2
                layers.append(Upsample(block_in))
        layers += [GnSwish(g, block_in), nn.Conv2d(block_in, 1, 3, 1, 1)]
        self.layers = nn.Sequential(*layers)

    def forward(self, z):
        return self.layers(z)


class SpecVqGan(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.encoder, self.decoder = Encoder(c), Decoder(c)
        self.quant_conv = nn.Conv2d(c["z"], c["z"], 1)
        self.post_quant_conv = nn.Conv2d(c["z"], c["z"], 1)
        # EMA codebook: not trained by the optimiser.
        self.register_buffer("embedding", torch.randn(c["n_embed"], c["z"]))
        self.register_buffer("ema_cluster_size", torch.zeros(c["n_embed"]))
        self.register_buffer("ema_embed_sum", torch.zeros(c["n_embed"], c["z"]))

    def forward(self, x):
        z = self.quant_conv(self.encoder(x))
        b, d, h, w = z.shape
        zf = z.permute(0, 2, 3, 1).reshape(-1, d)
        with torch.no_grad():
            e = self.embedding
            idx = ((zf * zf).sum(1, keepdim=True) + (e * e).sum(1)[None] - 2 * zf @ e.t()).argmin(1)
        zq = e[idx]
        loss = 0.25 * ((zq - zf) ** 2).mean()
        zq = zf + (zq - zf).detach()
        rec = self.decoder(self.post_quant_conv(zq.reshape(b, h, w, d).permute(0, 3, 1, 2)))
        return rec, loss, zf.detach(), idx

    @torch.no_grad()
    def ema_update(self, zf, idx, decay=0.99, restart_below=0.03):
        onehot = F.one_hot(idx, self.embedding.shape[0]).float()
        self.ema_cluster_size.mul_(decay).add_(onehot.sum(0), alpha=1 - decay)
        self.ema_embed_sum.mul_(decay).add_(onehot.t() @ zf, alpha=1 - decay)
        dead = self.ema_cluster_size < restart_below
        if dead.any():
            rows = torch.randint(0, zf.shape[0], (int(dead.sum()),))
            self.ema_cluster_size[dead] = 1.0
            self.ema_embed_sum[dead] = zf[rows]
        cs = self.ema_cluster_size
        total = cs.sum()
        smoothed = (cs + 1e-5) / (total + cs.numel() * 1e-5) * total
        self.embedding.copy_(self.ema_embed_sum / smoothed[:, None])


def discriminator(ndf=16, n_layers=3):
    layers, mult = [nn.Conv2d(1, ndf, 4, 2, 1), nn.LeakyReLU(0.2)], 1
    for n in range(1, n_layers + 1):
        prev, mult = mult, min(2 ** n, 8)
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, 2 if n < n_layers else 1, 1, bias=False), nn.BatchNorm2d(ndf * mult), nn.LeakyReLU(0.2)]
    layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
    return nn.Sequential(*layers)


def tokenizer_row(name, disc, steps):
    c = TOK[name]
    torch.manual_seed(0)
    model, d = SpecVqGan(c), discriminator()
    opt_g = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(d.parameters(), lr=1e-3, betas=(0.5, 0.9))
    g = torch.Generator().manual_seed(1)

    def step():
        x = torch.rand(16, 1, 80, 128, generator=g)
        rec, q_loss, zf, idx = model(x)
        loss = (rec - x).abs().mean() + q_loss
        if disc:
            loss = loss - 0.8 * d(rec).mean()
        opt_g.zero_grad(set_to_none=True)
        d.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        model.ema_update(zf, idx)
        if disc:
            real, fake = d(x), d(rec.detach())
            d_loss = 0.5 * (F.relu(1 - real).mean() + F.relu(1 + fake).mean())
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()

    return timed(steps, step), params(model) + sum(b.numel() for b in model.buffers())


# ---------------------------------------------------------------- CLAP audio branch


CLAP = {"small": dict(channels=[16, 32, 64, 128], hidden=512), "medium": dict(channels=[32, 64, 128, 256], hidden=768)}


class AudioEncoder(nn.Module):
    def __init__(self, c, n_mels=80, dim=384):
        super().__init__()
        stages, cin = [], 1
        for ch in c["channels"]:
            stages.append(nn.ModuleList([nn.Conv2d(cin, ch, 3, 2, 1), nn.Conv2d(ch, ch, 3, 1, 1)]))
            cin = ch
        self.stages = nn.ModuleList(stages)
        rows = -(-n_mels // 2 ** len(c["channels"]))
        self.proj0 = nn.Linear(2 * cin * rows, c["hidden"])
        self.proj2 = nn.Linear(c["hidden"], dim)

    def forward(self, mel):
        h = mel[:, None]
        for down, conv in self.stages:
            h = F.silu(down(h))
            h = h + F.silu(conv(h))
        b, c, r, w = h.shape
        h = h.reshape(b, c * r, w)
        pooled = torch.cat([h.mean(2), h.amax(2)], 1)
        return self.proj2(F.gelu(self.proj0(pooled)))


def clap_row(name, steps):
    torch.manual_seed(0)
    model = AudioEncoder(CLAP[name])
    logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    opt = torch.optim.AdamW(list(model.parameters()) + [logit_scale], lr=1e-3, betas=(0.9, 0.999), weight_decay=0.01)
    g = torch.Generator().manual_seed(2)
    text = F.normalize(torch.rand(16, 384, generator=g), dim=1)
    caps = torch.arange(64) % 16
    target = (caps[:, None] == caps[None]).float()
    target = target / target.sum(1, keepdim=True)

    def step():
        x = torch.rand(64, 80, 192, generator=g)
        a = F.normalize(model(x), dim=1)
        logits = a @ text[caps].t() * logit_scale.exp()
        ce = lambda l: -(F.log_softmax(l, -1) * target).sum(1).mean()
        loss = 0.5 * (ce(logits) + ce(logits.t()))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(model.parameters()) + [logit_scale], 1.0)
        opt.step()
        with torch.no_grad():
            logit_scale.clamp_(0, math.log(100))

    return timed(steps, step), params(model)


# ---------------------------------------------------------------- HiFi-GAN V1 fine-tuning


def leaky(x, slope=0.1):
    return F.leaky_relu(x, slope)


class ResBlock1(nn.Module):
    def __init__(self, ch, k, dilations):
        super().__init__()
        self.convs1 = nn.ModuleList(nn.Conv1d(ch, ch, k, dilation=d, padding=(k * d - d) // 2) for d in dilations)
        self.convs2 = nn.ModuleList(nn.Conv1d(ch, ch, k, padding=(k - 1) // 2) for _ in dilations)

    def forward(self, x):
        for c1, c2 in zip(self.convs1, self.convs2):
            x = c2(leaky(c1(leaky(x)))) + x
        return x


class HifiGan(nn.Module):
    """HiFi-GAN V1 (13.9M parameters), plain convolutions as a fresh `smg train vocoder` run."""

    def __init__(self, rates=(8, 8, 2, 2), kernels=(16, 16, 4, 4), ch=512, rk=(3, 7, 11), rd=(1, 3, 5)):
        super().__init__()
        self.conv_pre = nn.Conv1d(80, ch, 7, padding=3)
        self.ups = nn.ModuleList(
            nn.ConvTranspose1d(ch // 2**i, ch // 2 ** (i + 1), k, u, padding=(k - u) // 2) for i, (u, k) in enumerate(zip(rates, kernels))
        )
        self.resblocks = nn.ModuleList(ResBlock1(ch // 2 ** (i + 1), k, rd) for i in range(len(rates)) for k in rk)
        self.nk = len(rk)
        self.conv_post = nn.Conv1d(ch // 2 ** len(rates), 1, 7, padding=3)

    def forward(self, mel):
        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            x = up(leaky(x))
            x = sum(self.resblocks[i * self.nk + j](x) for j in range(self.nk)) / self.nk
        return torch.tanh(self.conv_post(leaky(x, 0.01))).squeeze(1)


def narrow(c, div):
    return max(c // div, 1)


def fit_groups(g, cin, cout):
    while g > 1 and (cin % g or cout % g):
        g //= 2
    return max(g, 1)


def conv_stack(convs, post, x):
    """A discriminator's convolutions with leaky ReLU, then its last layer: (logits, feature maps)."""
    fmaps = []
    for c in convs:
        x = leaky(c(x))
        fmaps.append(x)
    x = post(x)
    fmaps.append(x)
    return x, fmaps


class PeriodDisc(nn.Module):
    def __init__(self, period, div):
        super().__init__()
        ch = [1] + [narrow(c, div) for c in (32, 128, 512, 1024, 1024)]
        self.period = period
        self.convs = nn.ModuleList(nn.Conv2d(ch[i], ch[i + 1], (5, 1), (3 if i < 4 else 1, 1), padding=(2, 0)) for i in range(5))
        self.conv_post = nn.Conv2d(ch[5], 1, (3, 1), 1, padding=(1, 0))

    def forward(self, y):
        b, t = y.shape
        if t % self.period:
            y = F.pad(y[:, None], (0, self.period - t % self.period), "reflect")[:, 0]
        return conv_stack(self.convs, self.conv_post, y.view(b, 1, -1, self.period))


class ScaleDisc(nn.Module):
    SPEC = [(1, 128, 15, 1, 1, 7), (128, 128, 41, 2, 4, 20), (128, 256, 41, 2, 16, 20), (256, 512, 41, 4, 16, 20),
            (512, 1024, 41, 4, 16, 20), (1024, 1024, 41, 1, 16, 20), (1024, 1024, 5, 1, 1, 2)]

    def __init__(self, div):
        super().__init__()
        convs = []
        for i, (ci, co, k, s, g, p) in enumerate(self.SPEC):
            ci, co = (1 if i == 0 else narrow(ci, div)), narrow(co, div)
            convs.append(nn.Conv1d(ci, co, k, s, groups=fit_groups(g, ci, co), padding=p))
        self.convs = nn.ModuleList(convs)
        self.conv_post = nn.Conv1d(narrow(1024, div), 1, 3, padding=1)

    def forward(self, y):
        return conv_stack(self.convs, self.conv_post, y[:, None])


class Discriminators(nn.Module):
    """HiFi-GAN's MPD (periods 2-3-5-7-11) and MSD (3 scales), every width / `div`."""

    def __init__(self, div):
        super().__init__()
        self.mpd = nn.ModuleList(PeriodDisc(p, div) for p in (2, 3, 5, 7, 11))
        self.msd = nn.ModuleList(ScaleDisc(div) for _ in range(3))

    def forward(self, y):
        out = [d(y) for d in self.mpd]
        x = y
        for i, d in enumerate(self.msd):
            if i:
                x = F.avg_pool1d(x[:, None], 4, 2, padding=2)[:, 0]
            out.append(d(x))
        return out


class MelLoss(nn.Module):
    """The training mel as the Rust loss builds it: reflect padding, a DFT basis applied as one
    strided convolution, magnitude, mel projection, log. (The filterbank's values do not change
    the step's cost; a fixed random non-negative matrix stands in for Slaney's.)"""

    def __init__(self, n_fft=1024, hop=256, n_mels=80):
        super().__init__()
        f = n_fft // 2 + 1
        t = torch.arange(n_fft, dtype=torch.float64)
        win = 0.5 - 0.5 * torch.cos(2 * math.pi * t / n_fft)
        k = torch.arange(f, dtype=torch.float64)[:, None]
        ang = 2 * math.pi * k * t[None] / n_fft
        basis = torch.cat([torch.cos(ang) * win, -torch.sin(ang) * win])[:, None].float()
        self.register_buffer("basis", basis)
        self.register_buffer("filters", torch.rand(n_mels, f, generator=torch.Generator().manual_seed(5)) / f)
        self.n_fft, self.hop, self.f = n_fft, hop, f

    def forward(self, y):
        pad = (self.n_fft - self.hop) // 2
        y = F.pad(y[:, None], (pad, pad), "reflect")
        spec = F.conv1d(y, self.basis, stride=self.hop)
        re, im = spec[:, : self.f], spec[:, self.f :]
        mag = torch.sqrt(re * re + im * im + 1e-9)
        return torch.log(torch.clamp(self.filters @ mag, min=1e-5))


def hifigan_row(steps):
    torch.manual_seed(0)
    gen, disc, mel_loss = HifiGan(), Discriminators(4), MelLoss()
    kw = dict(lr=2e-4, betas=(0.8, 0.99), weight_decay=0.01)
    opt_g, opt_d = torch.optim.AdamW(gen.parameters(), **kw), torch.optim.AdamW(disc.parameters(), **kw)
    g = torch.Generator().manual_seed(9)
    wave = torch.rand(2, 8192, generator=g) * 0.6 - 0.3
    mel = torch.randn(2, 80, 32, generator=g) - 5

    def step():
        y_hat = gen(mel)[:, : wave.shape[1]]
        # Discriminator update on the detached output.
        d_loss = sum(((1 - r) ** 2).mean() + (f**2).mean() for (r, _), (f, _) in zip(disc(wave), disc(y_hat.detach())))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        # Generator update against the discriminators held fixed (no gradient for their weights).
        disc.requires_grad_(False)
        mel_l1 = (mel_loss(y_hat) - mel_loss(wave)).abs().mean()
        real, fake = disc(wave), disc(y_hat)
        fm = sum((a.detach() - b).abs().mean() for (_, ra), (_, fa) in zip(real, fake) for a, b in zip(ra, fa))
        adv = sum(((1 - f) ** 2).mean() for f, _ in fake)
        total = adv + 2 * fm + 45 * mel_l1
        opt_g.zero_grad(set_to_none=True)
        total.backward()
        opt_g.step()
        disc.requires_grad_(True)

    return timed(steps, step), params(gen)


ROWS = [
    ("masked ViT", "small", lambda s: maskgit_row("small", s)),
    ("masked ViT", "medium", lambda s: maskgit_row("medium", s)),
    ("SpecVQGAN tokenizer", "small", lambda s: tokenizer_row("small", False, s)),
    ("SpecVQGAN tokenizer + discriminator", "small", lambda s: tokenizer_row("small", True, s)),
    ("SpecVQGAN tokenizer", "medium", lambda s: tokenizer_row("medium", False, s)),
    ("SpecVQGAN tokenizer + discriminator", "medium", lambda s: tokenizer_row("medium", True, s)),
    ("CLAP audio branch", "small", lambda s: clap_row("small", s)),
    ("CLAP audio branch", "medium", lambda s: clap_row("medium", s)),
    ("HiFi-GAN V1 fine-tuning", "universal", hifigan_row),
]


def main():
    threads, steps = int(sys.argv[1]), int(sys.argv[2])
    only = sys.argv[3] if len(sys.argv) > 3 else ""
    torch.set_num_threads(threads)
    for trainer, config, run in ROWS:
        if only not in f"{trainer} {config}":
            continue
        s, p = run(steps)
        print(json.dumps({"trainer": trainer, "config": config, "params": p, "s_per_step": s, "torch": torch.__version__}), flush=True)


if __name__ == "__main__":
    main()
