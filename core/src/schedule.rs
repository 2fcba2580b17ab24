//! Learning-rate schedules: makemore's step decay (the default), cosine annealing, and a linear
//! warm-up before either.

/// How the rate falls from `lr` to `lr_final` after the warm-up.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Decay {
    /// `lr` before step `at`, `lr_final` from it on (makemore: 0.1, then 0.01 from 100,000).
    Step { at: u64 },
    /// Half a cosine from `lr` at the end of the warm-up to `lr_final` at step `steps`
    /// (`torch.optim.lr_scheduler.CosineAnnealingLR` with `T_max` the steps after the warm-up
    /// and `eta_min` = `lr_final`, in its closed form).
    Cosine { steps: u64 },
}

/// The learning rate of every step.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Schedule {
    pub lr: f32,
    pub lr_final: f32,
    /// Steps of linear warm-up: step s < `warmup` has rate lr·(s + 1)/`warmup`.
    pub warmup: u64,
    pub decay: Decay,
}

impl Schedule {
    /// makemore part 4: 0.1, then 0.01 from step 100,000, no warm-up.
    pub const MAKEMORE: Schedule = Schedule::step(0.1, 100_000, 0.01);

    /// `lr` before step `at`, `lr_final` from it on.
    pub const fn step(lr: f32, at: u64, lr_final: f32) -> Schedule {
        Schedule {
            lr,
            lr_final,
            warmup: 0,
            decay: Decay::Step { at },
        }
    }

    /// A constant rate.
    pub const fn constant(lr: f32) -> Schedule {
        Schedule::step(lr, u64::MAX, lr)
    }

    /// The rate of step `step` (counted from 0).
    pub fn at(&self, step: u64) -> f32 {
        if step < self.warmup {
            // In f64: (s + 1)/w is exact enough for any step count, and lr·1 is lr exactly.
            return (f64::from(self.lr) * (step + 1) as f64 / self.warmup as f64) as f32;
        }
        match self.decay {
            Decay::Step { at } => {
                if step < at {
                    self.lr
                } else {
                    self.lr_final
                }
            }
            Decay::Cosine { steps } => {
                let span = steps.saturating_sub(self.warmup).max(1) as f64;
                let t = ((step - self.warmup) as f64 / span).min(1.0);
                let (lr, lr_final) = (f64::from(self.lr), f64::from(self.lr_final));
                let cos = libm::cos(core::f64::consts::PI * t);
                (lr_final + (lr - lr_final) * (1.0 + cos) / 2.0) as f32
            }
        }
    }

    /// Whether the rate at `step` is `lr_final` alone (after a step decay's drop), so that a
    /// message blames `--lr-final` rather than `--lr`.
    pub fn is_final(&self, step: u64) -> bool {
        matches!(self.decay, Decay::Step { at } if step >= at && step >= self.warmup)
    }
}

impl Default for Schedule {
    fn default() -> Self {
        Self::MAKEMORE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_decay_drops_at_its_step() {
        let s = Schedule::MAKEMORE;
        assert_eq!(s.at(0), 0.1);
        assert_eq!(s.at(99_999), 0.1);
        assert_eq!(s.at(100_000), 0.01);
        assert_eq!(s.at(199_999), 0.01);
        assert!(!s.is_final(99_999) && s.is_final(100_000));
        assert_eq!(Schedule::constant(0.3).at(u64::MAX - 1), 0.3);
    }

    /// The cosine is lr at its start, the mean of lr and lr_final halfway, lr_final at the end,
    /// and PyTorch's closed form between: η_min + (η_max − η_min)(1 + cos(π t/T))/2.
    #[test]
    fn the_cosine_falls_from_lr_to_lr_final() {
        let s = Schedule {
            lr: 0.1,
            lr_final: 0.001,
            warmup: 0,
            decay: Decay::Cosine { steps: 1000 },
        };
        assert_eq!(s.at(0), 0.1);
        assert!((s.at(500) - 0.0505).abs() < 1e-8, "{}", s.at(500));
        assert!((s.at(250) - (0.001 + 0.099 * (1.0 + 0.5f32.sqrt()) / 2.0)).abs() < 1e-7);
        assert_eq!(s.at(1000), 0.001);
        assert_eq!(s.at(5000), 0.001);
        assert!((1..1000).all(|t| s.at(t) < s.at(t - 1)));
        assert!(!s.is_final(999));
    }

    /// A warm-up climbs linearly to lr in `warmup` steps, then the decay starts from lr.
    #[test]
    fn the_warm_up_climbs_to_lr() {
        let s = Schedule {
            warmup: 10,
            decay: Decay::Cosine { steps: 110 },
            ..Schedule::MAKEMORE
        };
        assert!((s.at(0) - 0.01).abs() < 1e-9);
        assert!((s.at(4) - 0.05).abs() < 1e-9);
        assert_eq!(s.at(9), 0.1);
        assert_eq!(s.at(10), 0.1);
        assert!((s.at(60) - 0.055).abs() < 1e-8, "{}", s.at(60));
        assert_eq!(s.at(110), 0.01);
        let stepped = Schedule {
            warmup: 10,
            ..Schedule::step(0.1, 5, 0.01)
        };
        assert!(stepped.at(4) < 0.1 && stepped.at(10) == 0.01 && !stepped.is_final(4));
    }
}
