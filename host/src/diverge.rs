//! When a training run has diverged.
//!
//! A run has diverged when, at any step:
//! - the batch loss is NaN or infinite, or (checked every 1,024 steps) a parameter is; or
//! - from step 100 on, the smoothed loss (an exponential average over about 100 steps) is more
//!   than 1 nat above both the first step's loss and ln V, the loss of guessing uniformly: the
//!   model predicts worse than one that knows nothing, and is getting worse.
//!
//! and, after training, when batch-norm calibration gives a non-finite statistic or the model
//! fails the loader's checks (which bound every activation; see `charmlp_core::bounds`). A
//! diverged run writes nothing, exits 1 and names the step and the flag to change.

use crate::fmt_num;
use charmlp_core::{StepDecay, V};

/// Steps before the smoothed loss is judged: the average needs some to settle.
pub const WARM_UP: u64 = 100;

/// How far above the start and above ln V the smoothed loss may go, in nats.
pub const MARGIN: f32 = 1.0;

/// Weight of each new loss in the smoothed loss.
pub const SMOOTHING: f32 = 0.01;

/// The smoothed loss of a run, and the line it must not cross.
pub struct Watch {
    smoothed: f32,
    limit: f32,
}

impl Default for Watch {
    fn default() -> Self {
        Self::new()
    }
}

impl Watch {
    pub const fn new() -> Self {
        Watch {
            smoothed: f32::NAN,
            limit: f32::NAN,
        }
    }

    /// The loss a run must stay below: 1 nat above the first loss and ln V.
    pub fn limit(&self) -> f32 {
        self.limit
    }

    /// The smoothed loss so far.
    pub fn smoothed(&self) -> f32 {
        self.smoothed
    }

    /// Takes one step's batch loss; `Err` with the reason if the run has diverged.
    pub fn step(&mut self, step: u64, loss: f32) -> Result<(), String> {
        if !loss.is_finite() {
            return Err(format!("the loss is {loss}"));
        }
        if self.smoothed.is_nan() {
            self.smoothed = loss;
            self.limit = loss.max((V as f32).ln()) + MARGIN;
        } else {
            self.smoothed = (1.0 - SMOOTHING) * self.smoothed + SMOOTHING * loss;
        }
        if step >= WARM_UP && self.smoothed > self.limit {
            return Err(format!(
                "the smoothed loss is {:.2}, above {:.2} (1 nat worse than guessing uniformly \
                 or than the first step)",
                self.smoothed, self.limit
            ));
        }
        Ok(())
    }
}

/// The message of a run diverged at `step`: why, the learning rate that applied and the flag
/// that sets it, a lower value to try, and that nothing was written.
pub fn message(step: u64, why: &str, schedule: &StepDecay) -> String {
    let lr = schedule.at(step);
    let flag = if step >= schedule.decay_step {
        "--lr-final"
    } else {
        "--lr"
    };
    format!(
        "training diverged at step {step}: {why} ({flag} {} applies there); try a lower \
         learning rate, e.g. {flag} {}. No model was written.",
        fmt_num(lr),
        fmt_num(lr / 10.0)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_falling_or_noisy_loss_is_fine() {
        let mut w = Watch::new();
        for step in 0..10_000 {
            let loss = 3.5 - (step as f32 / 10_000.0) + if step % 2 == 0 { 1.5 } else { -1.5 };
            assert_eq!(w.step(step, loss), Ok(()), "step {step}");
        }
    }

    #[test]
    fn a_loss_far_above_the_start_is_divergence_after_the_warm_up() {
        let mut w = Watch::new();
        w.step(0, 3.4).unwrap();
        // Early spikes are forgiven while the average settles...
        for step in 1..WARM_UP {
            w.step(step, 30.0).unwrap();
        }
        // ...but a smoothed loss past 3.4 + 1 after it is not.
        let e = w.step(WARM_UP, 30.0).unwrap_err();
        assert!(e.contains("smoothed loss"), "{e}");
        assert_eq!(
            Watch::new().step(0, f32::NAN).unwrap_err(),
            "the loss is NaN"
        );
    }

    #[test]
    fn the_message_names_the_flag_that_set_the_rate() {
        let schedule = StepDecay {
            lr: 1e30,
            decay_step: 100,
            lr_final: 0.5,
        };
        let early = message(5, "x", &schedule);
        assert!(
            early.contains("--lr 1e30 applies") && early.contains("--lr 1e29"),
            "{early}"
        );
        let late = message(150, "x", &schedule);
        assert!(
            late.contains("--lr-final 0.5 applies") && late.contains("--lr-final 0.05"),
            "{late}"
        );
    }
}
