#!/usr/bin/env python3
"""PyTorch peer of `diffcl bench train`: the same two models, optimizer, EMA, clipping and batch,
timed the same way, printing the same "train" and "sample" lines. Run by tools/bench_vs_pytorch.sh.

  peer_torch.py --model mlp|unet [--threads N] [--batch N] [--steps N]

MLP: [x (2), sinusoid(t) (32)] -> Linear(34,128) ReLU x3 -> Linear(128,2) (host/nn/mlp.c), spiral
points drawn fresh every step, flow matching (x_t = (1-t) x0 + t eps, velocity target).
U-Net: host/nn/unet.c and include/diffcl/unet.h layer for layer (175,441 parameters for 1x28x28,
base 16, mult 1,2,2, GroupNorm 8, 10 classes + a null class, checked below), class-conditional
with label drop 0.1, trained on Fashion-MNIST (or synthetic images of that shape).
Both: AdamW(lr 1e-3 with a 100-step linear warm-up, betas (0.9, 0.999), eps 1e-8, weight decay 0),
gradient-norm clipping to 1, EMA with decay min(0.999, (1+k)/(10+k)), the loss read back every
100 (MLP) or 25 (U-Net) steps, as `diffcl train` does. Sampling: Euler with the EMA weights
(MLP 10,000 points x 100 steps; U-Net --batch images x 10 steps, null class).
"""
import argparse
import gzip
import math
import os
import sys
import time

UNET_PARAMS = 175441
MLP_PARAMS = 37762
FM_DIR = "/usr/share/datasets/fashion-mnist"


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=["mlp", "unet"], required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=0)
    p.add_argument("--steps", type=int, default=0)
    return p.parse_args()


args = parse()
# Before importing torch: its OpenMP pool and a BLAS it calls read these at load time, and some
# BLAS builds ignore torch.set_num_threads.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(args.threads)
torch.manual_seed(0)


def sinusoid(t, E):
    # cl/embedding.cl and the CPU reference: freq_j = exp(-ln(10^4) j / half), arg = 1000 t freq_j.
    half = E // 2
    freq = torch.exp(-9.21034037 * torch.arange(half, dtype=torch.float32) / half)
    arg = 1000.0 * t[:, None] * freq[None, :]
    return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)


class MLP(nn.Module):
    def __init__(self, dim=2, width=128, depth=3, emb=32):
        super().__init__()
        self.emb = emb
        layers, d = [], dim + emb
        for _ in range(depth):
            layers += [nn.Linear(d, width), nn.ReLU()]
            d = width
        layers.append(nn.Linear(d, dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x, t, labels=None):
        return self.net(torch.cat([x, sinusoid(t, self.emb)], dim=1))


class ResBlock(nn.Module):
    def __init__(self, cin, cout, T, G):
        super().__init__()
        self.norm1 = nn.GroupNorm(G, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(T, cout)
        self.norm2 = nn.GroupNorm(G, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, e):
        a = self.conv1(F.silu(self.norm1(x))) + self.emb(e)[:, :, None, None]
        y = self.conv2(F.silu(self.norm2(a)))
        return y + (self.skip(x) if self.skip is not None else x)


class UNet(nn.Module):
    """include/diffcl/unet.h: the same modules, in the same order."""

    def __init__(self, C=1, base=16, mult=(1, 2, 2), G=8, K=10):
        super().__init__()
        T, L = 4 * base, len(mult)
        self.E, self.K, self.L = base, K, L
        self.time_mlp = nn.Sequential(nn.Linear(base, T), nn.SiLU(), nn.Linear(T, T))
        self.class_emb = nn.Embedding(K + 1, T) if K else None
        self.conv_in = nn.Conv2d(C, base, 3, padding=1)
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        ch, chs = base, []
        for l in range(L):
            c = base * mult[l]
            self.down.append(ResBlock(ch, c, T, G))
            ch = c
            chs.append(c)
            if l < L - 1:
                self.downsample.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
        self.mid = ResBlock(ch, ch, T, G)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for l in range(L - 1, -1, -1):
            self.up.append(ResBlock(ch + chs[l], chs[l], T, G))
            ch = chs[l]
            if l > 0:
                self.upsample.append(nn.Conv2d(ch, ch, 3, padding=1))
        self.norm_out = nn.GroupNorm(G, ch)
        self.conv_out = nn.Conv2d(ch, C, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x, t, labels):
        temb = self.time_mlp(sinusoid(t, self.E))
        if self.class_emb is not None:
            temb = temb + self.class_emb(labels)
        e = F.silu(temb)
        h = self.conv_in(x)
        skips = []
        for l in range(self.L):
            h = self.down[l](h, e)
            skips.append(h)
            if l < self.L - 1:
                h = self.downsample[l](h)
        h = self.mid(h, e)
        for i, l in enumerate(range(self.L - 1, -1, -1)):
            h = self.up[i](torch.cat([h, skips[l]], dim=1), e)
            if l > 0:
                h = self.upsample[i](F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


def spiral(N):
    # host/data/toy2d.c: one arm, theta = 3 pi sqrt(u), radius 1.67 theta / (3 pi), noise 0.
    theta = 3 * math.pi * torch.sqrt(torch.rand(N))
    r = 1.67 * theta / (3 * math.pi)
    return torch.stack([r * torch.cos(theta) + 0.272, r * torch.sin(theta) - 0.275], dim=1)


def load_images():
    """Fashion-MNIST's train split scaled to [-1, 1] and its labels, or synthetic ones."""
    img, lab = FM_DIR + "/train-images-idx3-ubyte.gz", FM_DIR + "/train-labels-idx1-ubyte.gz"
    if os.path.exists(img) and os.path.exists(lab):
        with gzip.open(img) as f:
            px = bytearray(f.read()[16:])
        with gzip.open(lab) as f:
            lb = bytearray(f.read()[8:])
        x = torch.frombuffer(px, dtype=torch.uint8).float().view(-1, 1, 28, 28) / 127.5 - 1
        return x, torch.frombuffer(lb, dtype=torch.uint8).long(), "Fashion-MNIST"
    x = torch.rand(1000, 1, 28, 28) * 2 - 1
    return x, torch.arange(1000) % 10, "synthetic images"


def main():
    unet = args.model == "unet"
    batch = args.batch or (64 if unet else 1024)
    steps = args.steps or (10 if unet else 300)
    warm, log_every = (2, 25) if unet else (20, 100)
    if unet:
        model = UNet()
        images, labels, source = load_images()
        want = UNET_PARAMS
    else:
        model = MLP()
        want = MLP_PARAMS
        source = "spiral"
    P = sum(p.numel() for p in model.parameters())
    if P != want:
        sys.exit("peer_torch.py: %s has %d parameters, diffcl's has %d" % (args.model, P, want))
    ema = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.0)
    K = 10

    def batch_of(N):
        if unet:
            idx = torch.randint(0, images.shape[0], (N,))
            y = labels[idx].clone()
            y[torch.rand(N) < 0.1] = K  # label drop to the null class
            return images[idx], y
        return spiral(N), None

    state = {"k": 0}

    def step():
        k = state["k"]
        for g in opt.param_groups:
            g["lr"] = 1e-3 * min(1.0, (k + 1) / 100)
        x0, y = batch_of(batch)
        t = torch.rand(batch)
        eps = torch.randn_like(x0)
        tt = t.view(-1, *([1] * (x0.dim() - 1)))
        xt = (1 - tt) * x0 + tt * eps
        loss = F.mse_loss(model(xt, t, y), eps - x0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        decay = min(0.999, (1.0 + k) / (10.0 + k))
        with torch.no_grad():
            params = [p.detach() for p in model.parameters()]
            torch._foreach_mul_(ema, decay)
            torch._foreach_add_(ema, params, alpha=1 - decay)
        state["k"] = k + 1
        return loss

    def train(n):
        acc = None
        for i in range(n):
            loss = step().detach()
            acc = loss if acc is None else acc + loss
            if (i + 1) % log_every == 0 or i + 1 == n:
                acc.item()  # the loss read back, as diffcl's trainer does
                acc = None

    train(warm)
    t0 = time.perf_counter()
    train(steps)
    secs = time.perf_counter() - t0

    # Sampling with the EMA weights.
    with torch.no_grad():
        for p, e in zip(model.parameters(), ema):
            p.copy_(e)
    N, S = (batch, 10) if unet else (10000, 100)
    shape = (N, 1, 28, 28) if unet else (N, 2)
    null = torch.full((N,), K, dtype=torch.long) if unet else None

    def sample(S):
        x = torch.randn(shape)
        for i in range(S):
            t, s = 1 - i / S, 1 - (i + 1) / S
            x = x + (s - t) * model(x, torch.full((N,), t), null)
        return x

    with torch.no_grad():
        sample(1)
        t0 = time.perf_counter()
        sample(S)
        ssecs = time.perf_counter() - t0
    name = "U-Net" if unet else "MLP"
    print("== torch %s %d thread(s): %s, %d parameters, %s, batch %d"
          % (torch.__version__, args.threads, name, P, source, batch))
    print("train   %10.2f steps/s  %10.1f %s/s  (%d steps after %d warm-up, %.2f s)"
          % (steps / secs, steps * batch / secs, "images" if unet else "examples", steps, warm,
             secs))
    print("sample  %10.1f samples/s  %10.1f evaluations/s  (euler %d steps, %d, %.2f s)"
          % (N / ssecs, N * S / ssecs, S, N, ssecs))


main()
