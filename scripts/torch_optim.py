"""PyTorch's optimizers on fixed gradients: the numbers charmlp's hand-written optimizers
(core/src/optim.rs) are checked against in tests/optim.rs.

Parameters p0 [337] (the seven tensors of a 27-symbol, embedding-2, context-1, hidden-8 model,
flattened in charmlp's order: C, W1, b1, gain, bias, W2T, b2) and six gradients grads [6, 337]
(some exactly zero, scales from 1e-4 to 10); for each rule, the learning rate of each step
<rule>_lr [6] and the parameters after each step <rule> [6, 337]:
- sgd:       torch.optim.SGD
- momentum:  torch.optim.SGD(momentum=0.9)
- nesterov:  torch.optim.SGD(momentum=0.9, nesterov=True)
- adamw:     torch.optim.AdamW(betas=(0.9, 0.99), eps=1e-8, weight_decay=0.01), makemore.py's
The learning rate changes between steps (param_groups[0]["lr"]), as a schedule changes it.

Run by hand, not in CI (it needs torch):
    python scripts/torch_optim.py tests/data/torch_optim.safetensors
"""
import platform
import sys

import torch
from safetensors.torch import save_file

out_path = sys.argv[1]
torch.set_num_threads(1)
N, STEPS = 337, 6
g = torch.Generator().manual_seed(2026)
p0 = torch.randn(N, generator=g, dtype=torch.float32)
scales = 10.0 ** torch.randint(-4, 2, (STEPS, N), generator=g).float()
grads = torch.randn(STEPS, N, generator=g, dtype=torch.float32) * scales
grads[:, ::17] = 0.0  # parameters whose gradient is zero: AdamW's ε and decay alone
grads[2, ::5] = 0.0

rules = {
    "sgd": (lambda p, lr: torch.optim.SGD([p], lr=lr), [0.1, 0.1, 0.05, 0.05, 0.01, 0.01]),
    "momentum": (
        lambda p, lr: torch.optim.SGD([p], lr=lr, momentum=0.9),
        [0.1, 0.1, 0.05, 0.05, 0.01, 0.01],
    ),
    "nesterov": (
        lambda p, lr: torch.optim.SGD([p], lr=lr, momentum=0.9, nesterov=True),
        [0.1, 0.1, 0.05, 0.05, 0.01, 0.01],
    ),
    "adamw": (
        lambda p, lr: torch.optim.AdamW(
            [p], lr=lr, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.01
        ),
        [1e-2, 1e-2, 5e-3, 5e-4, 5e-4, 1e-4],
    ),
}
tensors = {"p0": p0, "grads": grads}
for name, (make, lrs) in rules.items():
    p = p0.clone().requires_grad_(True)
    opt = make(p, lrs[0])
    after = []
    for step, lr in enumerate(lrs):
        opt.param_groups[0]["lr"] = lr
        p.grad = grads[step].clone()
        opt.step()
        after.append(p.detach().clone())
    tensors[name] = torch.stack(after)
    tensors[name + "_lr"] = torch.tensor(lrs, dtype=torch.float64)

save_file(
    tensors,
    out_path,
    metadata={
        "torch": torch.__version__,
        "python": platform.python_version(),
        "command": "python scripts/torch_optim.py " + out_path,
    },
)
