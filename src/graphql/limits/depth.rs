//! Depth: the deepest level of fields, fragments inlined (a root field is
//! level 1). Braces are also counted in the text before parsing (see
//! `text`), so a deep document never reaches the parser's own recursion
//! limit.

use super::visitor::{Check, Visit};

#[derive(Default)]
pub(super) struct Depth {
    pub deepest: usize,
}

impl Check for Depth {
    fn enter_field(&mut self, visit: &Visit<'_>) {
        self.deepest = self.deepest.max(visit.level);
    }
}
