//! Directives: on the operation, its fields, fragment spreads, inline
//! fragments and the definitions of the fragments it spreads. Each is
//! evaluated where it stands, so a flood of them is work before any
//! field resolves.

use async_graphql::{Positioned, parser::types::Directive};

use super::visitor::Check;

#[derive(Default)]
pub(super) struct Directives {
    pub count: usize,
}

impl Check for Directives {
    fn directives(&mut self, directives: &[Positioned<Directive>]) {
        self.count += directives.len();
    }
}
