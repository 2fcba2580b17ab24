//! The conformance check on the device: the PyTorch reference state (`data/torch_reference.
//! safetensors`, in flash) read by the core's no-alloc safetensors reader, the fast path's
//! training-mode forward and hand-written fused backward run on its parameters and batch, and
//! each activation, gradient and the losses of ten SGD steps compared with PyTorch's, printed as
//! the notebook's `cmp` table, the same lines `charmlp check` prints for the fast path. Exits
//! with success if every row is within tolerance.
#![no_std]
#![no_main]

use charmlp_core::conformance::{Reference, fast_rows};
use charmlp_core::{DefaultBatch, DefaultModel, DefaultParams, DefaultTrainState, Model, Params};
use charmlp_firmware::{exit, paint_stack, stack_high_water};
use core::cell::RefCell;
use core::mem::size_of;
use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use critical_section::Mutex;
use panic_semihosting as _;

/// The reference state, in flash.
static REFERENCE: &[u8] = include_bytes!("../../../data/torch_reference.safetensors");

/// The fast path's buffers: a model, its gradients, a training state and a batch.
struct Check {
    model: DefaultModel,
    grads: DefaultParams,
    state: DefaultTrainState,
    batch: DefaultBatch,
}

// All zeros, so that it lands in .bss: the reference's parameters overwrite the model.
static CHECK: Mutex<RefCell<Check>> = Mutex::new(RefCell::new(Check {
    model: Model {
        params: Params::zeroed(),
        bn: charmlp_core::BnStats {
            mean: [0.0; charmlp_core::HIDDEN],
            var: [0.0; charmlp_core::HIDDEN],
        },
    },
    grads: Params::zeroed(),
    state: DefaultTrainState::new(),
    batch: DefaultBatch::new(),
}));

#[entry]
fn main() -> ! {
    paint_stack();
    hprintln!(
        "charmlp firmware: the fast path against PyTorch ({} bytes of reference state in flash)",
        REFERENCE.len()
    );
    hprintln!(
        "state bytes: model {}, gradients {}, train state {}, batch {}",
        size_of::<DefaultModel>(),
        size_of::<DefaultParams>(),
        size_of::<DefaultTrainState>(),
        size_of::<DefaultBatch>()
    );
    let (mut rows, mut approximate) = (0, 0);
    let result = critical_section::with(|cs| {
        let c = &mut *CHECK.borrow_ref_mut(cs);
        fast_rows(
            &Reference(REFERENCE),
            &mut c.model,
            &mut c.grads,
            &mut c.state,
            &mut c.batch,
            |row| {
                hprintln!("{}", row);
                rows += 1;
                approximate += usize::from(row.approximate);
            },
        )
    });
    hprintln!("stack high-water mark: {} bytes", stack_high_water());
    if let Err(e) = result {
        hprintln!("result: the reference state cannot be read: {}", e);
        exit(false)
    }
    hprintln!("result: {} of {} tensors approximate", approximate, rows);
    exit(rows > 0 && approximate == rows)
}
