//! The definitions file: its TOML shape, loading, validation and the built-in defaults.
//!
//! Loading never stops at the first mistake: every error in the file is collected, each pointing at its line and
//! column, so an operator fixes a file in one pass. A file with any error never starts a scan.

use super::filter::Filter;
use super::lists::{parse_entry, AddrList, ListSet, PortList};
use super::rule::{parse_window, CountSpec, KeySpec, Rule, Severity};
use super::source_error::{SourceError, SourceErrors};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The definitions shipped with flowsketch, used when no `--rules` file is given.
pub const DEFAULT_TOML: &str = include_str!("defaults.toml");

/// A loaded, validated definitions file.
#[derive(Debug, Clone)]
pub struct Definitions {
    /// The definitions' own version, printed in every report.
    pub version: String,
    /// Where they came from: a path, or `built-in`.
    pub origin: String,
    pub lists: ListSet,
    /// Rules that can fire.
    pub rules: Vec<Rule>,
    /// Rules that cannot fire because a list they need is empty, with the reason (said once per run).
    pub inactive: Vec<(String, String)>,
}

impl Definitions {
    /// The built-in defaults.
    pub fn builtin() -> Definitions {
        match Definitions::parse(DEFAULT_TOML, "built-in", None) {
            Ok(d) => d,
            // The defaults are tested; failing here is a bug in the shipped file, not user input.
            Err(e) => panic!("built-in definitions are invalid:\n{e}"),
        }
    }

    /// Load a definitions file; relative `file:` lists are found beside it.
    pub fn load(path: &Path) -> Result<Definitions, SourceErrors> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            SourceErrors(vec![SourceError::whole_file(
                &origin,
                format!("cannot read definitions file: {e}"),
            )])
        })?;
        let base = path.parent().map(Path::to_path_buf);
        Definitions::parse(&text, &origin, base.as_deref())
    }

    /// Parse definitions from text. `base` is the folder `file:` lists are relative to.
    pub fn parse(
        text: &str,
        origin: &str,
        base: Option<&Path>,
    ) -> Result<Definitions, SourceErrors> {
        let model: FileModel = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            SourceErrors(vec![SourceError::at(
                origin,
                text,
                offset,
                e.message().trim_end().to_string(),
            )])
        })?;
        Loader {
            text,
            origin,
            base: base.map(Path::to_path_buf),
            errors: Vec::new(),
        }
        .build(model)
    }

    /// A rule by id, active or not.
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }
}

// ---- The file's shape, as serde reads it. ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileModel {
    version: Option<Spanned<String>>,
    #[serde(default)]
    lists: BTreeMap<Spanned<String>, Spanned<ListValue>>,
    #[serde(default)]
    ports: BTreeMap<Spanned<String>, Spanned<Vec<PortValue>>>,
    #[serde(default, rename = "rule")]
    rules: Vec<RuleModel>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ListValue {
    /// `"builtin:bogons"`, `"file:feed.txt"` or one address entry.
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PortValue {
    Number(i64),
    /// `"1024-65535"` or `"file:ports.txt"`.
    Text(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WindowValue {
    Seconds(i64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleModel {
    id: Spanned<String>,
    name: Option<String>,
    about: Option<String>,
    #[serde(rename = "where")]
    filter: Option<Spanned<String>>,
    key: Spanned<String>,
    count: Spanned<String>,
    above: Spanned<i64>,
    window: Option<Spanned<WindowValue>>,
    severity: Option<Spanned<String>>,
}

// ---- Validation. ----

struct Loader<'a> {
    text: &'a str,
    origin: &'a str,
    base: Option<PathBuf>,
    errors: Vec<SourceError>,
}

impl Loader<'_> {
    fn error(&mut self, offset: usize, message: impl Into<String>) {
        self.errors
            .push(SourceError::at(self.origin, self.text, offset, message));
    }

    /// Offset of the first occurrence of `needle` inside `span`, or the span's start.
    fn find_in(&self, span: Range<usize>, needle: &str) -> usize {
        self.text
            .get(span.clone())
            .and_then(|s| s.find(needle))
            .map_or(span.start, |i| span.start + i)
    }

    fn build(mut self, model: FileModel) -> Result<Definitions, SourceErrors> {
        let version = model
            .version
            .map(|v| v.into_inner())
            .unwrap_or_else(|| "unversioned".to_string());
        let mut lists = ListSet::default();
        for (name, value) in model.lists {
            let span = value.span();
            if let Some(list) = self.addr_list(name.get_ref(), value.get_ref(), span) {
                lists.addrs.insert(name.into_inner(), list);
            }
        }
        for (name, value) in model.ports {
            let span = value.span();
            if lists.addrs.contains_key(name.get_ref()) {
                self.error(
                    name.span().start,
                    format!(
                        "'{}' is both an address list and a port list",
                        name.get_ref()
                    ),
                );
                continue;
            }
            if let Some(list) = self.port_list(value.get_ref(), span) {
                lists.ports.insert(name.into_inner(), list);
            }
        }
        let mut rules = Vec::new();
        let mut inactive = Vec::new();
        let mut seen: BTreeMap<String, ()> = BTreeMap::new();
        for r in model.rules {
            if seen.insert(r.id.get_ref().clone(), ()).is_some() {
                self.error(
                    r.id.span().start,
                    format!("rule id '{}' is used twice", r.id.get_ref()),
                );
            }
            if let Some(rule) = self.rule(&r, &lists) {
                match empty_required_list(&r, &lists) {
                    Some(list) => inactive.push((
                        rule.id.clone(),
                        format!("inactive: list @{list} is empty; fill it in the definitions file"),
                    )),
                    None => rules.push(rule),
                }
            }
        }
        if self.errors.is_empty() {
            Ok(Definitions {
                version,
                origin: self.origin.to_string(),
                lists,
                rules,
                inactive,
            })
        } else {
            Err(SourceErrors(self.errors))
        }
    }

    fn rule(&mut self, r: &RuleModel, lists: &ListSet) -> Option<Rule> {
        let before = self.errors.len();
        let id = r.id.get_ref().trim().to_string();
        if id.is_empty() || id.contains(char::is_whitespace) {
            self.error(
                r.id.span().start,
                "expected a rule id without spaces, like FS1",
            );
        }
        let key = r
            .key
            .get_ref()
            .parse::<KeySpec>()
            .map_err(|e| self.error(r.key.span().start, e))
            .ok();
        let count = r
            .count
            .get_ref()
            .parse::<CountSpec>()
            .map_err(|e| self.error(r.count.span().start, e))
            .ok();
        let above = *r.above.get_ref();
        if above < 0 {
            self.error(
                r.above.span().start,
                format!("expected a threshold of 0 or more; found {above}"),
            );
        }
        let severity = match &r.severity {
            None => Some(Severity::Medium),
            Some(s) => s
                .get_ref()
                .parse::<Severity>()
                .map_err(|e| self.error(s.span().start, e))
                .ok(),
        };
        let window_ms = match &r.window {
            None => Some(None),
            Some(w) => match w.get_ref() {
                WindowValue::Seconds(s) if *s > 0 => Some(Some(*s as u64 * 1000)),
                WindowValue::Seconds(s) => {
                    self.error(
                        w.span().start,
                        format!("expected a window longer than 0; found {s}"),
                    );
                    None
                }
                WindowValue::Text(t) => parse_window(t)
                    .map(Some)
                    .map_err(|e| self.error(w.span().start, e))
                    .ok(),
            },
        };
        let filter = match &r.filter {
            None => Some(Filter::any()),
            Some(w) => match Filter::parse(w.get_ref(), lists) {
                Ok(f) => Some(f),
                Err(e) => {
                    // The expression sits inside a quoted string: point into it.
                    let offset = w.span().start + 1 + e.pos;
                    self.error(offset, e.message);
                    None
                }
            },
        };
        if self.errors.len() > before {
            return None;
        }
        Some(Rule {
            name: r.name.clone().unwrap_or_else(|| id.clone()),
            about: r.about.clone().unwrap_or_default(),
            id,
            severity: severity?,
            filter: filter?,
            key: key?,
            count: count?,
            above: above as u64,
            window_ms: window_ms?,
        })
    }

    fn addr_list(&mut self, name: &str, value: &ListValue, span: Range<usize>) -> Option<AddrList> {
        let entries: Vec<&str> = match value {
            ListValue::One(s) => vec![s.as_str()],
            ListValue::Many(v) => v.iter().map(String::as_str).collect(),
        };
        let mut intervals = Vec::new();
        let mut parts = Vec::new();
        let mut ok = true;
        for entry in entries {
            let result = if let Some(file) = entry.strip_prefix("file:") {
                let path = self.resolve(file);
                AddrList::from_file(&path)
                    .map(|l| parts.push(l))
                    .map_err(|e| e.to_string())
            } else if entry.starts_with("builtin:") {
                AddrList::from_source(entry, Path::new("."))
                    .map(|l| parts.push(l))
                    .map_err(|e| e.message)
            } else {
                parse_entry(entry, &mut intervals)
            };
            if let Err(e) = result {
                let at = self.find_in(span.clone(), entry);
                self.error(at, format!("in list '{name}': {e}"));
                ok = false;
            }
        }
        parts.push(AddrList::from_intervals(intervals));
        ok.then(|| AddrList::union(&parts.iter().collect::<Vec<_>>()))
    }

    fn port_list(&mut self, values: &[PortValue], span: Range<usize>) -> Option<PortList> {
        let entries: Vec<String> = values
            .iter()
            .map(|v| match v {
                PortValue::Number(n) => n.to_string(),
                PortValue::Text(t) => t.clone(),
            })
            .collect();
        let located: Vec<(&str, usize)> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.as_str(), i))
            .collect();
        match PortList::parse_entries(&located) {
            Ok(list) => Some(list),
            Err(e) => {
                let at = self.find_in(span, &e.entry);
                self.error(at, e.message);
                None
            }
        }
    }

    fn resolve(&self, file: &str) -> PathBuf {
        let p = Path::new(file);
        match &self.base {
            Some(base) if p.is_relative() => base.join(p),
            _ => p.to_path_buf(),
        }
    }
}

/// A list the rule needs to be non-empty to ever match: one it references outside any `not`.
fn empty_required_list(r: &RuleModel, lists: &ListSet) -> Option<String> {
    let text = r.filter.as_ref()?.get_ref();
    positive_list_refs(text)
        .into_iter()
        .find(|name| lists.is_empty_list(name))
}

/// Names referenced as `@name` that are not negated by a `not`/`!` before their clause. Negation inside
/// parentheses is tracked by depth, so `not (a or src in @x)` counts @x as negated.
fn positive_list_refs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    // negated[d] is whether the group at depth d is under a `not`.
    let mut negated = vec![false];
    let mut pending_not = false;
    let tokens = tokenize(text);
    for tok in tokens {
        match tok.as_str() {
            "(" => {
                let outer = *negated.last().unwrap_or(&false);
                negated.push(outer ^ pending_not);
                pending_not = false;
            }
            ")" if negated.len() > 1 => {
                negated.pop();
            }
            "not" | "!" => pending_not = !pending_not,
            "and" | "or" | "&&" | "||" => pending_not = false,
            t if t.starts_with('@') => {
                let under_not = *negated.last().unwrap_or(&false) ^ pending_not;
                if !under_not {
                    out.push(t[1..].to_string());
                }
            }
            _ => {}
        }
    }
    out
}

fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        if c == '(' || c == ')' || c == '!' {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur).to_lowercase());
            }
            out.push(c.to_string());
        } else if c.is_whitespace() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur).to_lowercase());
            }
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        out.push(cur.to_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_defaults_load_with_every_sign() {
        let d = Definitions::builtin();
        assert_eq!(d.version, "2026.11.1");
        let active: Vec<&str> = d.rules.iter().map(|r| r.id.as_str()).collect();
        let inactive: Vec<&str> = d.inactive.iter().map(|(id, _)| id.as_str()).collect();
        // FS3 and FS5 need the site's own lists; everything else is ready to fire.
        assert_eq!(inactive, ["FS3", "FS5"]);
        assert_eq!(active, ["FS1", "FS2", "FS4", "FS6", "FS7", "FS8"]);
        let fs1 = d.rule("FS1").unwrap();
        assert_eq!(fs1.key, KeySpec::SRC);
        assert_eq!(fs1.above, 100);
    }

    #[test]
    fn positive_references_ignore_negated_clauses() {
        assert_eq!(
            positive_list_refs("src in @managed and not src in @dhcp and not src in @static"),
            ["managed"]
        );
        assert!(positive_list_refs("not ip in @trusted").is_empty());
        assert!(positive_list_refs("not (proto udp or src in @x)").is_empty());
        assert_eq!(positive_list_refs("!(!(src in @x))"), ["x"]);
        assert_eq!(
            positive_list_refs("src in @p and not dst port in @ports"),
            ["p"]
        );
    }

    #[test]
    fn every_error_in_a_file_is_reported_with_its_line() {
        let text = r#"version = "t"
[[rule]]
id = "A"
key = "peer"
count = "flows"
above = 1

[[rule]]
id = "B"
key = "src"
count = "distinct hosts"
above = -3
severity = "urgent"
"#;
        let errs = Definitions::parse(text, "site.toml", None).unwrap_err().0;
        let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, [4, 11, 12, 13], "{errs:?}");
        assert!(errs[0].message.contains("src, dst or host"));
    }

    #[test]
    fn unknown_fields_and_duplicate_ids_are_errors() {
        let text =
            "[[rule]]\nid = \"A\"\nkey = \"src\"\ncount = \"flows\"\nabove = 1\nthreshold = 3\n";
        let errs = Definitions::parse(text, "f.toml", None).unwrap_err().0;
        assert_eq!(errs[0].line, 6, "{errs:?}");
        assert!(errs[0].message.contains("threshold"), "{errs:?}");
        let text = "[[rule]]\nid = \"A\"\nkey = \"src\"\ncount = \"flows\"\nabove = 1\n\n[[rule]]\nid = \"A\"\nkey = \"src\"\ncount = \"flows\"\nabove = 2\n";
        let errs = Definitions::parse(text, "f.toml", None).unwrap_err().0;
        assert_eq!(errs[0].line, 8);
        assert!(errs[0].message.contains("used twice"));
    }
}
