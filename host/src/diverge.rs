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
use charmlp_core::Schedule;

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
    /// ln V: the loss of guessing uniformly among the vocabulary's V symbols.
    ln_v: f32,
    /// The first step of the current stretch in which the smoothed loss stands above where the
    /// run started (the first loss, or ln V), or of a loss that is not finite. The smoothed
    /// loss, not a single batch's, marks the stretch: batch losses are noisy (half of them
    /// can fall below the line in a run that is diverging slowly with small batches).
    above_since: Option<u64>,
}

impl Watch {
    /// A watch over a run of a vocabulary of `symbols`.
    pub fn new(symbols: usize) -> Self {
        Watch {
            smoothed: f32::NAN,
            limit: f32::NAN,
            ln_v: (symbols as f32).ln(),
            above_since: None,
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

    /// The step whose update started the blow-up, for a divergence found in the loss of step
    /// `now`: the loss of step k is the first to show the update of step k − 1, so the blow-up
    /// began with the update before the first step of the current stretch.
    pub fn blamed_step(&self, now: u64) -> u64 {
        self.above_since.unwrap_or(now).saturating_sub(1)
    }

    /// As [`Watch::blamed_step`], for a divergence found in the parameters after the update of
    /// step `now`: without a stretch, that update itself is to blame.
    pub fn blamed_update(&self, now: u64) -> u64 {
        self.above_since.map_or(now, |s| s.saturating_sub(1))
    }

    /// Takes one step's batch loss; `Err` with the reason if the run has diverged.
    pub fn step(&mut self, step: u64, loss: f32) -> Result<(), String> {
        if !loss.is_finite() {
            self.above_since.get_or_insert(step);
            return Err(format!("the loss is {loss}"));
        }
        if self.smoothed.is_nan() {
            self.smoothed = loss;
            self.limit = loss.max(self.ln_v) + MARGIN;
        } else {
            self.smoothed = (1.0 - SMOOTHING) * self.smoothed + SMOOTHING * loss;
        }
        if self.smoothed > self.limit - MARGIN {
            self.above_since.get_or_insert(step);
        } else {
            self.above_since = None;
        }
        if step >= WARM_UP && self.smoothed > self.limit {
            return Err(format!(
                "the smoothed loss is {:.4}, above {:.4} (1 nat worse than guessing uniformly \
                 or than the first step)",
                self.smoothed, self.limit
            ));
        }
        Ok(())
    }
}

/// The message of a run found diverged at `step`, the blow-up begun by the update of
/// `blamed` (see [`Watch::blamed_step`]): why, the learning rate that applied there and the flag
/// that sets it, a value to try, and that nothing was written.
///
/// The value to try is the flag's default where the rate was above it (a rate 10× lower may
/// well diverge too, and from 1e30 that would be thirty tries), and else a tenth of the rate.
///
/// `default_lr` is `--lr`'s default for the run's optimizer; `--lr-final`'s is a tenth of it.
pub fn message(step: u64, blamed: u64, why: &str, schedule: &Schedule, default_lr: f32) -> String {
    let lr = schedule.at(blamed);
    let (flag, default) = if schedule.is_final(blamed) {
        ("--lr-final", default_lr / 10.0)
    } else {
        ("--lr", default_lr)
    };
    let try_lr = if lr > default {
        format!("{flag} {} (the default)", fmt_num(default))
    } else {
        format!("{flag} {}", fmt_num(lr / 10.0))
    };
    let at = if blamed + 1 < step {
        format!(", blowing up from step {}", blamed + 1)
    } else {
        String::new()
    };
    format!(
        "training diverged at step {step}{at}: {why} ({flag} {} applies there); try a lower \
         learning rate, e.g. {try_lr}. No model was written.",
        fmt_num(lr),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_falling_or_noisy_loss_is_fine() {
        let mut w = Watch::new(27);
        for step in 0..10_000 {
            let loss = 3.5 - (step as f32 / 10_000.0) + if step % 2 == 0 { 1.5 } else { -1.5 };
            assert_eq!(w.step(step, loss), Ok(()), "step {step}");
        }
    }

    #[test]
    fn a_loss_far_above_the_start_is_divergence_after_the_warm_up() {
        let mut w = Watch::new(27);
        w.step(0, 3.4).unwrap();
        // Early spikes are forgiven while the average settles...
        for step in 1..WARM_UP {
            w.step(step, 30.0).unwrap();
        }
        // ...but a smoothed loss past 3.4 + 1 after it is not.
        let e = w.step(WARM_UP, 30.0).unwrap_err();
        assert!(e.contains("smoothed loss"), "{e}");
        assert_eq!(
            Watch::new(27).step(0, f32::NAN).unwrap_err(),
            "the loss is NaN"
        );
    }

    #[test]
    fn the_blame_goes_to_the_update_before_the_first_bad_loss() {
        let mut w = Watch::new(27);
        w.step(0, 3.4).unwrap();
        w.step(1, 3.3).unwrap();
        w.step(2, 50.0).unwrap(); // the update of step 1 blew it up
        w.step(3, 3.0).unwrap(); // one good batch does not end the stretch
        for step in 4..WARM_UP {
            w.step(step, 60.0).unwrap();
        }
        assert!(w.step(WARM_UP, 60.0).is_err());
        assert_eq!(w.blamed_step(WARM_UP), 1);
        assert_eq!(w.blamed_update(WARM_UP), 1);
        // A stretch ends when the smoothed loss is back where the run started.
        let mut w = Watch::new(27);
        w.step(0, 3.4).unwrap();
        w.step(1, 40.0).unwrap();
        for step in 2..400 {
            w.step(step, 2.0).unwrap();
        }
        assert_eq!(w.blamed_step(400), 399);
        assert_eq!(w.blamed_update(400), 400);
        let mut w = Watch::new(27);
        assert!(w.step(0, 3.4).is_ok() && w.step(1, f32::NAN).is_err());
        assert_eq!(w.blamed_step(1), 0);
    }

    #[test]
    fn the_message_names_the_flag_that_set_the_rate() {
        let schedule = Schedule::step(1e30, 100, 0.005);
        // Found after the decay, begun before it: --lr is to blame.
        let early = message(100, 3, "x", &schedule, 0.1);
        assert!(
            early.contains("--lr 1e30 applies") && early.contains("e.g. --lr 0.1 (the default)"),
            "{early}"
        );
        assert!(early.contains("blowing up from step 4"), "{early}");
        let late = message(150, 149, "x", &schedule, 0.1);
        assert!(
            late.contains("--lr-final 0.005 applies") && late.contains("e.g. --lr-final 0.0005."),
            "{late}"
        );
        let f32_noise = Schedule::step(0.01, 10, 0.01);
        assert!(message(1, 0, "x", &f32_noise, 0.1).contains("--lr 0.001."));
    }
}
