"""L-BFGS on a fixed subset of train examples, from a saved model; logs val W1."""
import argparse
import copy
import json
import os
import time

import numpy as np
import torch

import fastvp
from fastvp.surrogate.train import nll

ap = argparse.ArgumentParser()
ap.add_argument("--data", required=True)  # the dataset folder, e.g. data/paper-seed0
ap.add_argument("--start", required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--n", type=int, default=2048)
ap.add_argument("--K", type=int, default=5)
ap.add_argument("--iters", type=int, default=200)
ap.add_argument("--history", type=int, default=20)
ap.add_argument("--dtype", default="float32")
ap.add_argument("--chunk", type=int, default=512)
ap.add_argument("--freeze-a", action="store_true")
a = ap.parse_args()
torch.set_num_threads(1)
dt = getattr(torch, a.dtype)
os.makedirs(a.out, exist_ok=True)
ds = fastvp.load_dataset(a.data)
tr, va = ds.split("train"), ds.split("val")
T, S = ds.config.final_time, ds.config.steps


def t(x, n):
    return torch.as_tensor(np.asarray(x)[:n], dtype=dt)


qT, pT, cond = t(tr.q(S), a.n), t(tr.p(S), a.n), t(tr.cond, a.n)
NV = 512
vq0, vp0, vqT, vpT = t(va.q(0), NV), t(va.p(0), NV), t(va.q(S), NV), t(va.p(S), NV)
idq = fastvp.wasserstein_1d(vq0, vqT).mean().item()
idp = fastvp.wasserstein_1d(vp0, vpT).mean().item()
model = fastvp.Surrogate.load(a.start).to(dtype=dt)
model.steps = a.K
model.V_net.rho[2].bias.requires_grad_(False)
if a.freeze_a:
    model.a.requires_grad_(False)
params = [p for p in model.parameters() if p.requires_grad]
opt = torch.optim.LBFGS(params, lr=1, max_iter=a.iters, history_size=a.history, line_search_fn="strong_wolfe")
mu = torch.full((a.n,), 64.0, dtype=dt)
z = torch.zeros(a.n, dtype=dt)
log = open(os.path.join(a.out, "log.jsonl"), "a")
count = [0]
t0 = time.perf_counter()


def ev():
    m = copy.deepcopy(model).eval()
    with torch.no_grad():
        q, p = m.sample(T, (vq0, vp0), steps=25)
    return (fastvp.wasserstein_1d(q, vqT).mean().item() / idq * 100,
            fastvp.wasserstein_1d(p, vpT).mean().item() / idp * 100)


def closure():
    opt.zero_grad()
    total = 0.0
    for lo in range(0, a.n, a.chunk):
        sl = slice(lo, lo + a.chunk)
        l = nll(model, qT[sl], pT[sl], mu[sl], cond[sl, 0], z[sl], cond[sl, 1], T, "compiled").sum() / a.n
        l.backward()
        total += l.item()
    count[0] += 1
    if count[0] % 10 == 1:
        wq, wp = ev()
        r = dict(eval=count[0], loss=total, w1q=wq, w1p=wp, a=model.a.item(), t=time.perf_counter() - t0)
        log.write(json.dumps(r) + "\n")
        log.flush()
        print(json.dumps(r), flush=True)
    return torch.tensor(total)


opt.step(closure)
wq, wp = ev()
r = dict(eval=count[0], final=True, w1q=wq, w1p=wp, a=model.a.item(), t=time.perf_counter() - t0)
log.write(json.dumps(r) + "\n")
print(json.dumps(r), flush=True)
model.save(os.path.join(a.out, "model"))
