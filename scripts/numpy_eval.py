"""A charmlp model's losses computed by NumPy alone: the safetensors file as
safetensors.numpy reads it, the notebook's inference forward (batch norm with the calibrated
bnmean and bnvar), and makemore's split. CI checks that they equal `charmlp eval`'s.

Usage: python scripts/numpy_eval.py MODEL.safetensors WORDS.txt [SEED]
Prints "train L", "val L", "test L" with 7 decimals, as `charmlp eval --digits 7` does.
"""
import random
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

model_path, words_path = sys.argv[1], sys.argv[2]
seed = int(sys.argv[3]) if len(sys.argv) > 3 else 42

t = load_file(model_path)
with safe_open(model_path, "np") as f:
    meta = f.metadata() or {}
# charmlp's alphabet; a file saved from the notebook has makemore's a-z.
alphabet = meta.get("alphabet", "abcdefghijklmnopqrstuvwxyz")
stoi = {ch: i + 1 for i, ch in enumerate(alphabet)}
E = t["C"].shape[1]
T = t["W1"].shape[0] // E

# makemore's words and split: stripped, blanks dropped, shuffled with Python's random.
words = [w.strip() for w in open(words_path, encoding="utf-8-sig").read().splitlines()]
words = [w for w in words if w]
random.seed(seed)
random.shuffle(words)
n1, n2 = int(0.8 * len(words)), int(0.9 * len(words))


def examples(ws):
    X, Y = [], []
    for w in ws:
        context = [0] * T
        for ix in [stoi[ch] for ch in w] + [0]:
            X.append(context)
            Y.append(ix)
            context = context[1:] + [ix]
    return np.array(X, dtype=np.int64).reshape(-1, T), np.array(Y, dtype=np.int64)


def loss(X, Y):
    """The notebook's inference forward in float32, then the mean cross-entropy."""
    embcat = t["C"][X].reshape(X.shape[0], -1)
    hprebn = embcat @ t["W1"] + t["b1"]
    bnraw = (hprebn - t["bnmean"]) * (t["bnvar"] + np.float32(1e-5)) ** np.float32(-0.5)
    h = np.tanh(t["bngain"] * bnraw + t["bnbias"])
    logits = (h @ t["W2"] + t["b2"]).astype(np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    logprobs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -logprobs[np.arange(len(Y)), Y].mean()


for name, ws in (("train", words[:n1]), ("val", words[n1:n2]), ("test", words[n2:])):
    print(f"{name} {loss(*examples(ws)):.7f}")
