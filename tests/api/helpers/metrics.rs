//! The server's `/metrics`, read by value. The recorder is the process's,
//! shared by every test running in it, so a test never asks whether a
//! series exists (another test may have made it): it reads a counter
//! before and after what it does and checks the difference, on a label
//! only it uses where the metric has one.

use std::collections::BTreeMap;

use super::TestApp;

/// One scrape of `/metrics`: every sample, by name and labels.
#[derive(Debug)]
pub struct Metrics {
    samples: Vec<Sample>,
    text: String,
}

#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

impl Metrics {
    /// Parses the Prometheus text format (comments skipped; label values
    /// as the exporter writes them, with `\"` and `\\` escaped).
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| parse_sample(line).unwrap_or_else(|| panic!("a sample: {line}")))
            .collect();
        Self {
            samples,
            text: text.to_owned(),
        }
    }

    /// The sum of the samples named `name` whose labels include every one
    /// of `labels`; 0 when there is none (a counter not yet counted).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|got| got == v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// Whether any sample is named `name` (for gauges, which every server
    /// of the process sets).
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }

    /// The scrape as it came, for failure messages.
    pub fn text(&self) -> &str {
        &self.text
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let Some((name, rest)) = series.split_once('{') else {
        return Some(Sample {
            name: series.to_owned(),
            labels: BTreeMap::new(),
            value,
        });
    };
    let mut labels = BTreeMap::new();
    let mut rest = rest.strip_suffix('}')?;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let mut label = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => label.push(chars.next()?.1),
                (i, '"') => break i,
                (_, c) => label.push(c),
            }
        };
        labels.insert(key.to_owned(), label);
        rest = after[end + 1..].trim_start_matches(',');
    }
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

impl TestApp {
    /// `/metrics`, parsed.
    pub async fn scrape(&self) -> Metrics {
        Metrics::parse(&self.metrics().await)
    }
}

#[test]
fn samples_are_read_by_name_and_labels() {
    let metrics = Metrics::parse(
        "# TYPE jobs_total counter\n\
         jobs_total{kind=\"a.b\",outcome=\"failed\"} 2\n\
         jobs_total{kind=\"a.b\",outcome=\"retried\"} 3\n\
         jobs_total{kind=\"say \\\"hi\\\"\",outcome=\"failed\"} 5\n\
         db_statements_total 7\n\
         h_bucket{operation=\"X\",le=\"+Inf\"} 4\n",
    );
    assert_eq!(
        metrics.value("jobs_total", &[("kind", "a.b"), ("outcome", "failed")]),
        2.0
    );
    assert_eq!(metrics.value("jobs_total", &[("kind", "a.b")]), 5.0);
    assert_eq!(metrics.value("jobs_total", &[("kind", "say \"hi\"")]), 5.0);
    assert_eq!(metrics.value("jobs_total", &[("kind", "none")]), 0.0);
    assert_eq!(metrics.value("db_statements_total", &[]), 7.0);
    assert_eq!(metrics.value("h_bucket", &[("le", "+Inf")]), 4.0);
    assert!(metrics.has("db_statements_total"));
    assert!(!metrics.has("nothing"));
}
