"""Likelihood-training probes: random start, (Cond, t=T) pairs only. Logs JSON lines."""
import argparse
import copy
import json
import math
import os
import time

import numpy as np
import torch

import fastvp
from fastvp.problems.paper import PaperInitial
from fastvp.surrogate.train import nll

ap = argparse.ArgumentParser()
ap.add_argument("--data", required=True)  # the dataset folder, e.g. data/paper-seed0
ap.add_argument("--out", required=True)
ap.add_argument("--lr", type=float, default=3e-4)
ap.add_argument("--warmup", type=int, default=0)
ap.add_argument("--total", type=int, default=3000)       # optimiser steps for the cosine
ap.add_argument("--min-lr", type=float, default=0.0)     # ratio
ap.add_argument("--schedule", default="cosine")
ap.add_argument("--batch", type=int, default=128)
ap.add_argument("--K", default="25")                     # "5:2000,25" = K 5 for 2000 steps then 25
ap.add_argument("--clip", type=float, default=0.0)
ap.add_argument("--init", default="default")             # default | zero-out | kinks:R
ap.add_argument("--out-scale", type=float, default=1.0)
ap.add_argument("--budget", type=float, default=1500)    # seconds
ap.add_argument("--eval-every", type=float, default=240)
ap.add_argument("--eval-steps", type=int, default=0)   # evaluate every this many steps instead
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--dtype", default="float32")
ap.add_argument("--wd", type=float, default=0.0)
ap.add_argument("--beta2", type=float, default=0.999)
ap.add_argument("--lr-a", type=float, default=None)
ap.add_argument("--lr-rho0", type=float, default=1.0)
ap.add_argument("--lr-hidden", type=float, default=None)  # factor for all fan-in-H weights: W2, W3, w4
ap.add_argument("--lr-pool", type=float, default=1.0)  # lr factor of phi.2 (W2, b2): s = W2 S + N b2 is O(N)
ap.add_argument("--lr-phi0", type=float, default=1.0)   # lr factor of phi.0 (w1, b1)
ap.add_argument("--start", default=None)  # continue from a saved model
# data-dependent normalisation of s and r (ActNorm-style)
ap.add_argument("--ddinit", action="store_true")
# a fresh train set of the same size, simulated by PIC, at each pass over the data
ap.add_argument("--fresh", action="store_true")
a = ap.parse_args()
torch.set_num_threads(a.threads)
dt = getattr(torch, a.dtype)
os.makedirs(a.out, exist_ok=True)
ds = fastvp.load_dataset(a.data)
tr, va = ds.split("train"), ds.split("val")
T = ds.config.final_time
S = ds.config.steps


def tens(x):
    return torch.as_tensor(np.asarray(x), dtype=dt)


qT, pT, cond = tens(tr.q(S)), tens(tr.p(S)), tens(tr.cond)
n = qT.shape[0]
NV = 512
vq0, vp0 = tens(va.q(0)[:NV]), tens(va.p(0)[:NV])
vqT, vpT, vcond = tens(va.q(S)[:NV]), tens(va.p(S)[:NV]), tens(va.cond[:NV])
idw_q = fastvp.wasserstein_1d(vq0, vqT).mean().item()
idw_p = fastvp.wasserstein_1d(vp0, vpT).mean().item()
mu_q = PaperInitial.of(ds.config).centre(ds.config)
mu_p = PaperInitial.of(ds.config).mu_p

torch.manual_seed(a.seed)
model = (fastvp.Surrogate.load(a.start) if a.start else fastvp.Surrogate(ds.config)).to(dtype=dt)
w1, b1, W2, b2, W3, b3, w4 = model.V_net.weights()
with torch.no_grad():
    if a.init.startswith("logkinks"):
        # kinks uniform in [-R, R], slopes log-uniform in [lo, hi], random sign
        _, R, lo, hi = a.init.split(":")
        R, lo, hi = float(R), float(lo), float(hi)
        H = w1.shape[0]
        c = (torch.rand(H, dtype=dt) * 2 - 1) * R
        mag = torch.exp(torch.empty(H, dtype=dt).uniform_(np.log(lo), np.log(hi)))
        slope = torch.where(torch.rand(H) < 0.5, -1.0, 1.0).to(dt) * mag
        w1.copy_(slope)
        b1.copy_(-slope * c)
    elif a.init.startswith("grid"):
        # kinks evenly spaced over the span of the train split's centred positions (t = 0
        # and T), every ramp of one slope: the field-energy model's first layer, unfitted
        _, R, sl = a.init.split(":")
        if R == "span":
            q0c = tens(tr.q(0))
            q0c = q0c - q0c.mean(1, keepdim=True)
            qTc = qT - qT.mean(1, keepdim=True)
            R = max(q0c.abs().max().item(), qTc.abs().max().item())
        R = float(R)
        H = w1.shape[0]
        c = torch.linspace(-R, R, H, dtype=dt)
        w1.copy_(torch.full_like(w1, float(sl)))
        b1.copy_(-float(sl) * c)
        # sum_i softplus(slope (y_i - c)) reaches about N slope 2R: scale phi's second layer
        # by that bound (N, the slope and the span only), so that s starts O(1)
        model.V_net.phi[2].weight.div_(qT.shape[1] * float(sl) * 2 * R)
        print("grid init: R", R, flush=True)
    elif a.init.startswith("kinks"):
        R = float(a.init.split(":")[1])
        H = w1.shape[0]
        c = (torch.rand(H, dtype=dt) * 2 - 1) * R
        mag = float(a.init.split(":")[2] if a.init.count(":") > 1 else 1.0)
        slope = torch.where(torch.rand(H) < 0.5, -1.0, 1.0).to(dt) * mag
        w1.copy_(slope)
        b1.copy_(-slope * c)
    if a.out_scale != 1.0:
        model.V_net.rho[2].weight.mul_(a.out_scale)
if a.ddinit:
    with torch.no_grad():
        import torch.nn.functional as F
        V = model.V_net
        g = torch.Generator().manual_seed(a.seed + 1)
        pick = torch.randperm(n, generator=g)[:512]
        # states the flow passes through: final snapshots and draws from the initial Gaussians
        z = torch.randn(256, qT.shape[1], generator=g, dtype=dt)
        q_init = mu_q + cond[pick[:256], :1] * z
        states = torch.cat([qT[pick[:256]], q_init])
        y = states - states.mean(dim=1, keepdim=True)
        S = F.softplus(y[:, :, None] * V.phi[0].weight[:, 0] + V.phi[0].bias).sum(dim=1)
        s = S @ V.phi[2].weight.T + states.shape[1] * V.phi[2].bias
        m, sd = s.mean(0), s.std(0) + 1e-6
        V.phi[2].weight.div_(sd[:, None])
        V.phi[2].bias.sub_(m / states.shape[1]).div_(sd)
        s = S @ V.phi[2].weight.T + states.shape[1] * V.phi[2].bias
        r = s @ V.rho[0].weight.T + V.rho[0].bias
        m, sd = r.mean(0), r.std(0) + 1e-6
        V.rho[0].weight.div_(sd[:, None])
        V.rho[0].bias.sub_(m).div_(sd)
        r_std = float((s @ V.rho[0].weight.T + V.rho[0].bias).std(0).mean())
        print("ddinit: s std", float(s.std(0).mean()), "r std", r_std, flush=True)
model.V_net.rho[2].bias.requires_grad_(False)
params = [p for p in model.parameters() if p.requires_grad]
pool = [model.V_net.phi[2].weight, model.V_net.phi[2].bias]
rho0 = [model.V_net.rho[0].weight, model.V_net.rho[0].bias]
rest = [p for p in params if all(p is not x for x in pool + rho0)]
phi0 = [model.V_net.phi[0].weight, model.V_net.phi[0].bias]
rest = [p for p in rest if all(p is not x for x in phi0)]
groups = [{"params": pool, "lr": a.lr * a.lr_pool}, {"params": rho0, "lr": a.lr * a.lr_rho0},
          {"params": phi0, "lr": a.lr * a.lr_phi0}, {"params": rest}]
if a.lr_hidden is not None:
    V = model.V_net
    hid = [V.phi[2].weight, V.rho[0].weight, V.rho[2].weight]
    groups = [{"params": hid, "lr": a.lr * a.lr_hidden},
              {"params": [p for p in params if all(p is not x for x in hid)]}]
if a.lr_a is not None:
    groups = [{"params": pool, "lr": a.lr * a.lr_pool}, {"params": [model.a], "lr": a.lr_a},
              {"params": phi0, "lr": a.lr * a.lr_phi0}, {"params": [p for p in rest if p is not model.a]}]
opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, a.beta2), weight_decay=a.wd)
base = [g["lr"] for g in opt.param_groups]
Ks = []
for part in a.K.split(","):
    k, _, upto = part.partition(":")
    Ks.append((int(k), int(upto) if upto else 10**9))


def K_at(step):
    for k, upto in Ks:
        if step < upto:
            return k
    return Ks[-1][0]


def lr_at(step):
    if step < a.warmup:
        return (step + 1) / a.warmup
    if a.schedule == "constant":
        return 1.0
    x = min(1.0, (step - a.warmup) / max(1, a.total - a.warmup))
    return a.min_lr + (1 - a.min_lr) * 0.5 * (1 + math.cos(math.pi * x))


def evaluate():
    m = copy.deepcopy(model).eval()
    with torch.no_grad():
        out = {}
        for K in sorted({25, m.steps}):
            q, p = m.sample(T, (vq0, vp0), steps=K)
            out[f"w1q_{K}"] = fastvp.wasserstein_1d(q, vqT).mean().item() / idw_q * 100
            out[f"w1p_{K}"] = fastvp.wasserstein_1d(p, vpT).mean().item() / idw_p * 100
        m.steps = 25
        v = nll(m, vqT[:256], vpT[:256], torch.full((256,), mu_q, dtype=dt), vcond[:256, 0],
                torch.full((256,), mu_p, dtype=dt), vcond[:256, 1], T).mean().item()
        out["val_nll"] = v
    return out


log = open(os.path.join(a.out, "log.jsonl"), "a")
log.write(json.dumps({"args": vars(a)}) + "\n")
g = torch.Generator().manual_seed(a.seed)
step, t_train, last_eval, losses = 0, 0.0, -1e9, []
mq = torch.full((a.batch,), mu_q, dtype=dt)
mp = torch.full((a.batch,), mu_p, dtype=dt)
order = torch.randperm(n, generator=g)
pos = 0
while t_train < a.budget:
    due = (step % a.eval_steps == 0) if a.eval_steps else (t_train - last_eval >= a.eval_every)
    if due:
        r = evaluate()
        r.update(step=step, t=t_train, a=model.a.item(),
                 loss=float(np.mean(losses[-50:])) if losses else None, K=model.steps)
        log.write(json.dumps(r) + "\n")
        log.flush()
        print(json.dumps(r), flush=True)
        last_eval = t_train
    t0 = time.perf_counter()
    if pos + a.batch > n:
        if a.fresh:
            fresh = fastvp.initial_conditions(n, ds.config, seed=1000 + step // max(1, n // a.batch))
            final = fastvp.simulate(fresh, ds.config)
            qT, pT = final.q[-1].to(dt), final.p[-1].to(dt)
            cond = torch.stack([fresh.sigma_q, fresh.sigma_p], dim=1).to(dt)
        order = torch.randperm(n, generator=g)
        pos = 0
    idx = order[pos : pos + a.batch]
    pos += a.batch
    model.steps = K_at(step)
    f = lr_at(step)
    for gr, b0 in zip(opt.param_groups, base):
        gr["lr"] = b0 * f
    opt.zero_grad(set_to_none=True)
    loss = nll(model, qT[idx], pT[idx], mq, cond[idx, 0], mp, cond[idx, 1], T, "compiled").mean()
    loss.backward()
    if a.clip > 0:
        torch.nn.utils.clip_grad_norm_(params, a.clip)
    if torch.isfinite(loss):
        opt.step()
    losses.append(loss.item())
    step += 1
    t_train += time.perf_counter() - t0
r = evaluate()
r.update(step=step, t=t_train, a=model.a.item(), loss=float(np.mean(losses[-50:])), K=model.steps,
         final=True)
log.write(json.dumps(r) + "\n")
log.flush()
print(json.dumps(r), flush=True)
model.save(os.path.join(a.out, "model"))
