//! A training recipe: everything that decides what a run computes (shape, batch, steps,
//! optimizer, schedule, seeds, evaluation), resolved from the flags once, recorded in model
//! files and checkpoints, and compared on `--resume`.

use crate::cli::TrainArgs;
use crate::fmt_num;
use crate::shapes::ModelShape;
use anyhow::{Result, bail};
use charmlp_core::{Decay, Optimizer, Schedule};

/// The update rules `--optimizer` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Rule {
    /// Plain SGD, makemore part 4's
    Sgd,
    /// SGD with momentum (--momentum)
    Momentum,
    /// SGD with Nesterov momentum (--momentum)
    Nesterov,
    /// AdamW (--beta1, --beta2, --eps, --weight-decay), makemore.py's
    Adamw,
}

/// The schedules `--schedule` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ScheduleKind {
    /// --lr, then --lr-final from --lr-decay-step on (makemore part 4's)
    Step,
    /// Half a cosine from --lr down to --lr-final at the last step
    Cosine,
}

/// makemore.py's AdamW learning rate, `--lr`'s default with `--optimizer adamw`.
pub const ADAMW_LR: f32 = 5e-4;
/// makemore part 4's SGD learning rate, `--lr`'s default otherwise.
pub const SGD_LR: f32 = 0.1;

/// Everything that decides what a run computes.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Recipe {
    pub shape: ModelShape,
    pub batch: usize,
    pub steps: u64,
    pub optimizer: Optimizer,
    pub schedule: Schedule,
    /// Seed of the initialisation and the batches.
    pub seed: u64,
    /// Seed of the split (Python's `random.seed(split_seed); random.shuffle(words)`).
    pub split_seed: u64,
    /// Steps between evaluations (and checkpoints): they choose `best.ckpt` and fill the curve.
    pub eval_every: u64,
    /// Validation examples evaluated during training (`None`: all).
    pub eval_examples: Option<u64>,
}

impl Recipe {
    /// The recipe the flags give, defaults resolved.
    pub fn from_args(args: &TrainArgs) -> Result<Recipe> {
        let o = &args.optim;
        let optimizer = match o.optimizer {
            Rule::Sgd => Optimizer::Sgd,
            Rule::Momentum | Rule::Nesterov => Optimizer::Momentum {
                momentum: o.momentum,
                nesterov: o.optimizer == Rule::Nesterov,
            },
            Rule::Adamw => Optimizer::AdamW {
                beta1: o.beta1,
                beta2: o.beta2,
                eps: o.eps,
                weight_decay: o.weight_decay,
            },
        };
        let lr = o.lr.unwrap_or(default_lr(&optimizer));
        // A tenth of --lr: makemore's 0.1 then 0.01.
        let lr_final = o.lr_final.unwrap_or(tenth(lr));
        if o.warmup >= args.steps {
            bail!(
                "--warmup {} is not below --steps {}: the run would never reach --lr; give \
                 fewer warm-up steps",
                o.warmup,
                args.steps
            );
        }
        if let Some(at) = o.lr_decay_step
            && o.schedule == ScheduleKind::Step
            && at >= args.steps
        {
            bail!(
                "--lr-decay-step {at} is not below --steps {}: --lr-final would never apply; \
                 give a step below it (for one rate throughout, give --lr-final equal to --lr)",
                args.steps
            );
        }
        let decay = match (o.schedule, o.lr_decay_step) {
            // Half the run, wherever it ends: a fixed 100,000 would never come in a shorter run.
            (ScheduleKind::Step, at) => Decay::Step {
                at: at.unwrap_or_else(|| args.steps.div_ceil(2)),
            },
            (ScheduleKind::Cosine, None) => Decay::Cosine { steps: args.steps },
            (ScheduleKind::Cosine, Some(_)) => bail!(
                "--lr-decay-step is the step schedule's; the cosine falls from --lr to \
                 --lr-final over the whole run: leave --lr-decay-step out, or give \
                 --schedule step"
            ),
        };
        Ok(Recipe {
            shape: args.shape.shape(),
            batch: args.batch,
            steps: args.steps,
            optimizer,
            schedule: Schedule {
                lr,
                lr_final,
                warmup: o.warmup,
                decay,
            },
            seed: args.seed,
            split_seed: args.split_seed,
            eval_every: args.eval_every,
            eval_examples: args.eval_examples,
        })
    }

    /// The optimizer and schedule as the model line shows them: `SGD, lr 0.1 then 0.01 from
    /// step 100000`, `AdamW (β 0.9/0.99, ε 1e-8, weight decay 0.01), lr 0.0005 cosine to
    /// 5e-05, warm-up 1000`.
    pub fn describe(&self) -> String {
        let rule = match self.optimizer {
            Optimizer::Sgd => "SGD".to_string(),
            Optimizer::Momentum { momentum, nesterov } => format!(
                "SGD with {}momentum {momentum}",
                if nesterov { "Nesterov " } else { "" }
            ),
            Optimizer::AdamW {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => format!("AdamW (β {beta1}/{beta2}, ε {eps:e}, weight decay {weight_decay})"),
        };
        let s = &self.schedule;
        let decay = match s.decay {
            Decay::Step { at } => format!(
                "lr {} then {} from step {at}",
                fmt_num(s.lr),
                fmt_num(s.lr_final)
            ),
            Decay::Cosine { .. } => {
                format!("lr {} cosine to {}", fmt_num(s.lr), fmt_num(s.lr_final))
            }
        };
        let warmup = if s.warmup > 0 {
            format!(", warm-up {}", s.warmup)
        } else {
            String::new()
        };
        format!("{rule}, {decay}{warmup}")
    }
}

/// A tenth of a learning rate, of the decimal it was typed as: 0.001 gives 0.0001, not the f32
/// 0.000100000005 that 0.001f32 / 10 is (0.1 gives 0.01 either way).
pub fn tenth(lr: f32) -> f32 {
    let typed: f64 = lr.to_string().parse().unwrap_or(f64::from(lr));
    (typed / 10.0) as f32
}

/// An f32 as a flag value that reads back as the same f32: the shortest such decimal, with an
/// exponent when it is very large or small (`3e38`, not 39 digits).
fn exact(x: f32) -> String {
    if x == 0.0 || (1e-4..1e6).contains(&x.abs()) {
        x.to_string()
    } else {
        format!("{x:e}")
    }
}

/// `--lr`'s default for an optimizer: makemore.py's 5e-4 for AdamW, makemore part 4's 0.1 else.
pub fn default_lr(optimizer: &Optimizer) -> f32 {
    match optimizer {
        Optimizer::AdamW { .. } => ADAMW_LR,
        _ => SGD_LR,
    }
}

impl Recipe {
    /// The recipe as the flags that give it, every one written out: what a checkpoint's recipe
    /// is compared by, and what reproduces a sweep's run.
    pub fn flags(&self) -> Vec<(&'static str, String)> {
        let s = &self.schedule;
        let mut flags = vec![
            ("--embed", self.shape.embed.to_string()),
            ("--context", self.shape.context.to_string()),
            ("--hidden", self.shape.hidden.to_string()),
            ("--batch", self.batch.to_string()),
            ("--steps", self.steps.to_string()),
        ];
        match self.optimizer {
            Optimizer::Sgd => flags.push(("--optimizer", "sgd".into())),
            Optimizer::Momentum { momentum, nesterov } => {
                let rule = if nesterov { "nesterov" } else { "momentum" };
                flags.push(("--optimizer", rule.into()));
                flags.push(("--momentum", momentum.to_string()));
            }
            Optimizer::AdamW {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                flags.push(("--optimizer", "adamw".into()));
                flags.push(("--beta1", beta1.to_string()));
                flags.push(("--beta2", beta2.to_string()));
                flags.push(("--eps", format!("{eps:e}")));
                flags.push(("--weight-decay", weight_decay.to_string()));
            }
        }
        flags.push(("--lr", exact(s.lr)));
        flags.push(("--lr-final", exact(s.lr_final)));
        match s.decay {
            Decay::Step { at } => {
                flags.push(("--schedule", "step".into()));
                flags.push(("--lr-decay-step", at.to_string()));
            }
            Decay::Cosine { .. } => flags.push(("--schedule", "cosine".into())),
        }
        flags.push(("--warmup", s.warmup.to_string()));
        flags.push(("--seed", self.seed.to_string()));
        flags.push(("--split-seed", self.split_seed.to_string()));
        flags.push(("--eval-every", self.eval_every.to_string()));
        if let Some(n) = self.eval_examples {
            flags.push(("--eval-examples", n.to_string()));
        }
        flags
    }

    /// [`Recipe::flags`] as a JSON object, flag names without their dashes: `{"lr": "0.1", …}`.
    pub fn flags_json(&self) -> serde_json::Value {
        let map: serde_json::Map<String, serde_json::Value> = self
            .flags()
            .into_iter()
            .map(|(flag, value)| (flag.trim_start_matches('-').to_string(), value.into()))
            .collect();
        map.into()
    }

    /// How `given` differs from this recipe, flag by flag (`--lr 0.1, not 0.2`), or `None` if
    /// they are the same.
    pub fn differences(&self, given: &Recipe) -> Option<String> {
        if self == given {
            return None;
        }
        let (ours, theirs) = (self.flags(), given.flags());
        let mut diffs: Vec<String> = Vec::new();
        for (flag, value) in &ours {
            match theirs.iter().find(|(f, _)| f == flag) {
                Some((_, v)) if v == value => {}
                Some((_, v)) => diffs.push(format!("{flag} {value}, not {v}")),
                None => diffs.push(format!("{flag} {value}, not absent")),
            }
        }
        for (flag, v) in &theirs {
            if !ours.iter().any(|(f, _)| f == flag) {
                diffs.push(format!("no {flag}, not {v}"));
            }
        }
        if diffs.is_empty() {
            diffs.push("a value that prints alike but differs in its last bits".into());
        }
        Some(diffs.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenth_is_of_the_decimal_typed() {
        assert_eq!(tenth(0.1), 0.01);
        assert_eq!(tenth(0.001).to_string(), "0.0001");
        assert_eq!(tenth(5e-4).to_string(), "0.00005");
        assert_eq!(tenth(0.1), 0.1f32 / 10.0, "makemore's default is unchanged");
    }

    /// A recipe reads back from its JSON exactly, every f64 to the last bit (17 significant
    /// digits, as Python prints them), so that resuming with the very flags typed is accepted.
    #[test]
    fn a_recipe_round_trips_through_json_exactly() {
        let recipe = Recipe {
            shape: ModelShape::DEFAULT,
            batch: 32,
            steps: 1000,
            optimizer: Optimizer::AdamW {
                beta1: 0.460_549_333_791_937_24,
                beta2: 0.987_654_321_012_345_6,
                eps: 1.234_567_890_123_456_7e-9,
                weight_decay: 0.012_345_678_901_234_567,
            },
            schedule: Schedule::step(0.1, 500, 0.01),
            seed: u64::MAX,
            split_seed: 1,
            eval_every: 7,
            eval_examples: Some(3),
        };
        let json = serde_json::to_string(&recipe).unwrap();
        let back: Recipe = serde_json::from_str(&json).unwrap();
        assert_eq!(back, recipe, "{json}");
        assert_eq!(recipe.differences(&back), None);
        let other = Recipe { seed: 5, ..recipe };
        assert_eq!(
            recipe.differences(&other).unwrap(),
            format!("--seed {}, not 5", u64::MAX)
        );
    }
}
