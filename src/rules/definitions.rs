//! The definitions file: its TOML shape, loading, validation and the built-in defaults.
//!
//! Loading never stops at the first mistake: every error in the file is collected, each pointing at its line and
//! column, so an operator fixes a file in one pass. A file with any error never starts a scan.

use super::filter::Filter;
use super::lists::{parse_entry, AddrList, ListSet, PortList};
use super::rule::{parse_window, CountSpec, GroupAbove, KeySpec, Rule, Severity, Window};
use super::source_error::{SourceError, SourceErrors};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
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
    ///
    /// A rule whose filter can never match because a list it needs is empty is set aside as inactive, with the
    /// reason:
    ///
    /// ```
    /// use flowsketch::rules::Definitions;
    ///
    /// let text = r#"
    ///     version = "site.1"
    ///     [lists]
    ///     proxies = []
    ///     [[rule]]
    ///     id = "P1"
    ///     where = "src in @proxies and not dst port 443"
    ///     key = "src"
    ///     count = "flows"
    ///     above = 0
    /// "#;
    /// let defs = Definitions::parse(text, "site.toml", None).unwrap();
    /// assert!(defs.rules.is_empty());
    /// assert_eq!(defs.inactive[0].0, "P1");
    /// assert!(defs.inactive[0].1.contains("list @proxies is empty"));
    /// ```
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
    /// Thresholds by list, `{ "@servers" = 5000 }`: values are read as any TOML value and checked here, so a
    /// wrong one is an error with its place like every other, not the end of the reading.
    above_for: Option<BTreeMap<Spanned<String>, Spanned<toml::Value>>>,
    flows_above: Option<Spanned<i64>>,
    window: Option<Spanned<WindowValue>>,
    step: Option<Spanned<WindowValue>>,
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

    /// Offset of an entry inside a list's span: the quoted string when it is one, else a number that stands
    /// alone (so port `80` is not found inside `8080`).
    fn find_entry(&self, span: Range<usize>, entry: &str) -> usize {
        let Some(body) = self.text.get(span.clone()) else {
            return span.start;
        };
        for quote in ['"', '\''] {
            if let Some(i) = body.find(&format!("{quote}{entry}{quote}")) {
                return span.start + i + 1;
            }
        }
        let bytes = body.as_bytes();
        let standalone = body.match_indices(entry).find(|(i, m)| {
            let before = i.checked_sub(1).and_then(|j| bytes.get(j));
            let after = bytes.get(i + m.len());
            !before.is_some_and(u8::is_ascii_alphanumeric)
                && !after.is_some_and(u8::is_ascii_alphanumeric)
        });
        standalone.map_or(span.start, |(i, _)| span.start + i)
    }

    fn build(mut self, model: FileModel) -> Result<Definitions, SourceErrors> {
        let version = model
            .version
            .map(|v| v.into_inner())
            .unwrap_or_else(|| "unversioned".to_string());
        let mut lists = ListSet::default();
        for (name, value) in model.lists {
            let span = value.span();
            // A list with errors is still defined (empty), so rules that use it do not add a second,
            // misleading "unknown list" error; the file is rejected anyway.
            let list = self.addr_list(name.get_ref(), value.get_ref(), span);
            lists
                .addrs
                .insert(name.into_inner(), list.unwrap_or_default());
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
            let list = self.port_list(name.get_ref(), value.get_ref(), span);
            lists
                .ports
                .insert(name.into_inner(), list.unwrap_or_default());
        }
        let mut rules = Vec::new();
        let mut inactive = Vec::new();
        let mut seen: BTreeSet<String> = BTreeSet::new();
        for r in model.rules {
            if !seen.insert(r.id.get_ref().clone()) {
                self.error(
                    r.id.span().start,
                    format!("rule id '{}' is used twice", r.id.get_ref()),
                );
            }
            if let Some(rule) = self.rule(&r, &lists) {
                match rule.filter.blocking_lists() {
                    [] => rules.push(rule),
                    [list] => inactive.push((
                        rule.id.clone(),
                        format!("inactive: list @{list} is empty; fill it in the definitions file"),
                    )),
                    several => inactive.push((
                        rule.id.clone(),
                        format!(
                            "inactive: lists @{} are empty; fill one in the definitions file",
                            several.join(", @")
                        ),
                    )),
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
            // Lists are read by name and a rule's fields in a fixed order: report in file order instead.
            self.errors.sort_by_key(|e| (e.line, e.column));
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
        let window = self.window(r);
        let above_for = self.above_for(r, lists);
        let flows_above = match &r.flows_above {
            None => Some(0),
            Some(f) if *f.get_ref() < 0 => {
                self.error(
                    f.span().start,
                    format!("expected a flow count of 0 or more; found {}", f.get_ref()),
                );
                None
            }
            Some(f) => Some(*f.get_ref() as u64),
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
            above_for: above_for?,
            flows_above: flows_above?,
            window: window?,
        })
    }

    /// A window length or step as written: a number is seconds, as the same number written as a string, so one
    /// parser checks both.
    fn duration(&mut self, value: &Spanned<WindowValue>) -> Option<u64> {
        let text = match value.get_ref() {
            WindowValue::Seconds(s) => s.to_string(),
            WindowValue::Text(t) => t.clone(),
        };
        parse_window(&text)
            .map_err(|e| self.error(value.span().start, e))
            .ok()
    }

    /// `window` and `step`: `Some(None)` without a window, `None` after an error.
    fn window(&mut self, r: &RuleModel) -> Option<Option<Window>> {
        let Some(w) = &r.window else {
            if let Some(step) = &r.step {
                self.error(
                    step.span().start,
                    "a step needs a window: add window = \"...\" to the rule",
                );
                return None;
            }
            return Some(None);
        };
        let len = self.duration(w)?;
        let Some(step) = &r.step else {
            return Some(Some(Window::tumbling(len)));
        };
        let step_ms = self.duration(step)?;
        Window::hopping(len, step_ms)
            .map(Some)
            .map_err(|e| self.error(step.span().start, e))
            .ok()
    }

    /// `above_for`, in file order; `None` after an error.
    fn above_for(&mut self, r: &RuleModel, lists: &ListSet) -> Option<Vec<GroupAbove>> {
        let Some(table) = &r.above_for else {
            return Some(Vec::new());
        };
        let before = self.errors.len();
        // Serde reads a table into name order; the file's order is the order of the names' places.
        let mut entries: Vec<_> = table.iter().collect();
        entries.sort_by_key(|(name, _)| name.span().start);
        let mut groups = Vec::new();
        for (name, value) in entries {
            // Inside the quotes, where the name is.
            let quoted = matches!(
                self.text.as_bytes().get(name.span().start),
                Some(b'"' | b'\'')
            );
            let at = name.span().start + usize::from(quoted);
            let list = match name.get_ref().strip_prefix('@') {
                Some(list) => list,
                None => {
                    self.error(
                        at,
                        format!(
                            "expected an address list as \"@name\"; found '{}'",
                            name.get_ref()
                        ),
                    );
                    continue;
                }
            };
            let addrs = match lists.addrs.get(list) {
                Some(addrs) => addrs.clone(),
                None => {
                    let known: Vec<String> = lists.addrs.keys().map(|k| format!("@{k}")).collect();
                    let message = if lists.ports.contains_key(list) {
                        format!("expected an address list, found port list '@{list}'")
                    } else if known.is_empty() {
                        format!("expected a defined address list, found unknown '@{list}' (no address lists are defined)")
                    } else {
                        format!(
                            "expected a defined address list ({}), found unknown '@{list}'",
                            known.join(", ")
                        )
                    };
                    self.error(at, message);
                    continue;
                }
            };
            match value.get_ref() {
                toml::Value::Integer(n) if *n >= 0 => groups.push(GroupAbove {
                    list: list.to_string(),
                    addrs,
                    above: *n as u64,
                }),
                other => self.error(
                    value.span().start,
                    format!("expected a threshold of 0 or more for '@{list}'; found {other}"),
                ),
            }
        }
        (self.errors.len() == before).then_some(groups)
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
                    // A file that cannot be read has no entry to name.
                    .map_err(|e| match e.entry.is_empty() {
                        true => format!("{}: {}", e.location, e.message),
                        false => e.to_string(),
                    })
            } else if entry.starts_with("builtin:") {
                AddrList::from_source(entry, Path::new("."))
                    .map(|l| parts.push(l))
                    .map_err(|e| e.message)
            } else {
                parse_entry(entry, &mut intervals)
            };
            if let Err(e) = result {
                let at = self.find_entry(span.clone(), entry);
                self.error(at, format!("in list '{name}': {e}"));
                ok = false;
            }
        }
        parts.push(AddrList::from_intervals(intervals));
        ok.then(|| AddrList::union(&parts.iter().collect::<Vec<_>>()))
    }

    fn port_list(
        &mut self,
        name: &str,
        values: &[PortValue],
        span: Range<usize>,
    ) -> Option<PortList> {
        let entries: Vec<String> = values
            .iter()
            .map(|v| match v {
                PortValue::Number(n) => n.to_string(),
                PortValue::Text(t) => t.clone(),
            })
            .collect();
        let located: Vec<(&str, String)> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.as_str(), format!("ports.{name}[{i}]")))
            .collect();
        match PortList::parse_entries(&located) {
            Ok(list) => Some(list),
            Err(e) => {
                let at = self.find_entry(span, &e.entry);
                self.error(at, format!("in port list '{name}': {}", e.message));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_defaults_load_with_every_sign() {
        let d = Definitions::builtin();
        assert_eq!(d.version, "2026.12.1");
        let active: Vec<&str> = d.rules.iter().map(|r| r.id.as_str()).collect();
        let inactive: Vec<&str> = d.inactive.iter().map(|(id, _)| id.as_str()).collect();
        // FS3 and FS5 need the site's own lists; everything else is ready to fire.
        assert_eq!(inactive, ["FS3", "FS5"]);
        assert_eq!(active, ["FS1", "FS2", "FS4", "FS6", "FS7", "FS8", "FS9"]);
        let fs9 = d.rule("FS9").unwrap();
        assert_eq!(fs9.window, Some(Window::hopping(60_000, 10_000).unwrap()));
        assert_eq!((fs9.above, fs9.flows_above), (50, 100));
        let fs1 = d.rule("FS1").unwrap();
        assert_eq!(fs1.key, KeySpec::SRC);
        assert_eq!(fs1.above, 100);
    }

    /// The lists named as keeping `filter` from matching, with `empty` lists empty and `full` lists filled.
    fn blocker(filter: &str, empty: &[&str], full: &[&str]) -> Option<String> {
        let mut lists = ListSet::default();
        for name in empty {
            lists.insert_addrs(name, AddrList::default());
        }
        for name in full {
            let list = AddrList::parse_entries(&[("10.0.0.1", 0)]).unwrap();
            lists.insert_addrs(name, list);
        }
        lists.insert_ports("none", PortList::default());
        let names = Filter::parse(filter, &lists)
            .unwrap()
            .blocking_lists()
            .join(" ");
        (!names.is_empty()).then_some(names)
    }

    #[test]
    fn a_rule_is_inactive_only_when_an_empty_list_keeps_it_from_matching() {
        let plan = "src in @managed and not src in @dhcp and not src in @static";
        let all = ["managed", "dhcp", "static"];
        assert_eq!(blocker(plan, &all, &[]).as_deref(), Some("managed"));
        assert_eq!(blocker(plan, &["dhcp", "static"], &["managed"]), None);
        assert_eq!(blocker("not ip in @trusted", &["trusted"], &[]), None);
        assert_eq!(blocker("not (proto udp or src in @x)", &["x"], &[]), None);
        // `not not` is the test itself, which can never match.
        assert_eq!(
            blocker("!(!(src in @x))", &["x"], &[]).as_deref(),
            Some("x")
        );
        assert_eq!(
            blocker("not (proto udp or not src in @x)", &["x"], &[]).as_deref(),
            Some("x")
        );
        assert_eq!(
            blocker("src in @p and not dst port in @none", &["p"], &[]).as_deref(),
            Some("p")
        );
        assert_eq!(
            blocker("proto tcp and dst port in @none", &[], &[]).as_deref(),
            Some("none")
        );
        // One empty branch of an `or` does not stop the other; both empty do, together.
        assert_eq!(
            blocker("dst in @bogons or dst in @feed", &["feed"], &["bogons"]),
            None
        );
        assert_eq!(
            blocker("(dst in @a or dst in @b) and proto tcp", &["a", "b"], &[]).as_deref(),
            Some("a b")
        );
        // `src or dst` is a direction, not an operator; `!=` is a comparison, not a `not`.
        assert_eq!(
            blocker("src or dst in @x", &["x"], &[]).as_deref(),
            Some("x")
        );
        assert_eq!(
            blocker("flags != S and src in @x", &["x"], &[]).as_deref(),
            Some("x")
        );
        assert_eq!(blocker("proto tcp # src in @x", &["x"], &[]), None);
    }

    #[test]
    fn several_empty_lists_that_block_together_are_named_together() {
        let text = "[lists]\na = []\nb = []\n[[rule]]\nid = \"R\"\nwhere = \"dst in @a or dst in @b\"\nkey = \"src\"\ncount = \"flows\"\nabove = 0\n";
        let d = Definitions::parse(text, "t.toml", None).unwrap();
        assert_eq!(
            d.inactive,
            [(
                "R".to_string(),
                "inactive: lists @a, @b are empty; fill one in the definitions file".to_string()
            )]
        );
    }

    /// A random filter in which each of the four tests that read a flow (protocol, port, source, destination)
    /// appears at most once, mixed with tests on the empty lists `e1` (addresses) and `e2` (ports), in every
    /// spelling of `and`, `or`, `not` and parentheses.
    fn random_filter(
        next: &mut impl FnMut() -> u64,
        depth: u32,
        free: &mut Vec<&'static str>,
    ) -> String {
        const EMPTY: [&str; 5] = [
            "src in @e1",
            "dst port in @e2",
            "ip in @e1",
            "src or dst in @e1",
            "src and dst port in @e2",
        ];
        let leaf = depth == 0 || next().is_multiple_of(3);
        if leaf {
            if !free.is_empty() && next().is_multiple_of(2) {
                let i = (next() % free.len() as u64) as usize;
                return free.swap_remove(i).to_string();
            }
            return EMPTY[(next() % EMPTY.len() as u64) as usize].to_string();
        }
        let a = random_filter(next, depth - 1, free);
        match next() % 6 {
            0 => format!("not {a}"),
            1 => format!("!({a})"),
            2 => format!("({a})"),
            3 => format!("{a} and {}", random_filter(next, depth - 1, free)),
            4 => format!("({a} || {})", random_filter(next, depth - 1, free)),
            _ => format!("({a}) or ({})", random_filter(next, depth - 1, free)),
        }
    }

    /// A rule is inactive exactly when, with its empty lists, its filter selects no flow at all; and the list it
    /// names is one of those empty lists. Each flow-reading test appears at most once in a filter and the flows
    /// below take every combination of their outcomes, so "selects none of them" means "can never match".
    #[test]
    fn a_rule_is_inactive_exactly_when_its_filter_can_never_match() {
        use crate::record::{Addr, FlowRecord};
        let mut records = Vec::new();
        for i in 0..16u32 {
            records.push(FlowRecord {
                proto: if i & 1 == 0 { 6 } else { 17 },
                dst_port: if i & 2 == 0 { 80 } else { 443 },
                src: Addr::v4(if i & 4 == 0 { 0x0a01_0005 } else { 0xc0a8_0101 }),
                dst: Addr::v4(if i & 8 == 0 { 0x0a02_0304 } else { 0xac10_0001 }),
                ..FlowRecord::default()
            });
        }
        let lists = "[lists]\ne1 = []\nfull = [\"10.1.0.0/16\"]\n[ports]\ne2 = []\n";
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (mut inactive, mut active) = (0, 0);
        for _ in 0..3000 {
            let mut free = vec![
                "proto tcp",
                "dst port 80",
                "src in @full",
                "dst net 10.0.0.0/8",
            ];
            let filter = random_filter(&mut next, 4, &mut free);
            let text = format!(
                "{lists}[[rule]]\nid = \"A\"\nwhere = \"{filter}\"\nkey = \"src\"\ncount = \"flows\"\nabove = 0\n"
            );
            let d = Definitions::parse(&text, "t.toml", None)
                .unwrap_or_else(|e| panic!("{filter}: {e}"));
            let f = Filter::parse(&filter, &d.lists).unwrap();
            let never = !records.iter().any(|r| f.matches(r));
            match d.inactive.first() {
                Some((_, why)) => {
                    assert!(never, "{filter}: inactive ({why}) but it matches a flow");
                    let named: Vec<&str> = why.split('@').skip(1).map(|w| &w[..2]).collect();
                    assert!(
                        !named.is_empty() && named.iter().all(|n| ["e1", "e2"].contains(n)),
                        "{filter}: {why}"
                    );
                    inactive += 1;
                }
                None => {
                    assert!(!never, "{filter}: active but it can never match");
                    active += 1;
                }
            }
        }
        assert!(
            inactive > 300 && active > 300,
            "{inactive} inactive, {active} active"
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

    /// A rule with `window = VALUE` (VALUE as written in TOML): the window in ms, or the error's line and message.
    fn window(value: &str) -> Result<Option<u64>, (usize, String)> {
        let text = format!(
            "[[rule]]\nid = \"W\"\nkey = \"src\"\ncount = \"flows\"\nabove = 1\nwindow = {value}\n"
        );
        match Definitions::parse(&text, "w.toml", None) {
            Ok(d) => Ok(d.rules[0].window.map(|w| w.len_ms)),
            Err(e) => Err((e.0[0].line, e.0[0].message.clone())),
        }
    }

    #[test]
    fn windows_as_integers_and_strings_are_checked_alike() {
        assert_eq!(window("300"), Ok(Some(300_000)));
        assert_eq!(window("\"300\""), Ok(Some(300_000)));
        // The largest whole number of seconds whose milliseconds fit 64 bits, and the next one.
        assert_eq!(
            window("18446744073709551"),
            Ok(Some(18_446_744_073_709_551_000))
        );
        let too_long = "window '18446744073709552' is too long";
        assert_eq!(window("18446744073709552"), Err((6, too_long.to_string())));
        assert_eq!(
            window("\"18446744073709552\""),
            Err((6, too_long.to_string()))
        );
        for bad in ["0", "\"0\"", "-5", "\"-5\""] {
            let (line, message) = window(bad).unwrap_err();
            assert_eq!(line, 6, "{bad}: {message}");
        }
    }

    /// `above_for` keeps the file's order (the first list holding a key decides), the smallest threshold bounds
    /// admission, and a prefix key is in a list when any address of its prefix is.
    #[test]
    fn thresholds_per_list_take_the_first_list_in_file_order() {
        let text = r#"
[lists]
servers = ["10.0.0.0/24"]
nat = ["10.0.0.5", "100.64.0.0/10"]
quiet = ["192.0.2.7"]
[[rule]]
id = "A"
key = "src"
count = "flows"
above = 100
above_for = { "@nat" = 20000, "@servers" = 5000, "@quiet" = 3 }
[[rule]]
id = "B"
key = "src/24"
count = "flows"
above = 100
above_for = { "@servers" = 5000, "@nat" = 20000 }
flows_above = 7
"#;
        let d = Definitions::parse(text, "t.toml", None).unwrap();
        let a = |s: &str| s.parse::<crate::record::Addr>().unwrap();
        let r = d.rule("A").unwrap();
        let lists: Vec<&str> = r.above_for.iter().map(|g| g.list.as_str()).collect();
        assert_eq!(lists, ["nat", "servers", "quiet"]);
        assert_eq!(r.above_for_key(a("10.0.0.5")), 20_000);
        assert_eq!(r.above_for_key(a("10.0.0.6")), 5_000);
        assert_eq!(r.above_for_key(a("192.0.2.7")), 3);
        assert_eq!(r.above_for_key(a("8.8.8.8")), 100);
        assert_eq!((r.min_above(), r.flows_above), (3, 0));
        let b = d.rule("B").unwrap();
        assert_eq!(b.above_for_key(a("10.0.0.0")), 5_000);
        assert_eq!(b.above_for_key(a("100.64.3.0")), 20_000);
        assert_eq!(b.above_for_key(a("10.0.1.0")), 100);
        assert_eq!((b.min_above(), b.flows_above), (100, 7));
        assert!(b.fires(100, 101, 8) && !b.fires(100, 101, 7) && !b.fires(100, 100, 50));
    }

    #[test]
    fn thresholds_per_list_steps_and_flows_above_are_checked_with_their_places() {
        let text = r#"[lists]
servers = ["10.0.0.0/24"]
[ports]
web = [80]
[[rule]]
id = "A"
key = "src"
count = "flows"
above = 1
above_for = { "@nope" = 5, "servers" = 3, "@web" = 2 }
[[rule]]
id = "B"
key = "src"
count = "flows"
above = 1
above_for = { "@servers" = "many" }
flows_above = -1
[[rule]]
id = "C"
key = "src"
count = "flows"
above = 1
step = "10s"
[[rule]]
id = "D"
key = "src"
count = "flows"
above = 1
window = "1m"
step = "7s"
"#;
        let errs = Definitions::parse(text, "site.toml", None).unwrap_err().0;
        let got: Vec<(usize, usize, &str)> = errs
            .iter()
            .map(|e| (e.line, e.column, e.message.as_str()))
            .collect();
        let want = [
            (
                10,
                16,
                "expected a defined address list (@servers), found unknown '@nope'",
            ),
            (
                10,
                29,
                "expected an address list as \"@name\"; found 'servers'",
            ),
            (10, 44, "expected an address list, found port list '@web'"),
            (
                16,
                28,
                "expected a threshold of 0 or more for '@servers'; found \"many\"",
            ),
            (17, 15, "expected a flow count of 0 or more; found -1"),
            (
                23,
                8,
                "a step needs a window: add window = \"...\" to the rule",
            ),
            (
                30,
                8,
                "expected a step that divides the window (1m); found '7s'",
            ),
        ];
        assert_eq!(got, want, "{errs:?}");
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
