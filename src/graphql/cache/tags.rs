//! What a response shows, as tags the invalidations name.
//!
//! - Entities: every object with a global id, tagged by that id (its type
//!   and database id, see [`global_id`](crate::graphql::types::global_id)).
//!   The executed document is [`augment`]ed to select the id of every
//!   object that has one, under an alias clients cannot use; [`collect`]
//!   reads and removes it, so the response is what the client asked for.
//! - Relations: a list under an entity (an article's comments, a user's
//!   articles, favorites, followers), tagged `<id>/<relation>`: a new
//!   comment changes the article's comment lists, not every page showing
//!   the article.
//! - Root lists and lookups: `articles` by its filters, `tags`, and an
//!   `article(slug:)` or `user(username:)` that found nobody.

use std::{collections::HashMap, sync::Arc, sync::OnceLock};

use async_graphql::{
    Name, Positioned, Value, Variables,
    parser::types::{
        DocumentOperations, ExecutableDocument, Field, OperationType, Selection, SelectionSet,
    },
    registry::{MetaType, MetaTypeName},
};

/// One thing a response depends on.
pub type Tag = Arc<str>;

/// The alias the executed document selects ids under.
pub const ID_ALIAS: &str = "__cacheEntityId";

/// Root `articles`, whatever its filters.
pub const ARTICLES: &str = "list:articles";
/// Root `articles(tag:)`.
pub const ARTICLES_BY_TAG: &str = "list:articles:tag";
/// Root `articles(author:)`.
pub const ARTICLES_BY_AUTHOR: &str = "list:articles:author";
/// Root `articles(favoritedBy:)`.
pub const ARTICLES_BY_FAVORITER: &str = "list:articles:favoritedBy";
/// Root `tags`.
pub const TAGS: &str = "list:tags";
/// Root `article(slug:)` that found nothing.
pub const ARTICLE_LOOKUP: &str = "lookup:article";
/// Root `user(username:)` that found nobody.
pub const USER_LOOKUP: &str = "lookup:user";

/// The lists under an entity, by parent type and field.
pub const RELATIONS: &[(&str, &str, &str)] = &[
    ("Article", "comments", "comments"),
    ("Article", "commentsConnection", "comments"),
    ("User", "articles", "articles"),
    ("User", "favoriteArticles", "favorites"),
    ("User", "followers", "followers"),
];

/// The tag of `relation` of the entity with global id `id`.
pub fn relation(id: &str, relation: &str) -> Tag {
    format!("{id}/{relation}").into()
}

/// The tag of `relation` of every entity: what drops them all when an
/// event cannot name the entities whose lists it changed (an article
/// deleted leaves the favorites lists of everyone who favorited it).
pub fn every_relation(relation: &str) -> Tag {
    format!("*/{relation}").into()
}

/// What the walks need of the schema.
struct Types {
    /// (parent type, field) → the named type it returns.
    fields: HashMap<(String, String), String>,
    /// Types whose `id` is a global id (`Node` and its implementations).
    identified: Vec<String>,
}

fn types() -> &'static Types {
    static TYPES: OnceLock<Types> = OnceLock::new();
    TYPES.get_or_init(|| {
        let registry = crate::graphql::limits::registry();
        let mut fields = HashMap::new();
        let mut identified = vec!["Node".to_owned()];
        for (name, ty) in &registry.types {
            let (MetaType::Object { fields: f, .. } | MetaType::Interface { fields: f, .. }) = ty
            else {
                continue;
            };
            for field in f.values() {
                let named = MetaTypeName::concrete_typename(&field.ty).to_owned();
                fields.insert((name.clone(), field.name.clone()), named);
            }
            if let MetaType::Object { name, .. } = ty
                && registry
                    .implements
                    .get(name)
                    .is_some_and(|i| i.contains("Node"))
            {
                identified.push(name.clone());
            }
        }
        Types { fields, identified }
    })
}

impl Types {
    fn field(&self, parent: &str, name: &str) -> Option<&str> {
        self.fields
            .get(&(parent.to_owned(), name.to_owned()))
            .map(String::as_str)
    }

    fn identified(&self, ty: &str) -> bool {
        self.identified.iter().any(|t| t == ty)
    }
}

/// Whether a response to `query` may be kept: it does not use the alias
/// the augmentation selects under, nor introspect the schema (which
/// production shows only to signed-in clients).
pub fn may_keep(query: &str) -> bool {
    let introspects = query
        .match_indices("__schema")
        .map(|(i, _)| i)
        .chain(
            query
                .match_indices("__type")
                .filter(|(i, _)| !query[i + "__type".len()..].starts_with("name"))
                .map(|(i, _)| i),
        )
        .next()
        .is_some();
    !introspects && !query.contains(ID_ALIAS)
}

/// Makes every query operation of `document` select the global id of
/// each object that has one, under [`ID_ALIAS`].
pub fn augment(document: &mut ExecutableDocument) {
    let types = types();
    let operations: Vec<&mut Positioned<_>> = match &mut document.operations {
        DocumentOperations::Single(op) => vec![op],
        DocumentOperations::Multiple(ops) => ops.values_mut().collect(),
    };
    for op in operations {
        if op.node.ty == OperationType::Query {
            augment_set(types, "Query", &mut op.node.selection_set.node);
        }
    }
    for fragment in document.fragments.values_mut() {
        let ty = fragment.node.type_condition.node.on.node.to_string();
        augment_set(types, &ty, &mut fragment.node.selection_set.node);
    }
}

fn augment_set(types: &Types, ty: &str, set: &mut SelectionSet) {
    for item in &mut set.items {
        match &mut item.node {
            Selection::Field(field) => {
                let field = &mut field.node;
                if field.selection_set.node.items.is_empty() {
                    continue;
                }
                let Some(child) = types.field(ty, &field.name.node) else {
                    continue;
                };
                let child = child.to_owned();
                augment_set(types, &child, &mut field.selection_set.node);
                if types.identified(&child) {
                    field.selection_set.node.items.push(id_selection());
                }
            }
            Selection::InlineFragment(fragment) => {
                let fragment = &mut fragment.node;
                let on = fragment
                    .type_condition
                    .as_ref()
                    .map_or_else(|| ty.to_owned(), |c| c.node.on.node.to_string());
                augment_set(types, &on, &mut fragment.selection_set.node);
            }
            Selection::FragmentSpread(_) => {}
        }
    }
}

fn id_selection() -> Positioned<Selection> {
    let pos = async_graphql::Pos::default();
    let field = Field {
        alias: Some(Positioned::new(Name::new(ID_ALIAS), pos)),
        name: Positioned::new(Name::new("id"), pos),
        arguments: Vec::new(),
        directives: Vec::new(),
        selection_set: Positioned::new(SelectionSet::default(), pos),
    };
    Positioned::new(Selection::Field(Positioned::new(field, pos)), pos)
}

/// The tags of `data`, the result of `operation` of an [`augment`]ed
/// `document`; removes the ids the augmentation added.
pub fn collect(
    document: &ExecutableDocument,
    operation: Option<&str>,
    variables: &Variables,
    data: &mut Value,
) -> Vec<Tag> {
    let mut walk = Walk {
        types: types(),
        document,
        tags: Vec::new(),
    };
    let Some(op) = crate::graphql::limits::operation(document, operation) else {
        return walk.tags;
    };
    if let Value::Object(root) = data {
        walk.root(&op.selection_set.node, variables, root);
    }
    // Only now: one object can be walked by several selections with its
    // response key (fragments that each select the same field), and each
    // needs the id to name the relations it selects.
    strip_ids(data);
    walk.tags.sort_unstable();
    walk.tags.dedup();
    walk.tags
}

struct Walk<'a> {
    types: &'a Types,
    document: &'a ExecutableDocument,
    tags: Vec<Tag>,
}

type Object = async_graphql::indexmap::IndexMap<Name, Value>;

impl<'a> Walk<'a> {
    fn root(&mut self, set: &'a SelectionSet, variables: &Variables, root: &mut Object) {
        for field in self.fields(set, "Query") {
            let (field, _) = field;
            let Some(value) = root.get(field.response_key().node.as_str()) else {
                continue;
            };
            let set = |name: &str| argument_set(field, name, variables);
            match field.name.node.as_str() {
                "articles" => {
                    self.tags.push(ARTICLES.into());
                    for (argument, tag) in [
                        ("tag", ARTICLES_BY_TAG),
                        ("author", ARTICLES_BY_AUTHOR),
                        ("favoritedBy", ARTICLES_BY_FAVORITER),
                    ] {
                        if set(argument) {
                            self.tags.push(tag.into());
                        }
                    }
                }
                "tags" => self.tags.push(TAGS.into()),
                "article" if *value == Value::Null => self.tags.push(ARTICLE_LOOKUP.into()),
                "user" if *value == Value::Null => self.tags.push(USER_LOOKUP.into()),
                _ => {}
            }
        }
        self.object(set, "Query", root);
    }

    /// The fields `set` selects on `ty`, fragments flattened, each with
    /// the type it is selected on.
    fn fields(&self, set: &'a SelectionSet, ty: &str) -> Vec<(&'a Field, String)> {
        let mut out = Vec::new();
        self.flatten(set, ty, &mut out);
        out
    }

    fn flatten(&self, set: &'a SelectionSet, ty: &str, out: &mut Vec<(&'a Field, String)>) {
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => out.push((&field.node, ty.to_owned())),
                Selection::InlineFragment(fragment) => {
                    let on = fragment
                        .node
                        .type_condition
                        .as_ref()
                        .map_or_else(|| ty.to_owned(), |c| c.node.on.node.to_string());
                    self.flatten(&fragment.node.selection_set.node, &on, out);
                }
                Selection::FragmentSpread(spread) => {
                    let document: &'a ExecutableDocument = self.document;
                    if let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node)
                    {
                        let on = fragment.node.type_condition.node.on.node.to_string();
                        self.flatten(&fragment.node.selection_set.node, &on, out);
                    }
                }
            }
        }
    }

    fn value(&mut self, set: &'a SelectionSet, ty: &str, value: &mut Value) {
        match value {
            Value::Object(object) => self.object(set, ty, object),
            Value::List(items) => {
                for item in items {
                    self.value(set, ty, item);
                }
            }
            _ => {}
        }
    }

    fn object(&mut self, set: &'a SelectionSet, ty: &str, object: &mut Object) {
        let id = match object.get(ID_ALIAS) {
            Some(Value::String(id)) => Some(id.clone()),
            _ => None,
        };
        for (field, on) in self.fields(set, ty) {
            if field.selection_set.node.items.is_empty() {
                continue;
            }
            let Some(child) = self.types.field(&on, &field.name.node) else {
                continue;
            };
            let child = child.to_owned();
            if let Some(id) = &id
                && let Some((_, _, name)) = RELATIONS
                    .iter()
                    .find(|(parent, f, _)| *parent == on && *f == field.name.node.as_str())
            {
                self.tags.push(relation(id, name));
                self.tags.push(every_relation(name));
            }
            if let Some(value) = object.get_mut(field.response_key().node.as_str()) {
                self.value(&field.selection_set.node, &child, value);
            }
        }
        if let Some(id) = id {
            self.tags.push(id.into());
        }
    }
}

/// Removes the ids the augmentation selected, everywhere in `value`. An
/// object left with no field (every other one skipped by a directive)
/// becomes null, as async-graphql answers an empty selection.
fn strip_ids(value: &mut Value) {
    match value {
        Value::Object(object) => {
            if object.shift_remove(ID_ALIAS).is_some() && object.is_empty() {
                *value = Value::Null;
                return;
            }
            object.values_mut().for_each(strip_ids);
        }
        Value::List(items) => items.iter_mut().for_each(strip_ids),
        _ => {}
    }
}

/// Whether argument `name` of `field` is given a value other than null
/// (a variable without a value counts as given: tagging more is safe).
fn argument_set(field: &Field, name: &str, variables: &Variables) -> bool {
    let Some(value) = field.get_argument(name) else {
        return false;
    };
    let value = value
        .node
        .clone()
        .into_const_with(|variable| variables.get(&variable).cloned().ok_or(()));
    !matches!(value, Ok(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(query: &str, data: serde_json::Value) -> (Vec<String>, serde_json::Value) {
        let document = async_graphql::parser::parse_query(query).unwrap();
        let mut augmented = document.clone();
        augment(&mut augmented);
        let mut value = Value::from_json(data).unwrap();
        let tags = collect(&document, None, &Variables::default(), &mut value);
        (
            tags.iter().map(|t| t.to_string()).collect(),
            value.into_json().unwrap(),
        )
    }

    #[test]
    fn entities_relations_and_lists_are_tagged_and_the_added_ids_removed() {
        let query = "{ articles(first: 2, tag: \"x\") { nodes { slug ...A } } missing: user(username: \"n\") { username } }
            fragment A on Article { author { username articles(first: 1) { nodes { slug } } } }";
        let data = serde_json::json!({
            "articles": { "nodes": [{
                "slug": "a", "__cacheEntityId": "QXJ0",
                "author": { "username": "u", "__cacheEntityId": "VXNl",
                    "articles": { "nodes": [{ "slug": "a", "__cacheEntityId": "QXJ0" }] } }
            }] },
            "missing": null
        });
        let (tags, cleaned) = run(query, data);
        assert_eq!(
            tags,
            [
                "*/articles",
                "QXJ0",
                "VXNl",
                "VXNl/articles",
                "list:articles",
                "list:articles:tag",
                "lookup:user"
            ]
        );
        assert!(!cleaned.to_string().contains(ID_ALIAS), "{cleaned}");
        assert_eq!(cleaned["articles"]["nodes"][0]["author"]["username"], "u");
    }

    #[test]
    fn fragments_that_each_select_one_field_all_get_their_relations_tagged() {
        let query = "query Profile($u: String!) { ...ProfileHeader ...ProfileLists }
            fragment ProfileHeader on Query { user(username: $u) { username bio } }
            fragment ProfileLists on Query { user(username: $u) {
                followers(first: 1) { totalCount }
                articles(first: 1) { nodes { slug } }
                favoriteArticles(first: 1) { nodes { slug } } } }";
        let data = serde_json::json!({ "user": {
            "username": "u", "bio": null, "__cacheEntityId": "VXNl",
            "followers": { "totalCount": 0 },
            "articles": { "nodes": [] },
            "favoriteArticles": { "nodes": [] }
        } });
        let (tags, cleaned) = run(query, data);
        assert_eq!(
            tags,
            [
                "*/articles",
                "*/favorites",
                "*/followers",
                "VXNl",
                "VXNl/articles",
                "VXNl/favorites",
                "VXNl/followers"
            ]
        );
        assert!(!cleaned.to_string().contains(ID_ALIAS), "{cleaned}");
    }

    #[test]
    fn an_object_whose_every_field_was_skipped_is_null_as_without_the_ids() {
        let query =
            "query($skip: Boolean!) { user(username: \"u\") { username @skip(if: $skip) } }";
        let data = serde_json::json!({ "user": { "__cacheEntityId": "VXNl" } });
        let (_, cleaned) = run(query, data);
        assert_eq!(cleaned, serde_json::json!({ "user": null }));
    }

    #[test]
    fn the_executed_document_selects_ids_where_objects_have_them() {
        let mut document = async_graphql::parser::parse_query(
            "{ tags article(slug: \"s\") { title comments { body } } }",
        )
        .unwrap();
        augment(&mut document);
        let DocumentOperations::Single(op) = &document.operations else {
            panic!("one operation");
        };
        let Selection::Field(article) = &op.node.selection_set.node.items[1].node else {
            panic!("a field");
        };
        let keys: Vec<_> = article
            .node
            .selection_set
            .node
            .items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(f) => f.node.response_key().node.to_string(),
                _ => String::new(),
            })
            .collect();
        assert_eq!(keys, ["title", "comments", ID_ALIAS]);
    }

    #[test]
    fn introspection_and_the_reserved_alias_are_never_kept() {
        assert!(may_keep("{ articles { nodes { __typename slug } } }"));
        assert!(!may_keep(
            "{ __schema { types { name } } articles { nodes { slug } } }"
        ));
        assert!(!may_keep("{ __type(name: \"Article\") { name } }"));
        assert!(!may_keep("{ tags __cacheEntityId: tags }"));
    }
}
