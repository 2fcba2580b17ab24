//! The derivation, step by step: makemore part 4's forward broken into its smallest pieces, and
//! a backward with one named gradient per intermediate, in the order the chain rule visits them.
//! Each block is the PyTorch line it implements, written as a loop.
//!
//! This path is slow and large on purpose. It is the reference the fused path in `layers.rs` is
//! tested against, and its intermediates are public so that tests can check them one by one.

// Index loops on purpose: b, t, e, j, k are the subscripts of the formulas.
#![allow(clippy::needless_range_loop)]

use crate::batch::Batch;
use crate::model::BN_EPS;
use crate::params::Params;
use crate::shape::BatchCheck;

/// Every intermediate of the forward and of the backward.
///
/// For models whose V symbols are all present: the notebook's dprobs = dlogprobs / probs is
/// 0 / 0 for an absent symbol's probability of 0 (the fast path needs no such division).
///
/// Size: 4·(12·B·H + 10·B·V + 4·B·T·E + 6·H + 6·B + 1) bytes: 150,532 for the default model
/// (27→10→30→64→27, batch 32). A host-side structure; firmware uses `TrainState`.
#[derive(Clone, Debug)]
pub struct ReferenceState<
    const V: usize,
    const E: usize,
    const T: usize,
    const H: usize,
    const B: usize,
> {
    // Forward.
    pub emb: [[[f32; E]; T]; B],
    /// emb viewed as [B][T·E]: the same numbers, kept because the derivation names it.
    pub embcat: [[[f32; E]; T]; B],
    pub hprebn: [[f32; H]; B],
    pub bnmeani: [f32; H],
    pub bndiff: [[f32; H]; B],
    pub bndiff2: [[f32; H]; B],
    pub bnvar: [f32; H],
    pub bnvar_inv: [f32; H],
    pub bnraw: [[f32; H]; B],
    pub hpreact: [[f32; H]; B],
    pub h: [[f32; H]; B],
    pub logits: [[f32; V]; B],
    pub logit_maxes: [f32; B],
    pub norm_logits: [[f32; V]; B],
    pub counts: [[f32; V]; B],
    pub counts_sum: [f32; B],
    pub counts_sum_inv: [f32; B],
    pub probs: [[f32; V]; B],
    pub logprobs: [[f32; V]; B],
    pub loss: f32,
    // Backward.
    pub dlogprobs: [[f32; V]; B],
    pub dprobs: [[f32; V]; B],
    pub dcounts_sum_inv: [f32; B],
    pub dcounts_sum: [f32; B],
    pub dcounts: [[f32; V]; B],
    pub dnorm_logits: [[f32; V]; B],
    pub dlogit_maxes: [f32; B],
    pub dlogits: [[f32; V]; B],
    pub dh: [[f32; H]; B],
    pub dhpreact: [[f32; H]; B],
    pub dbnraw: [[f32; H]; B],
    pub dbnvar_inv: [f32; H],
    pub dbndiff: [[f32; H]; B],
    pub dbnvar: [f32; H],
    pub dbndiff2: [[f32; H]; B],
    pub dbnmeani: [f32; H],
    pub dhprebn: [[f32; H]; B],
    pub dembcat: [[[f32; E]; T]; B],
    pub demb: [[[f32; E]; T]; B],
}

impl<const V: usize, const E: usize, const T: usize, const H: usize, const B: usize>
    ReferenceState<V, E, T, H, B>
{
    pub const fn new() -> Self {
        let () = BatchCheck::<B>::OK;
        ReferenceState {
            emb: [[[0.0; E]; T]; B],
            embcat: [[[0.0; E]; T]; B],
            hprebn: [[0.0; H]; B],
            bnmeani: [0.0; H],
            bndiff: [[0.0; H]; B],
            bndiff2: [[0.0; H]; B],
            bnvar: [0.0; H],
            bnvar_inv: [0.0; H],
            bnraw: [[0.0; H]; B],
            hpreact: [[0.0; H]; B],
            h: [[0.0; H]; B],
            logits: [[0.0; V]; B],
            logit_maxes: [0.0; B],
            norm_logits: [[0.0; V]; B],
            counts: [[0.0; V]; B],
            counts_sum: [0.0; B],
            counts_sum_inv: [0.0; B],
            probs: [[0.0; V]; B],
            logprobs: [[0.0; V]; B],
            loss: 0.0,
            dlogprobs: [[0.0; V]; B],
            dprobs: [[0.0; V]; B],
            dcounts_sum_inv: [0.0; B],
            dcounts_sum: [0.0; B],
            dcounts: [[0.0; V]; B],
            dnorm_logits: [[0.0; V]; B],
            dlogit_maxes: [0.0; B],
            dlogits: [[0.0; V]; B],
            dh: [[0.0; H]; B],
            dhpreact: [[0.0; H]; B],
            dbnraw: [[0.0; H]; B],
            dbnvar_inv: [0.0; H],
            dbndiff: [[0.0; H]; B],
            dbnvar: [0.0; H],
            dbndiff2: [[0.0; H]; B],
            dbnmeani: [0.0; H],
            dhprebn: [[0.0; H]; B],
            dembcat: [[[0.0; E]; T]; B],
            demb: [[[0.0; E]; T]; B],
        }
    }

    /// The forward in training mode, one intermediate at a time. Returns the loss.
    pub fn forward(&mut self, p: &Params<V, E, T, H>, batch: &Batch<T, B>) -> f32 {
        let n = B as f32;
        // emb = C[Xb]; embcat = emb.view(B, -1)
        for b in 0..B {
            for t in 0..T {
                self.emb[b][t] = p.c[batch.x[b][t].index()];
            }
        }
        self.embcat = self.emb;
        // hprebn = embcat @ W1 + b1
        for b in 0..B {
            for j in 0..H {
                let mut sum = p.b1[j];
                for t in 0..T {
                    for e in 0..E {
                        sum += self.embcat[b][t][e] * p.w1[t][e][j];
                    }
                }
                self.hprebn[b][j] = sum;
            }
        }
        // bnmeani = 1/n * hprebn.sum(0, keepdim=True)
        for j in 0..H {
            self.bnmeani[j] = (0..B).map(|b| self.hprebn[b][j]).sum::<f32>() / n;
        }
        // bndiff = hprebn - bnmeani; bndiff2 = bndiff**2
        for b in 0..B {
            for j in 0..H {
                self.bndiff[b][j] = self.hprebn[b][j] - self.bnmeani[j];
                self.bndiff2[b][j] = self.bndiff[b][j] * self.bndiff[b][j];
            }
        }
        // bnvar = 1/(n-1) * bndiff2.sum(0, keepdim=True)   (Bessel's correction)
        for j in 0..H {
            self.bnvar[j] = (0..B).map(|b| self.bndiff2[b][j]).sum::<f32>() / (n - 1.0);
        }
        // bnvar_inv = (bnvar + 1e-5)**-0.5
        for j in 0..H {
            self.bnvar_inv[j] = 1.0 / libm::sqrtf(self.bnvar[j] + BN_EPS);
        }
        // bnraw = bndiff * bnvar_inv; hpreact = bngain * bnraw + bnbias; h = tanh(hpreact)
        for b in 0..B {
            for j in 0..H {
                self.bnraw[b][j] = self.bndiff[b][j] * self.bnvar_inv[j];
                self.hpreact[b][j] = p.gain[j] * self.bnraw[b][j] + p.bias[j];
                self.h[b][j] = libm::tanhf(self.hpreact[b][j]);
            }
        }
        // logits = h @ W2 + b2
        for b in 0..B {
            for k in 0..V {
                let mut sum = p.b2[k];
                for j in 0..H {
                    sum += self.h[b][j] * p.w2t[k][j];
                }
                self.logits[b][k] = sum;
            }
        }
        // logit_maxes = logits.max(1, keepdim=True).values; norm_logits = logits - logit_maxes
        for b in 0..B {
            self.logit_maxes[b] = self.logits[b]
                .iter()
                .fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            for k in 0..V {
                self.norm_logits[b][k] = self.logits[b][k] - self.logit_maxes[b];
            }
        }
        // counts = norm_logits.exp(); counts_sum = counts.sum(1); counts_sum_inv = counts_sum**-1
        for b in 0..B {
            for k in 0..V {
                self.counts[b][k] = libm::expf(self.norm_logits[b][k]);
            }
            self.counts_sum[b] = self.counts[b].iter().sum();
            self.counts_sum_inv[b] = 1.0 / self.counts_sum[b];
        }
        // probs = counts * counts_sum_inv; logprobs = probs.log()
        for b in 0..B {
            for k in 0..V {
                self.probs[b][k] = self.counts[b][k] * self.counts_sum_inv[b];
                self.logprobs[b][k] = libm::logf(self.probs[b][k]);
            }
        }
        // loss = -logprobs[range(n), Yb].mean()
        self.loss = -(0..B)
            .map(|b| self.logprobs[b][batch.y[b].index()])
            .sum::<f32>()
            / n;
        self.loss
    }

    /// The backward, one gradient per intermediate, after [`ReferenceState::forward`] on the
    /// same parameters and batch. Writes the seven parameter gradients into `grads`.
    pub fn backward(
        &mut self,
        p: &Params<V, E, T, H>,
        batch: &Batch<T, B>,
        grads: &mut Params<V, E, T, H>,
    ) {
        let n = B as f32;
        grads.fill_zero();
        // dlogprobs: only the targets' log-probabilities enter the mean, each with weight -1/n.
        self.dlogprobs = [[0.0; V]; B];
        for b in 0..B {
            self.dlogprobs[b][batch.y[b].index()] = -1.0 / n;
        }
        // dprobs = (1 / probs) * dlogprobs
        for b in 0..B {
            for k in 0..V {
                self.dprobs[b][k] = self.dlogprobs[b][k] / self.probs[b][k];
            }
        }
        // dcounts_sum_inv = (counts * dprobs).sum(1)
        for b in 0..B {
            self.dcounts_sum_inv[b] = (0..V).map(|k| self.counts[b][k] * self.dprobs[b][k]).sum();
        }
        // dcounts = counts_sum_inv * dprobs   (first use of counts: probs = counts * ...)
        for b in 0..B {
            for k in 0..V {
                self.dcounts[b][k] = self.counts_sum_inv[b] * self.dprobs[b][k];
            }
        }
        // dcounts_sum = -counts_sum**-2 * dcounts_sum_inv
        for b in 0..B {
            self.dcounts_sum[b] =
                -self.dcounts_sum_inv[b] / (self.counts_sum[b] * self.counts_sum[b]);
        }
        // dcounts += ones_like(counts) * dcounts_sum   (second use: counts_sum = counts.sum(1))
        for b in 0..B {
            for k in 0..V {
                self.dcounts[b][k] += self.dcounts_sum[b];
            }
        }
        // dnorm_logits = counts * dcounts   (d exp(x) = exp(x))
        for b in 0..B {
            for k in 0..V {
                self.dnorm_logits[b][k] = self.counts[b][k] * self.dcounts[b][k];
            }
        }
        // dlogit_maxes = -dnorm_logits.sum(1)   (≈ 0: the max only stabilises the softmax)
        for b in 0..B {
            self.dlogit_maxes[b] = -self.dnorm_logits[b].iter().sum::<f32>();
        }
        // dlogits = dnorm_logits + one_hot(logits.max(1).indices) * dlogit_maxes
        for b in 0..B {
            self.dlogits[b] = self.dnorm_logits[b];
            let argmax = first_argmax(&self.logits[b]);
            self.dlogits[b][argmax] += self.dlogit_maxes[b];
        }
        // dh = dlogits @ W2.T
        for b in 0..B {
            for j in 0..H {
                self.dh[b][j] = (0..V).map(|k| self.dlogits[b][k] * p.w2t[k][j]).sum();
            }
        }
        // dW2 = h.T @ dlogits   (stored transposed: grads.w2t[k][j] = dW2[j][k])
        for j in 0..H {
            for k in 0..V {
                grads.w2t[k][j] = (0..B).map(|b| self.h[b][j] * self.dlogits[b][k]).sum();
            }
        }
        // db2 = dlogits.sum(0)
        for k in 0..V {
            grads.b2[k] = (0..B).map(|b| self.dlogits[b][k]).sum();
        }
        // dhpreact = (1 - h**2) * dh
        for b in 0..B {
            for j in 0..H {
                self.dhpreact[b][j] = (1.0 - self.h[b][j] * self.h[b][j]) * self.dh[b][j];
            }
        }
        // dbngain = (bnraw * dhpreact).sum(0); dbnbias = dhpreact.sum(0)
        for j in 0..H {
            grads.gain[j] = (0..B).map(|b| self.bnraw[b][j] * self.dhpreact[b][j]).sum();
            grads.bias[j] = (0..B).map(|b| self.dhpreact[b][j]).sum();
        }
        // dbnraw = bngain * dhpreact
        for b in 0..B {
            for j in 0..H {
                self.dbnraw[b][j] = p.gain[j] * self.dhpreact[b][j];
            }
        }
        // dbnvar_inv = (bndiff * dbnraw).sum(0)
        for j in 0..H {
            self.dbnvar_inv[j] = (0..B).map(|b| self.bndiff[b][j] * self.dbnraw[b][j]).sum();
        }
        // dbndiff = bnvar_inv * dbnraw   (first use of bndiff: bnraw = bndiff * bnvar_inv)
        for b in 0..B {
            for j in 0..H {
                self.dbndiff[b][j] = self.bnvar_inv[j] * self.dbnraw[b][j];
            }
        }
        // dbnvar = -0.5 * (bnvar + 1e-5)**-1.5 * dbnvar_inv
        for j in 0..H {
            self.dbnvar[j] = -0.5 * libm::powf(self.bnvar[j] + BN_EPS, -1.5) * self.dbnvar_inv[j];
        }
        // dbndiff2 = 1/(n-1) * ones_like(bndiff2) * dbnvar
        for b in 0..B {
            for j in 0..H {
                self.dbndiff2[b][j] = self.dbnvar[j] / (n - 1.0);
            }
        }
        // dbndiff += 2 * bndiff * dbndiff2   (second use: bndiff2 = bndiff**2)
        for b in 0..B {
            for j in 0..H {
                self.dbndiff[b][j] += 2.0 * self.bndiff[b][j] * self.dbndiff2[b][j];
            }
        }
        // dbnmeani = -dbndiff.sum(0)
        for j in 0..H {
            self.dbnmeani[j] = -(0..B).map(|b| self.dbndiff[b][j]).sum::<f32>();
        }
        // dhprebn = dbndiff + 1/n * ones_like(hprebn) * dbnmeani
        for b in 0..B {
            for j in 0..H {
                self.dhprebn[b][j] = self.dbndiff[b][j] + self.dbnmeani[j] / n;
            }
        }
        // dembcat = dhprebn @ W1.T
        for b in 0..B {
            for t in 0..T {
                for e in 0..E {
                    self.dembcat[b][t][e] =
                        (0..H).map(|j| self.dhprebn[b][j] * p.w1[t][e][j]).sum();
                }
            }
        }
        // dW1 = embcat.T @ dhprebn
        for t in 0..T {
            for e in 0..E {
                for j in 0..H {
                    grads.w1[t][e][j] = (0..B)
                        .map(|b| self.embcat[b][t][e] * self.dhprebn[b][j])
                        .sum();
                }
            }
        }
        // db1 = dhprebn.sum(0)
        for j in 0..H {
            grads.b1[j] = (0..B).map(|b| self.dhprebn[b][j]).sum();
        }
        // demb = dembcat.view(emb.shape)
        self.demb = self.dembcat;
        // dC[Xb[b, t]] += demb[b, t]   (a row of C used twice gets both gradients)
        for b in 0..B {
            for t in 0..T {
                let row = &mut grads.c[batch.x[b][t].index()];
                for e in 0..E {
                    row[e] += self.demb[b][t][e];
                }
            }
        }
    }
}

impl<const V: usize, const E: usize, const T: usize, const H: usize, const B: usize> Default
    for ReferenceState<V, E, T, H, B>
{
    fn default() -> Self {
        Self::new()
    }
}

/// Index of the first maximum, as `torch.max(1).indices` picks it.
fn first_argmax<const V: usize>(row: &[f32; V]) -> usize {
    let mut best = 0;
    for k in 1..V {
        if row[k] > row[best] {
            best = k;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_is_as_documented() {
        assert_eq!(
            core::mem::size_of::<ReferenceState<27, 10, 3, 64, 32>>(),
            150_532
        );
    }
}
