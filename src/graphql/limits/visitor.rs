//! The one walk over an operation that every check shares: the operation
//! that runs, fragments inlined where they are spread, each field seen
//! with its type in the schema. Checks hook into it ([`Check`]); none of
//! them walks on its own.

use std::collections::HashMap;

use async_graphql::{
    Name, OutputType, Positioned, Value, Variables,
    parser::types::{
        Directive, ExecutableDocument, Field, OperationDefinition, OperationType, Selection,
        SelectionSet,
    },
    registry::{MetaType, MetaTypeName, Registry},
};

use super::pricing::{PRICED, Pricing};
use crate::graphql::{mutation::MutationRoot, query::QueryRoot, subscription::SubscriptionRoot};

/// A check over the walk. Every hook does nothing by default.
pub(super) trait Check {
    /// `field` is entered at `level` (1 for a root field).
    fn enter_field(&mut self, _field: &Visit<'_>) {}
    /// `field` and everything it selects have been walked.
    fn leave_field(&mut self, _field: &Visit<'_>) {}
    /// Directives met: on the operation, a field, a fragment spread, an
    /// inline fragment, or a fragment's definition where it is spread.
    fn directives(&mut self, _directives: &[Positioned<Directive>]) {}
}

/// A field as the walk meets it.
pub(super) struct Visit<'a> {
    pub field: &'a Field,
    /// 1 for a field of the root type, 2 for what it selects, and so on;
    /// fragments add no level.
    pub level: usize,
    /// The field in the schema, when its parent type is known.
    pub schema: Option<&'a SchemaField>,
    pub arguments: &'a Arguments<'a>,
}

/// What the checks need of a field of the schema.
#[derive(Debug)]
pub(super) struct SchemaField {
    /// The named type it returns (lists and non-null unwrapped).
    pub ty: String,
    pub pricing: Pricing,
}

/// Each object and interface field of the schema, by parent type and name.
pub(super) struct SchemaFields(HashMap<String, HashMap<String, SchemaField>>);

impl SchemaFields {
    pub fn of_schema() -> Self {
        let mut types = HashMap::new();
        for (name, ty) in &registry().types {
            let fields = match ty {
                MetaType::Object { fields, .. } | MetaType::Interface { fields, .. } => fields,
                _ => continue,
            };
            let fields = fields
                .values()
                .map(|field| {
                    let pricing = PRICED
                        .iter()
                        .find(|(t, f, _)| t == name && *f == field.name)
                        .map_or(Pricing::Single, |(_, _, pricing)| *pricing);
                    let ty = MetaTypeName::concrete_typename(&field.ty).to_owned();
                    (field.name.clone(), SchemaField { ty, pricing })
                })
                .collect();
            types.insert(name.clone(), fields);
        }
        Self(types)
    }

    pub fn field(&self, parent: &str, name: &str) -> Option<&SchemaField> {
        self.0.get(parent)?.get(name)
    }
}

/// The schema's types, as async-graphql registers them.
pub(crate) fn registry() -> Registry {
    let mut registry = Registry::default();
    QueryRoot::create_type_info(&mut registry);
    MutationRoot::create_type_info(&mut registry);
    <SubscriptionRoot as async_graphql::SubscriptionType>::create_type_info(&mut registry);
    registry
}

/// Argument values of the operation's fields, through its variables and
/// their defaults.
pub(super) struct Arguments<'a> {
    operation: &'a OperationDefinition,
    variables: &'a Variables,
}

impl Arguments<'_> {
    pub fn get(&self, field: &Field, name: &str) -> Option<Value> {
        let value = field.get_argument(name)?.node.clone();
        value
            .into_const_with(|variable| self.variable(&variable).ok_or(()))
            .ok()
    }

    fn variable(&self, name: &Name) -> Option<Value> {
        self.variables.get(name).cloned().or_else(|| {
            self.operation
                .variable_definitions
                .iter()
                .find(|d| d.node.name.node == *name)
                .and_then(|d| d.node.default_value.as_ref())
                .map(|v| v.node.clone())
        })
    }
}

/// How a walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Walked {
    /// Every field was seen.
    Whole,
    /// More than the budget of fields were seen and the walk stopped:
    /// fragments can repeat a selection exponentially. What the checks
    /// counted is a lower bound.
    Stopped { fields: usize },
}

/// Walks `operation` of `document` through `checks`, seeing at most
/// `budget` fields (plus one, to know it was exceeded).
pub(super) fn walk(
    document: &ExecutableDocument,
    operation: &OperationDefinition,
    variables: &Variables,
    schema: &SchemaFields,
    budget: usize,
    checks: &mut [&mut dyn Check],
) -> Walked {
    let arguments = Arguments {
        operation,
        variables,
    };
    let mut walker = Walker {
        document,
        schema,
        arguments: &arguments,
        checks,
        fields: 0,
        budget,
        fragments: Vec::new(),
    };
    walker.directives(&operation.directives);
    let root = match operation.ty {
        OperationType::Mutation => "Mutation",
        OperationType::Subscription => "Subscription",
        OperationType::Query => "Query",
    };
    walker.selections(&operation.selection_set.node, Some(root), 0);
    if walker.fields > budget {
        Walked::Stopped {
            fields: walker.fields,
        }
    } else {
        Walked::Whole
    }
}

struct Walker<'a, 'c, 'd> {
    document: &'a ExecutableDocument,
    schema: &'a SchemaFields,
    arguments: &'a Arguments<'a>,
    checks: &'c mut [&'d mut dyn Check],
    fields: usize,
    budget: usize,
    /// The fragments being expanded: a spread of one of them is a cycle
    /// (which validation refuses later) and is not followed.
    fragments: Vec<&'a str>,
}

impl<'a> Walker<'a, '_, '_> {
    /// Walks `set`, selected on `parent` by a field at `level`.
    fn selections(&mut self, set: &'a SelectionSet, parent: Option<&'a str>, level: usize) {
        for item in &set.items {
            if self.fields > self.budget {
                return;
            }
            match &item.node {
                Selection::Field(field) => self.field(&field.node, parent, level + 1),
                Selection::InlineFragment(inline) => {
                    self.directives(&inline.node.directives);
                    let on = inline.node.type_condition.as_ref();
                    let parent = on.map(|c| c.node.on.node.as_str()).or(parent);
                    self.selections(&inline.node.selection_set.node, parent, level);
                }
                Selection::FragmentSpread(spread) => {
                    self.directives(&spread.node.directives);
                    let name = spread.node.fragment_name.node.as_str();
                    let Some(fragment) = self.document.fragments.get(name) else {
                        continue;
                    };
                    if self.fragments.contains(&name) {
                        continue;
                    }
                    self.fragments.push(name);
                    self.directives(&fragment.node.directives);
                    let on = fragment.node.type_condition.node.on.node.as_str();
                    self.selections(&fragment.node.selection_set.node, Some(on), level);
                    self.fragments.pop();
                }
            }
        }
    }

    fn field(&mut self, field: &'a Field, parent: Option<&'a str>, level: usize) {
        self.fields += 1;
        self.directives(&field.directives);
        let schema = parent.and_then(|p| self.schema.field(p, field.name.node.as_str()));
        let visit = Visit {
            field,
            level,
            schema,
            arguments: self.arguments,
        };
        for check in self.checks.iter_mut() {
            check.enter_field(&visit);
        }
        let ty = schema.map(|s| s.ty.as_str());
        self.selections(&field.selection_set.node, ty, level);
        for check in self.checks.iter_mut() {
            check.leave_field(&visit);
        }
    }

    fn directives(&mut self, directives: &[Positioned<Directive>]) {
        if directives.is_empty() {
            return;
        }
        for check in self.checks.iter_mut() {
            check.directives(directives);
        }
    }
}
