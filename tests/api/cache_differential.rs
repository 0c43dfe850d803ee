//! The response cache against the truth: seeded-random anonymous documents,
//! generated from `schema.graphql` the way Relay and Apollo apps write
//! them, are asked of two instances with the cache on and of one with it
//! off, on one database, between seeded-random writes of every kind.
//! The instance that wrote answers as the truth does at once; the other
//! within a second.
//!
//! `CACHE_DIFF_SEED` replays a run (every run prints its seed);
//! `CACHE_DIFF_WRITES` makes it longer than CI's bounded one:
//!
//! ```sh
//! CACHE_DIFF_SEED=42 CACHE_DIFF_WRITES=2000 cargo test --test api cache_differential -- --nocapture
//! ```

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    time::{Duration, Instant},
};

use async_graphql::parser::types::{BaseType, Type, TypeKind, TypeSystemDefinition};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use serde_json::{Value, json};

use conduit::config::ResponseCacheStore;

use crate::{helpers::TestApp, response_cache::instances_with};

/// Writes in a run unless `CACHE_DIFF_WRITES` says otherwise.
const WRITES: usize = 100;
/// Documents in the pool the reads draw from (so that most reads after
/// the first ones are answered from the cache).
const DOCUMENTS: usize = 48;
/// Documents read after each write.
const READS_PER_WRITE: usize = 10;
/// How long another instance's answer is retried before it counts as a
/// difference: a bound for a bus that never hears the write, not the delay
/// promised (scripts/bench/bench.py measures that).
const OTHER_INSTANCE_DELAY: Duration = Duration::from_secs(10);

#[tokio::test]
async fn cached_answers_equal_the_uncached_ones_through_random_writes() {
    differential(ResponseCacheStore::Memory).await;
}

#[tokio::test]
async fn with_redis_cached_answers_equal_the_uncached_ones_through_random_writes() {
    differential(ResponseCacheStore::Redis).await;
}

async fn differential(store: ResponseCacheStore) {
    let seed = std::env::var("CACHE_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    let writes = std::env::var("CACHE_DIFF_WRITES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(WRITES);
    println!("cache differential ({store:?}): CACHE_DIFF_SEED={seed} CACHE_DIFF_WRITES={writes}");
    let mut rng = StdRng::seed_from_u64(seed);
    // Rate limits off: every instance keeps its own budgets, and the
    // reads here would spend them.
    let (a, b, truth) = instances_with(store, |c| c.rate_limits.points = 0).await;
    let mut world = World::seed(&a, &mut rng).await;
    let schema = Schema::load();
    let pool: Vec<Document> = (0..DOCUMENTS)
        .map(|_| Document::generate(&schema, &mut rng))
        .collect();

    let mut figures = Figures::default();
    for step in 0..writes {
        let wrote = world.write(&a, &b, &mut rng).await;
        figures.writes += 1;
        *figures.kinds.entry(wrote.kind).or_default() += 1;
        let (writer, other) = match wrote.through {
            Some(0) => (Some(&a), vec![&b]),
            Some(_) => (Some(&b), vec![&a]),
            None => (None, vec![&a, &b]),
        };
        for _ in 0..READS_PER_WRITE {
            let document = pool.choose(&mut rng).unwrap();
            let variables = document.variables(&world, &mut rng);
            let expected = answer(&truth, &document.text, &variables).await;
            figures.reads += 1;
            if let Some(error) = expected.get("errors").and_then(|e| e.get(0)) {
                figures.with_errors += 1;
                let code = error["extensions"]["code"].as_str().unwrap_or("none");
                *figures.errors.entry(code.to_owned()).or_default() += 1;
            }
            if let Some(writer) = writer {
                let got = answer(writer, &document.text, &variables).await;
                figures.comparisons += 1;
                if got != expected {
                    figures.differ(
                        seed, step, wrote.kind, "writer", document, &variables, &expected, &got,
                    );
                }
            }
            for other in &other {
                figures.comparisons += 1;
                let deadline = Instant::now() + OTHER_INSTANCE_DELAY;
                loop {
                    let got = answer(other, &document.text, &variables).await;
                    if got == expected {
                        break;
                    }
                    if Instant::now() >= deadline {
                        figures.differ(
                            seed, step, wrote.kind, "other", document, &variables, &expected, &got,
                        );
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
    let hits = a.response_cache.hits() + b.response_cache.hits();
    println!(
        "cache differential ({store:?}) seed {seed}: {} writes {:?}, {} documents, {} reads \
         ({} answered with errors: {:?}), {} comparisons, {} cache hits, {} differences",
        figures.writes,
        figures.kinds,
        pool.len(),
        figures.reads,
        figures.with_errors,
        figures.errors,
        figures.comparisons,
        hits,
        figures.differences.len(),
    );
    assert!(
        figures.differences.is_empty(),
        "{} of {} comparisons differed (CACHE_DIFF_SEED={seed}); the first:\n{}",
        figures.differences.len(),
        figures.comparisons,
        figures.differences[..figures.differences.len().min(3)].join("\n\n"),
    );
    // The run proves something only if the cache answered and the
    // documents ran.
    assert!(
        hits as usize >= figures.reads / 4,
        "only {hits} of {} reads were cache hits",
        figures.reads * 2
    );
    assert!(
        figures.with_errors * 4 < figures.reads,
        "{} of {} reads failed: the generator writes bad documents",
        figures.with_errors,
        figures.reads
    );
}

/// What a client sees of an answer.
/// What a client sees of an answer; errors in a stable order (the
/// validation reports them in no fixed one, cache or not).
async fn answer(app: &TestApp, query: &str, variables: &Value) -> Value {
    let response = app.query(query, variables.clone()).await;
    let mut body = response.body;
    if let Some(object) = body.as_object_mut() {
        object.remove("extensions");
        if let Some(Value::Array(errors)) = object.get_mut("errors") {
            errors.sort_by_key(|e| e.to_string());
        }
    }
    body
}

#[derive(Default)]
struct Figures {
    writes: usize,
    kinds: BTreeMap<&'static str, usize>,
    reads: usize,
    with_errors: usize,
    /// Reads answered with errors, by the first one's code.
    errors: BTreeMap<String, usize>,
    comparisons: usize,
    differences: Vec<String>,
}

impl Figures {
    #[allow(clippy::too_many_arguments)]
    fn differ(
        &mut self,
        seed: u64,
        step: usize,
        write: &str,
        instance: &str,
        document: &Document,
        variables: &Value,
        expected: &Value,
        got: &Value,
    ) {
        self.differences.push(format!(
            "seed {seed}, after write {step} ({write}), {instance} instance:\n{}\nvariables: {variables}\nexpected: {expected}\ngot:      {got}",
            document.text
        ));
    }
}

// ---------------------------------------------------------------------
// Documents, generated from the committed schema.

struct Field {
    name: String,
    arguments: Vec<(String, Type, bool)>,
    returns: String,
}

struct Schema {
    /// Object and interface types by name, with their fields.
    types: HashMap<String, Vec<Field>>,
    /// Interface → the object types that implement it.
    implementations: HashMap<String, Vec<String>>,
}

impl Schema {
    fn load() -> Self {
        let sdl = include_str!("../../schema.graphql");
        let document = async_graphql::parser::parse_schema(sdl).expect("schema.graphql parses");
        let mut types = HashMap::new();
        let mut implementations: HashMap<String, Vec<String>> = HashMap::new();
        for definition in document.definitions {
            let TypeSystemDefinition::Type(ty) = definition else {
                continue;
            };
            let name = ty.node.name.node.to_string();
            let (fields, implements) = match ty.node.kind {
                TypeKind::Object(o) => (o.fields, o.implements),
                TypeKind::Interface(i) => (i.fields, Vec::new()),
                _ => continue,
            };
            for interface in implements {
                implementations
                    .entry(interface.node.to_string())
                    .or_default()
                    .push(name.clone());
            }
            let fields = fields
                .into_iter()
                .map(|f| Field {
                    name: f.node.name.node.to_string(),
                    arguments: f
                        .node
                        .arguments
                        .into_iter()
                        .map(|a| {
                            let required =
                                !a.node.ty.node.nullable && a.node.default_value.is_none();
                            (a.node.name.node.to_string(), a.node.ty.node, required)
                        })
                        .collect(),
                    returns: named(&f.node.ty.node),
                })
                .collect();
            types.insert(name, fields);
        }
        Self {
            types,
            implementations,
        }
    }

    fn composite(&self, ty: &str) -> bool {
        self.types.contains_key(ty)
    }
}

fn named(ty: &Type) -> String {
    match &ty.base {
        BaseType::Named(name) => name.to_string(),
        BaseType::List(inner) => named(inner),
    }
}

/// One argument's value: what it names among the world's rows, drawn
/// when the document is asked.
#[derive(Clone, Copy, Debug)]
enum Pick {
    Slug,
    Username,
    Tag,
    PageSize,
    NodeId,
    NodeIds,
    Flag,
}

struct Document {
    text: String,
    /// Seeds of the variable sets the document is asked with (a few, so
    /// that it is asked again with the same ones and may be kept).
    variants: [u64; 2],
    /// Variables the document declares, with what they hold.
    variables: Vec<(String, Pick)>,
}

impl Document {
    fn variables(&self, world: &World, rng: &mut StdRng) -> Value {
        let mut values = StdRng::seed_from_u64(*self.variants.choose(rng).unwrap());
        let mut out = serde_json::Map::new();
        for (name, pick) in &self.variables {
            out.insert(name.clone(), world.pick(*pick, &mut values));
        }
        Value::Object(out)
    }

    fn generate(schema: &Schema, rng: &mut StdRng) -> Self {
        let mut generator = Generator {
            schema,
            rng,
            arguments: HashMap::new(),
            fragments: Vec::new(),
            variables: Vec::new(),
            declarations: Vec::new(),
            aliases: 0,
            directives: 0,
            apollo: false,
        };
        generator.apollo = generator.rng.random_bool(0.5);
        // Not `rateLimit`: each instance keeps its own budgets, so the
        // truth's differs whatever the cache does.
        let roots: Vec<&Field> = schema.types["Query"]
            .iter()
            .filter(|f| f.name != "rateLimit")
            .collect();
        let count = generator.rng.random_range(1..=3);
        let chosen: Vec<&Field> = roots
            .choose_multiple(&mut *generator.rng, count)
            .copied()
            .filter(|f| keep(f, generator.rng))
            .collect();
        let mut items = Vec::new();
        for field in chosen {
            items.extend(generator.field(field, "", 0, true));
        }
        if items.is_empty() {
            items.push("tags".to_owned());
        }
        let body = generator.colocate("Query", items);
        let mut text = String::from("query Page");
        if !generator.declarations.is_empty() {
            let _ = write!(text, "({})", generator.declarations.join(", "));
        }
        let _ = write!(text, " {{ {body} }}");
        for fragment in &generator.fragments {
            let _ = write!(text, "\n{fragment}");
        }
        Self {
            text,
            variants: [generator.rng.random(), generator.rng.random()],
            variables: generator.variables,
        }
    }
}

struct Generator<'a> {
    schema: &'a Schema,
    rng: &'a mut StdRng,
    /// Arguments by response path and field: a field selected again
    /// under the same response key (in another fragment) must repeat them.
    arguments: HashMap<String, Option<String>>,
    fragments: Vec<String>,
    variables: Vec<(String, Pick)>,
    declarations: Vec<String>,
    aliases: usize,
    directives: usize,
    /// Apollo selects `__typename` in every selection set; Relay spreads
    /// colocated fragments.
    apollo: bool,
}

/// Fields hinted private (they depend on the viewer): a document that
/// selects one is never kept, so they are chosen less often.
const PRIVATE: &[&str] = &[
    "viewer",
    "node",
    "nodes",
    "email",
    "viewerHasFavorited",
    "followedByViewer",
];

/// Whether to select `field` of those drawn: private ones one time in five.
fn keep(field: &Field, rng: &mut StdRng) -> bool {
    !PRIVATE.contains(&field.name.as_str()) || rng.random_bool(0.2)
}

/// Object fields below the root a document nests at most.
const DEPTH: usize = 3;

impl Generator<'_> {
    /// `field` selected under `path` (the response keys above it), as
    /// one or two selections (the second an alias with other arguments).
    fn field(&mut self, field: &Field, path: &str, depth: usize, alias: bool) -> Vec<String> {
        let Some(arguments) = self.arguments_of(field, path, &field.name) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let composite = self.schema.composite(&field.returns);
        let selection = |g: &mut Self, key: &str| -> String {
            let path = format!("{path}/{key}");
            if composite {
                let set = g.selection_set(&field.returns, &path, depth + 1);
                format!("{{ {set} }}")
            } else {
                String::new()
            }
        };
        let set = selection(self, &field.name);
        let directive = self.directive();
        out.push(format!("{}{arguments}{directive} {set}", field.name));
        if alias && !field.arguments.is_empty() && self.aliases < 6 && self.rng.random_bool(0.15) {
            self.aliases += 1;
            let alias = format!("{}{}", field.name, self.aliases);
            if let Some(arguments) = self.arguments_of(field, path, &alias) {
                let set = selection(self, &alias);
                out.push(format!("{alias}: {}{arguments} {set}", field.name));
            }
        }
        out
    }

    /// The arguments of `field` under response key `key` at `path`, the
    /// same each time it is asked; `None` when a required one cannot be
    /// given.
    fn arguments_of(&mut self, field: &Field, path: &str, key: &str) -> Option<String> {
        let memo = format!("{path}/{key}#{}", field.name);
        if let Some(known) = self.arguments.get(&memo) {
            return known.clone();
        }
        let mut given = Vec::new();
        let mut paged = false;
        for (name, ty, required) in &field.arguments {
            let pick = match name.as_str() {
                "slug" => Some(Pick::Slug),
                "username" | "author" | "favoritedBy" => Some(Pick::Username),
                "tag" => Some(Pick::Tag),
                "first" | "last" if !paged => Some(Pick::PageSize),
                "id" => Some(Pick::NodeId),
                "ids" => Some(Pick::NodeIds),
                _ => None,
            };
            let Some(pick) = pick else {
                if *required {
                    self.arguments.insert(memo, None);
                    return None;
                }
                continue;
            };
            if !required && !self.rng.random_bool(0.5) {
                continue;
            }
            paged |= matches!(pick, Pick::PageSize);
            let value = if self.rng.random_bool(0.4) {
                let variable = format!("v{}", self.variables.len());
                self.declarations.push(format!("${variable}: {ty}"));
                self.variables.push((variable.clone(), pick));
                format!("${variable}")
            } else {
                literal(pick, self.rng)
            };
            given.push(format!("{name}: {value}"));
        }
        let text = if given.is_empty() {
            String::new()
        } else {
            format!("({})", given.join(", "))
        };
        self.arguments.insert(memo, Some(text.clone()));
        Some(text)
    }

    /// Sometimes `@include` or `@skip` on a variable.
    fn directive(&mut self) -> String {
        if !self.rng.random_bool(0.1) {
            return String::new();
        }
        let variable = format!("v{}", self.variables.len());
        self.declarations.push(format!("${variable}: Boolean!"));
        self.variables.push((variable.clone(), Pick::Flag));
        self.directives += 1;
        let name = if self.rng.random_bool(0.5) {
            "include"
        } else {
            "skip"
        };
        format!(" @{name}(if: ${variable})")
    }

    /// A selection set on `ty` at `path`.
    fn selection_set(&mut self, ty: &str, path: &str, depth: usize) -> String {
        let schema = self.schema;
        let mut items = Vec::new();
        if self.apollo {
            items.push("__typename".to_owned());
        }
        if let Some(implementations) = schema.implementations.get(ty) {
            // An interface: its own fields and fragments on what
            // implements it.
            items.push("id".to_owned());
            for object in implementations {
                if self.rng.random_bool(0.6) {
                    let set = self.selection_set(object, path, depth);
                    items.push(format!("... on {object} {{ {set} }}"));
                }
            }
            return items.join(" ");
        }
        let directives = self.directives;
        let (leaves, objects): (Vec<&Field>, Vec<&Field>) = schema.types[ty]
            .iter()
            .partition(|f| !schema.composite(&f.returns));
        let count = self.rng.random_range(1..=3).min(leaves.len());
        let drawn: Vec<&Field> = leaves.choose_multiple(self.rng, count).copied().collect();
        for field in drawn {
            if keep(field, self.rng) {
                items.extend(self.field(field, path, depth, true));
            }
        }
        if depth < DEPTH {
            let count = self.rng.random_range(0..=2).min(objects.len());
            let drawn: Vec<&Field> = objects.choose_multiple(self.rng, count).copied().collect();
            for field in drawn {
                if keep(field, self.rng) {
                    items.extend(self.field(field, path, depth, true));
                }
            }
        }
        // A field no directive can skip: async-graphql answers an object
        // whose every field was skipped with null, and a response key
        // selected twice with the first answer that arrives (so null or
        // not by chance, cache or no cache).
        if items.is_empty() || (self.directives > directives && !self.apollo) {
            items.push("__typename".to_owned());
        }
        let set = self.colocate(ty, items);
        // The same field again, in a fragment of its own, with another
        // selection under the same response key.
        if depth < DEPTH
            && self.rng.random_bool(0.3)
            && let Some(field) = objects.choose(self.rng).copied()
            && let Some(first) = self.field(field, path, depth, false).into_iter().next()
        {
            let name = self.fragment(ty, first);
            return format!("{set} ...{name}");
        }
        set
    }

    /// `items` as they are, or split between colocated fragments as a
    /// Relay app writes them.
    fn colocate(&mut self, ty: &str, mut items: Vec<String>) -> String {
        if items.len() < 2 || !self.rng.random_bool(0.35) {
            return items.join(" ");
        }
        let split = self.rng.random_range(1..items.len());
        let rest = items.split_off(split);
        let first = self.fragment(ty, items.join(" "));
        if self.rng.random_bool(0.5) {
            let second = self.fragment(ty, rest.join(" "));
            format!("...{first} ...{second}")
        } else {
            format!("...{first} ... {{ {} }}", rest.join(" "))
        }
    }

    fn fragment(&mut self, ty: &str, body: String) -> String {
        let name = format!("F{}", self.fragments.len());
        self.fragments
            .push(format!("fragment {name} on {ty} {{ {body} }}"));
        name
    }
}

fn literal(pick: Pick, rng: &mut StdRng) -> String {
    match pick {
        Pick::PageSize => rng.random_range(1..=3).to_string(),
        // Literals name the seeded rows and some that never exist; what
        // the writes make is reached through variables.
        Pick::Slug => format!(
            "\"{}\"",
            ["seed-0", "seed-1", "nothing-here"].choose(rng).unwrap()
        ),
        Pick::Username => format!(
            "\"{}\"",
            ["ann", "bob", "u7", "nobody"].choose(rng).unwrap()
        ),
        Pick::Tag => format!("\"{}\"", TAGS.choose(rng).unwrap()),
        Pick::NodeId => format!("\"{}\"", nobody()),
        Pick::NodeIds => format!("[\"{}\"]", nobody()),
        Pick::Flag => rng.random_bool(0.5).to_string(),
    }
}

/// The global id of an article that never existed.
fn nobody() -> String {
    conduit::graphql::types::global_id::encode("Article", uuid::Uuid::nil()).0
}

// ---------------------------------------------------------------------
// The world the writes change, as the test knows it.

const TAGS: &[&str] = &["rust", "go", "sql", "cache", "web"];

struct Person {
    name: String,
    token: String,
    id: String,
    deleted: bool,
}

struct Post {
    id: String,
    slug: String,
    author: usize,
}

struct Note {
    id: String,
    author: usize,
    /// The article's id.
    on: String,
}

struct World {
    people: Vec<Person>,
    posts: Vec<Post>,
    notes: Vec<Note>,
    /// Every slug and username there has ever been (lookups of gone ones
    /// must find nothing, at once).
    slugs: Vec<String>,
    names: Vec<String>,
    made: usize,
}

/// A write: its kind and the instance it went through (`None`: straight
/// to the database, as an operator or a retention job does).
struct Wrote {
    kind: &'static str,
    through: Option<usize>,
}

impl World {
    async fn seed(app: &TestApp, rng: &mut StdRng) -> Self {
        let mut world = Self {
            people: Vec::new(),
            posts: Vec::new(),
            notes: Vec::new(),
            slugs: Vec::new(),
            names: Vec::new(),
            made: 0,
        };
        for name in ["ann", "bob", "cat", "dan"] {
            world.join(app, name).await;
        }
        for i in 0..2 {
            let author = i % world.people.len();
            let token = world.people[author].token.clone();
            let tags: Vec<&str> = TAGS.choose_multiple(rng, 2).copied().collect();
            let article = app
                .create_article(&token, &format!("Seed {i}"), &tags)
                .await;
            world.posted(&article, author);
        }
        world
    }

    async fn join(&mut self, app: &TestApp, name: &str) {
        let session = app.signed_in_user(name).await;
        let id = app.user_id(name).await;
        self.people.push(Person {
            name: name.to_owned(),
            token: session.token,
            id,
            deleted: false,
        });
        self.names.push(name.to_owned());
    }

    fn posted(&mut self, article: &Value, author: usize) {
        let slug = article["slug"].as_str().unwrap().to_owned();
        self.slugs.push(slug.clone());
        self.posts.push(Post {
            id: article["id"].as_str().unwrap().to_owned(),
            slug,
            author,
        });
    }

    fn pick(&self, pick: Pick, rng: &mut StdRng) -> Value {
        match pick {
            Pick::PageSize => json!(rng.random_range(1..=3)),
            Pick::Flag => json!(rng.random_bool(0.5)),
            Pick::Tag => json!(TAGS.choose(rng).unwrap()),
            Pick::Slug => match self.slugs.choose(rng) {
                Some(slug) if rng.random_bool(0.9) => json!(slug),
                _ => json!("nothing-here"),
            },
            // Sometimes a name nobody has yet: the next account made.
            Pick::Username => match self.names.choose(rng) {
                Some(name) if rng.random_bool(0.85) => json!(name),
                _ => json!(format!("u{}", self.made)),
            },
            Pick::NodeId => json!(self.node_id(rng)),
            Pick::NodeIds => {
                let count = rng.random_range(1..=3);
                json!((0..count).map(|_| self.node_id(rng)).collect::<Vec<_>>())
            }
        }
    }

    fn node_id(&self, rng: &mut StdRng) -> String {
        match rng.random_range(0..3) {
            0 if !self.posts.is_empty() => self.posts.choose(rng).unwrap().id.clone(),
            1 if !self.notes.is_empty() => self.notes.choose(rng).unwrap().id.clone(),
            _ => self.people.choose(rng).unwrap().id.clone(),
        }
    }

    fn someone(&self, rng: &mut StdRng) -> usize {
        let living: Vec<usize> = (0..self.people.len())
            .filter(|&i| !self.people[i].deleted)
            .collect();
        *living.choose(rng).unwrap()
    }

    /// One seeded-random write, through instance `a` or `b`, or straight
    /// to the database.
    async fn write(&mut self, a: &TestApp, b: &TestApp, rng: &mut StdRng) -> Wrote {
        let through = rng.random_range(0..2);
        let app = if through == 0 { a } else { b };
        let who = self.someone(rng);
        let token = self.people[who].token.clone();
        let roll = rng.random_range(0..100);
        let kind = match roll {
            0..=4 => {
                let name = format!("u{}", self.made);
                self.made += 1;
                self.join(app, &name).await;
                "createUser"
            }
            5..=11 => {
                let input = match rng.random_range(0..3) {
                    0 => json!({ "bio": format!("bio {}", rng.random::<u16>()) }),
                    1 => {
                        json!({ "image": format!("https://img.example/{}.png", rng.random::<u16>()) })
                    }
                    _ => {
                        let name = format!("{}r{}", self.people[who].name, rng.random::<u16>());
                        self.names.push(name.clone());
                        self.people[who].name = name.clone();
                        json!({ "username": name })
                    }
                };
                mutate(
                    app,
                    &token,
                    "updateUser(input: $input) { errors { code } }",
                    "UpdateUserInput!",
                    input,
                )
                .await;
                "updateUser"
            }
            12..=23 => {
                let count = rng.random_range(0..=3);
                let tags: Vec<&str> = TAGS.choose_multiple(rng, count).copied().collect();
                let title = format!("Post {}", rng.random::<u32>());
                let data = mutate(
                    app,
                    &token,
                    "createArticle(input: $input) { article { id slug } errors { code } }",
                    "CreateArticleInput!",
                    json!({ "title": title, "description": "d", "body": "b", "tagList": tags }),
                )
                .await;
                let article = &data["createArticle"]["article"];
                if article.is_object() {
                    self.posted(article, who);
                }
                "createArticle"
            }
            24..=33 => {
                let Some(index) = self.own_post(who, rng) else {
                    return Box::pin(self.write(a, b, rng)).await;
                };
                let mut input = json!({ "id": self.posts[index].id });
                if rng.random_bool(0.5) {
                    input["title"] = json!(format!("Edited {}", rng.random::<u32>()));
                }
                if rng.random_bool(0.5) {
                    let count = rng.random_range(0..=3);
                    input["tagList"] = json!(TAGS.choose_multiple(rng, count).collect::<Vec<_>>());
                }
                if rng.random_bool(0.3) {
                    input["body"] = json!("new body");
                }
                let data = mutate(
                    app,
                    &token,
                    "updateArticle(input: $input) { article { slug } errors { code } }",
                    "UpdateArticleInput!",
                    input,
                )
                .await;
                if let Some(slug) = data["updateArticle"]["article"]["slug"].as_str() {
                    self.posts[index].slug = slug.to_owned();
                    self.slugs.push(slug.to_owned());
                }
                "updateArticle"
            }
            34..=39 => {
                let Some(index) = self.own_post(who, rng) else {
                    return Box::pin(self.write(a, b, rng)).await;
                };
                let id = self.posts[index].id.clone();
                mutate(
                    app,
                    &token,
                    "deleteArticle(input: $input) { article { id } }",
                    "DeleteArticleInput!",
                    json!({ "id": id }),
                )
                .await;
                let gone = self.posts.remove(index);
                self.notes.retain(|n| n.on != gone.id);
                "deleteArticle"
            }
            40..=54 => {
                let Some(post) = self.posts.choose(rng) else {
                    return Box::pin(self.write(a, b, rng)).await;
                };
                let (field, ty, kind) = if rng.random_bool(0.6) {
                    (
                        "favoriteArticle",
                        "FavoriteArticleInput!",
                        "favoriteArticle",
                    )
                } else {
                    (
                        "unfavoriteArticle",
                        "UnfavoriteArticleInput!",
                        "unfavoriteArticle",
                    )
                };
                mutate(
                    app,
                    &token,
                    &format!("{field}(input: $input) {{ clientMutationId }}"),
                    ty,
                    json!({ "id": post.id }),
                )
                .await;
                kind
            }
            55..=66 => {
                let Some(post) = self.posts.choose(rng).map(|p| p.id.clone()) else {
                    return Box::pin(self.write(a, b, rng)).await;
                };
                let data = mutate(
                    app,
                    &token,
                    "addComment(input: $input) { comment { id } errors { code } }",
                    "AddCommentInput!",
                    json!({ "articleId": post, "body": format!("comment {}", rng.random::<u16>()) }),
                )
                .await;
                if let Some(id) = data["addComment"]["comment"]["id"].as_str() {
                    self.notes.push(Note {
                        id: id.to_owned(),
                        author: who,
                        on: post,
                    });
                }
                "addComment"
            }
            67..=71 => {
                let own: Vec<usize> = (0..self.notes.len())
                    .filter(|&i| self.notes[i].author == who)
                    .collect();
                let Some(&index) = own.choose(rng) else {
                    return Box::pin(self.write(a, b, rng)).await;
                };
                let id = self.notes.remove(index).id;
                mutate(
                    app,
                    &token,
                    "deleteComment(input: $input) { comment { id } }",
                    "DeleteCommentInput!",
                    json!({ "id": id }),
                )
                .await;
                "deleteComment"
            }
            72..=87 => {
                let whom = self.someone(rng);
                let id = self.people[whom].id.clone();
                let (field, ty, kind) = if rng.random_bool(0.6) {
                    ("followUser", "FollowUserInput!", "followUser")
                } else {
                    ("unfollowUser", "UnfollowUserInput!", "unfollowUser")
                };
                mutate(
                    app,
                    &token,
                    &format!("{field}(input: $input) {{ clientMutationId }}"),
                    ty,
                    json!({ "id": id }),
                )
                .await;
                kind
            }
            88..=91 => {
                // An operator deletes an account (never the seeded ones,
                // which keep the run writing).
                if who < 4 {
                    return Box::pin(self.write(a, b, rng)).await;
                }
                let name = self.people[who].name.clone();
                a.db.execute(&format!(
                    "UPDATE users SET deleted_at = now() WHERE username = '{name}'"
                ))
                .await;
                self.people[who].deleted = true;
                let gone: Vec<String> = self
                    .posts
                    .iter()
                    .filter(|p| p.author == who)
                    .map(|p| p.id.clone())
                    .collect();
                self.posts.retain(|p| p.author != who);
                self.notes
                    .retain(|n| n.author != who && !gone.contains(&n.on));
                return Wrote {
                    kind: "deleteAccount (SQL)",
                    through: None,
                };
            }
            _ => {
                // Retention removes what was deleted, and what a removed
                // account owned, for good.
                conduit::services::retention::soft_deleted(&a.state.db, 0, 500)
                    .await
                    .expect("retention purges");
                return Wrote {
                    kind: "retention purge",
                    through: None,
                };
            }
        };
        Wrote {
            kind,
            through: Some(through),
        }
    }

    fn own_post(&self, who: usize, rng: &mut StdRng) -> Option<usize> {
        let own: Vec<usize> = (0..self.posts.len())
            .filter(|&i| self.posts[i].author == who)
            .collect();
        own.choose(rng).copied()
    }
}

/// Runs mutation `field` with `$input: ty`; an error in `errors` is part
/// of what is compared after, not a failure of the test.
async fn mutate(app: &TestApp, token: &str, field: &str, ty: &str, input: Value) -> Value {
    let query = format!("mutation($input: {ty}) {{ {field} }}");
    let response = app.query_as(token, &query, json!({ "input": input })).await;
    assert!(
        response.body["errors"].is_null(),
        "{query}: {}",
        response.body
    );
    response.body["data"].clone()
}
