//! Aliases, counted where fields run (fragments inlined): each alias asks
//! for a field again, so a flood of them multiplies the work of one field.

use super::visitor::{Check, Visit};

#[derive(Default)]
pub(super) struct Aliases {
    pub count: usize,
}

impl Check for Aliases {
    fn enter_field(&mut self, visit: &Visit<'_>) {
        self.count += usize::from(visit.field.alias.is_some());
    }
}
