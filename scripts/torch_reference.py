"""The PyTorch reference state that charmlp's forward and both backward paths are checked against
(llm.c's test_gpt2 practice): makemore part 4's notebook, "backprop ninja", cell by cell.

Writes, as one safetensors file (float32; the batches int64):
- the parameters C, W1, b1, W2, b2, bngain, bnbias as the notebook initialises them
  (torch.Generator().manual_seed(2147483647)), for names.txt split as makemore splits it;
- one batch Xb [32, 3], Yb [32] drawn as the notebook draws it;
- every intermediate of the notebook's forward (emb ... logprobs, loss) under its name;
- every gradient autograd gives them and the parameters, as d<name> (dlogprobs ... dC);
- ten more batches steps_Xb [10, 32, 3], steps_Yb [10, 32], and steps_loss [10]: the loss of
  each of ten SGD steps (lr 0.1) from these parameters, each loss before its update.
Metadata: the PyTorch and Python versions and the command.

Run by hand, not in CI (it needs torch):
    python scripts/torch_reference.py ../shared/data/names.txt data/torch_reference.safetensors
"""
import random
import sys
import platform

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

names_path, out_path = sys.argv[1], sys.argv[2]
torch.set_num_threads(1)

# makemore's data and split.
words = open(names_path, "r").read().splitlines()
chars = sorted(list(set("".join(words))))
stoi = {s: i + 1 for i, s in enumerate(chars)}
stoi["."] = 0
vocab_size = len(stoi)
block_size = 3


def build_dataset(words):
    X, Y = [], []
    for w in words:
        context = [0] * block_size
        for ch in w + ".":
            ix = stoi[ch]
            X.append(context)
            Y.append(ix)
            context = context[1:] + [ix]
    return torch.tensor(X), torch.tensor(Y)


random.seed(42)
random.shuffle(words)
n1 = int(0.8 * len(words))
Xtr, Ytr = build_dataset(words[:n1])

# The notebook's initialisation, in its order.
n_embd, n_hidden = 10, 64
g = torch.Generator().manual_seed(2147483647)
C = torch.randn((vocab_size, n_embd), generator=g)
W1 = torch.randn((n_embd * block_size, n_hidden), generator=g) * (5 / 3) / ((n_embd * block_size) ** 0.5)
b1 = torch.randn(n_hidden, generator=g) * 0.1
W2 = torch.randn((n_hidden, vocab_size), generator=g) * 0.1
b2 = torch.randn(vocab_size, generator=g) * 0.1
bngain = torch.randn((1, n_hidden), generator=g) * 0.1 + 1.0
bnbias = torch.randn((1, n_hidden), generator=g) * 0.1
parameters = [C, W1, b1, W2, b2, bngain, bnbias]
for p in parameters:
    p.requires_grad = True

batch_size = 32
n = batch_size
ix = torch.randint(0, Xtr.shape[0], (batch_size,), generator=g)
Xb, Yb = Xtr[ix], Ytr[ix]
state = {
    "C": C, "W1": W1, "b1": b1, "W2": W2, "b2": b2, "bngain": bngain, "bnbias": bnbias,
}
params0 = {k: v.detach().clone() for k, v in state.items()}

# The notebook's forward, chunked into the steps its backward goes through.
emb = C[Xb]
embcat = emb.view(emb.shape[0], -1)
hprebn = embcat @ W1 + b1
bnmeani = 1 / n * hprebn.sum(0, keepdim=True)
bndiff = hprebn - bnmeani
bndiff2 = bndiff**2
bnvar = 1 / (n - 1) * (bndiff2).sum(0, keepdim=True)
bnvar_inv = (bnvar + 1e-5) ** -0.5
bnraw = bndiff * bnvar_inv
hpreact = bngain * bnraw + bnbias
h = torch.tanh(hpreact)
logits = h @ W2 + b2
logit_maxes = logits.max(1, keepdim=True).values
norm_logits = logits - logit_maxes
counts = norm_logits.exp()
counts_sum = counts.sum(1, keepdims=True)
counts_sum_inv = counts_sum**-1
probs = counts * counts_sum_inv
logprobs = probs.log()
loss = -logprobs[range(n), Yb].mean()

intermediates = {
    "emb": emb, "embcat": embcat, "hprebn": hprebn, "bnmeani": bnmeani, "bndiff": bndiff,
    "bndiff2": bndiff2, "bnvar": bnvar, "bnvar_inv": bnvar_inv, "bnraw": bnraw,
    "hpreact": hpreact, "h": h, "logits": logits, "logit_maxes": logit_maxes,
    "norm_logits": norm_logits, "counts": counts, "counts_sum": counts_sum,
    "counts_sum_inv": counts_sum_inv, "probs": probs, "logprobs": logprobs, "loss": loss,
}
for t in intermediates.values():
    t.retain_grad()
loss.backward()

out = {k: v.contiguous() for k, v in params0.items()}
out["Xb"], out["Yb"] = Xb.contiguous(), Yb.contiguous()
for name, t in intermediates.items():
    out[name] = t.detach().clone().contiguous()
    if name != "loss":
        out["d" + name] = t.grad.detach().clone().contiguous()
for name, p in state.items():
    out["d" + name] = p.grad.detach().clone().contiguous()

# Ten SGD steps from the initial parameters, as the notebook's training loop takes them.
with torch.no_grad():
    for k, p in state.items():
        p.copy_(params0[k])
steps_X, steps_Y, steps_loss = [], [], []
for step in range(10):
    ix = torch.randint(0, Xtr.shape[0], (batch_size,), generator=g)
    Xs, Ys = Xtr[ix], Ytr[ix]
    emb = C[Xs]
    hpre = emb.view(emb.shape[0], -1) @ W1 + b1
    bnmean = hpre.mean(0, keepdim=True)
    bnv = hpre.var(0, keepdim=True, unbiased=True)
    hpre = bngain * (hpre - bnmean) * (bnv + 1e-5) ** -0.5 + bnbias
    lo = F.cross_entropy(torch.tanh(hpre) @ W2 + b2, Ys)
    for p in parameters:
        p.grad = None
    lo.backward()
    with torch.no_grad():
        for p in parameters:
            p += -0.1 * p.grad
    steps_X.append(Xs)
    steps_Y.append(Ys)
    steps_loss.append(lo.item())
out["steps_Xb"] = torch.stack(steps_X).contiguous()
out["steps_Yb"] = torch.stack(steps_Y).contiguous()
out["steps_loss"] = torch.tensor(steps_loss, dtype=torch.float32)

meta = {
    "torch": torch.__version__,
    "python": platform.python_version(),
    "made_by": "python scripts/torch_reference.py NAMES_TXT OUT (makemore part 4, backprop ninja)",
}
save_file(out, out_path, metadata=meta)
print(f"{out_path}: {len(out)} tensors; torch {torch.__version__}; loss {loss.item():.6f}; "
      f"ten steps {steps_loss[0]:.6f} .. {steps_loss[-1]:.6f}")
