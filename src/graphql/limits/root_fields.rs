//! Root fields: the top-level fields of the operation, fragments inlined.
//! Each starts its own resolver chain, so they bound the fan-out of one
//! request.

use super::visitor::{Check, Visit};

#[derive(Default)]
pub(super) struct RootFields {
    pub count: usize,
}

impl Check for RootFields {
    fn enter_field(&mut self, visit: &Visit<'_>) {
        self.count += usize::from(visit.level == 1);
    }
}
