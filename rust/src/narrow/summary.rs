//! smart_summary's structure-aware summaries: each turns the lines of one kind of output
//! into a few summary lines (diffs to file and hunk headers with changed-line counts,
//! grep output to matches grouped by file, listings to entries grouped by directory,
//! git logs to commits and subjects, JSON to its shape). Streaming, line by line, except
//! JSON, which is parsed whole.
//!
//! Transforms see the first segment of each line only (at most `SEG_MAX` bytes): a
//! summary never needs the rest of a 10 MB line.

use super::detect::{grep_key, Kind};

/// One summary line: its text (ending in a newline), whether it is an input line copied
/// as is, and the input line (0-based) it comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub text: String,
    pub verbatim: bool,
    pub line: u64,
}

/// Grep matches shown per file; listing entries shown per directory.
pub const GREP_SHOWN: usize = 3;
pub const LISTING_SHOWN: usize = 5;

pub struct Transform {
    kind: Kind,
    pub items: Vec<Item>,
    // diff
    in_hunk: bool,
    added: u64,
    deleted: u64,
    // git log
    expect_subject: bool,
    // grep and listing groups
    key: Option<String>,
    count: u64,
    shown: Vec<Item>,
    entries: Vec<String>,
    ls_recursive: bool,
    last_line: u64,
}

fn verbatim(text: &str, line: u64) -> Item {
    if text.ends_with('\n') {
        Item { text: text.to_owned(), verbatim: true, line }
    } else {
        Item { text: format!("{text}\n"), verbatim: false, line }
    }
}

fn made(text: String, line: u64) -> Item {
    Item { text, verbatim: false, line }
}

const DIFF_HEADERS: [&str; 10] = [
    "--- ",
    "+++ ",
    "index ",
    "new file",
    "deleted file",
    "rename ",
    "similarity ",
    "Binary files ",
    "old mode",
    "new mode",
];

impl Transform {
    pub fn new(kind: Kind) -> Self {
        Transform {
            kind,
            items: Vec::new(),
            in_hunk: false,
            added: 0,
            deleted: 0,
            expect_subject: false,
            key: None,
            count: 0,
            shown: Vec::new(),
            entries: Vec::new(),
            ls_recursive: false,
            last_line: 0,
        }
    }

    /// The first segment of input line `line`.
    pub fn push(&mut self, s: &str, line: u64) {
        self.last_line = line;
        match self.kind {
            Kind::Diff => self.diff(s, line),
            Kind::GitLog => self.git_log(s, line),
            Kind::Grep => self.grep(s, line),
            Kind::Listing => self.listing(s, line),
            _ => unreachable!("no line transform for {:?}", self.kind),
        }
    }

    pub fn finish(&mut self) {
        match self.kind {
            Kind::Diff => self.close_hunk(),
            Kind::Grep => self.flush_grep(),
            Kind::Listing => self.flush_listing(),
            _ => {}
        }
    }

    fn close_hunk(&mut self) {
        if self.in_hunk {
            let text = format!("    (+{} -{} lines)\n", self.added, self.deleted);
            self.items.push(made(text, self.last_line));
            self.in_hunk = false;
            self.added = 0;
            self.deleted = 0;
        }
    }

    fn diff(&mut self, s: &str, line: u64) {
        if s.starts_with("diff --git ") || (!self.in_hunk && DIFF_HEADERS.iter().any(|h| s.starts_with(h))) {
            self.close_hunk();
            self.items.push(verbatim(s, line));
        } else if s.starts_with("@@") {
            self.close_hunk();
            self.items.push(verbatim(s, line));
            self.in_hunk = true;
        } else if self.in_hunk {
            if s.starts_with('+') {
                self.added += 1;
            } else if s.starts_with('-') {
                self.deleted += 1;
            }
        } else {
            self.items.push(verbatim(s, line));
        }
    }

    fn git_log(&mut self, s: &str, line: u64) {
        if s.starts_with("commit ") {
            self.items.push(verbatim(s, line));
            self.expect_subject = true;
        } else if self.expect_subject
            && (s.starts_with(' ') || s.starts_with('\t'))
            && !s.trim_matches([' ', '\t', '\r', '\n']).is_empty()
        {
            self.items.push(verbatim(s, line));
            self.expect_subject = false;
        }
    }

    fn flush_grep(&mut self) {
        if let Some(key) = self.key.take() {
            let line = self.shown.first().map_or(self.last_line, |i| i.line);
            self.items.push(made(format!("{key}: {} matches\n", self.count), line));
            self.items.append(&mut self.shown);
            if self.count > GREP_SHOWN as u64 {
                let more = self.count - GREP_SHOWN as u64;
                self.items.push(made(format!("  ... {more} more matches in {key}\n"), self.last_line));
            }
            self.count = 0;
        }
    }

    fn grep(&mut self, s: &str, line: u64) {
        match grep_key(s) {
            None => {
                self.flush_grep();
                if s.trim_matches([' ', '\t', '\r', '\n']) != "--" {
                    self.items.push(verbatim(s, line));
                }
            }
            Some(key) => {
                if self.key.as_deref() != Some(key) {
                    self.flush_grep();
                    self.key = Some(key.to_owned());
                }
                self.count += 1;
                if self.count <= GREP_SHOWN as u64 {
                    self.shown.push(verbatim(s, line));
                }
            }
        }
    }

    fn flush_listing(&mut self) {
        if let Some(key) = self.key.take() {
            let total = self.count;
            let mut text = format!("{key}/ ({total} entries): {}", self.entries.join(", "));
            if total > LISTING_SHOWN as u64 {
                text.push_str(&format!(", ... +{} more", total - LISTING_SHOWN as u64));
            }
            text.push('\n');
            self.items.push(made(text, self.last_line));
            self.entries.clear();
            self.count = 0;
        }
    }

    fn add_entry(&mut self, name: &str) {
        self.count += 1;
        if self.entries.len() < LISTING_SHOWN {
            self.entries.push(name.to_owned());
        }
    }

    fn listing(&mut self, s: &str, _line: u64) {
        let name = s.trim_end_matches(['\n', '\r']);
        if name.ends_with(':') && !name.contains([' ', '\t']) {
            self.flush_listing();
            self.key = Some(name[..name.len() - 1].to_owned());
            self.ls_recursive = true;
        } else if name.is_empty() {
            if self.ls_recursive {
                self.flush_listing();
                self.ls_recursive = false;
            }
        } else if self.ls_recursive {
            if self.key.is_none() {
                self.key = Some(".".to_owned());
            }
            self.add_entry(name);
        } else {
            let (key, base) = match name.rfind('/') {
                Some(i) => (&name[..i], &name[i + 1..]),
                None => (".", name),
            };
            if self.key.as_deref() != Some(key) {
                self.flush_listing();
                self.key = Some(key.to_owned());
            }
            self.add_entry(base);
        }
    }
}

// ---- JSON shape --------------------------------------------------------------------------

/// Array items, object keys and string characters shown; nesting rendered in full.
pub const JSON_ITEMS: usize = 3;
pub const JSON_KEYS: usize = 20;
pub const JSON_CHARS: usize = 60;
pub const JSON_DEPTH: usize = 6;
/// Deeper documents are not summarized (nor parsed: recursion stays bounded).
pub const JSON_MAX_DEPTH: usize = 200;

enum Node {
    Raw(String),
    Str(String),
    Object(Vec<(String, Node)>, usize),
    Array(Vec<Node>, usize),
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.pos < self.s.len() && matches!(self.s[self.pos], b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.s.get(self.pos) == Some(&b)).then(|| self.pos += 1)
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.s.get(self.pos..self.pos + 4)?;
        let v = u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()?;
        if !h.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        self.pos += 4;
        Some(v)
    }

    fn string(&mut self) -> Option<String> {
        self.eat(b'"')?;
        let mut out = String::new();
        loop {
            let start = self.pos;
            while self.pos < self.s.len() && !matches!(self.s[self.pos], b'"' | b'\\' | 0..=0x1f) {
                self.pos += 1;
            }
            out.push_str(std::str::from_utf8(&self.s[start..self.pos]).ok()?);
            match *self.s.get(self.pos)? {
                b'"' => {
                    self.pos += 1;
                    return Some(out);
                }
                b'\\' => {
                    self.pos += 1;
                    let e = *self.s.get(self.pos)?;
                    self.pos += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\x08'),
                        b'f' => out.push('\x0c'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let c = if (0xD800..0xDC00).contains(&hi) {
                                // Only a pair makes a character; a lone half is not text.
                                if self.s.get(self.pos..self.pos + 2) != Some(b"\\u") {
                                    return None;
                                }
                                self.pos += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return None;
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else if (0xDC00..0xE000).contains(&hi) {
                                return None;
                            } else {
                                hi
                            };
                            out.push(char::from_u32(c)?);
                        }
                        _ => return None,
                    }
                }
                _ => return None, // a raw control character
            }
        }
    }

    fn number(&mut self) -> Option<String> {
        let start = self.pos;
        self.eat(b'-');
        let digits = |p: &mut Self| {
            let s = p.pos;
            while p.pos < p.s.len() && p.s[p.pos].is_ascii_digit() {
                p.pos += 1;
            }
            p.pos - s
        };
        if self.eat(b'0').is_none() && digits(self) == 0 {
            return None;
        }
        if self.eat(b'.').is_some() && digits(self) == 0 {
            return None;
        }
        if matches!(self.s.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.s.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return None;
            }
        }
        Some(String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }

    fn literal(&mut self, word: &[u8]) -> Option<String> {
        if self.s.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Some(String::from_utf8_lossy(word).into_owned())
        } else {
            None
        }
    }

    /// A value; `keep` false parses (to validate and count) without building it.
    fn value(&mut self, depth: usize, keep: bool) -> Option<Option<Node>> {
        if depth > JSON_MAX_DEPTH {
            return None;
        }
        self.ws();
        let node = match *self.s.get(self.pos)? {
            b'{' => {
                self.pos += 1;
                let (mut pairs, mut n) = (Vec::new(), 0usize);
                self.ws();
                if self.eat(b'}').is_none() {
                    loop {
                        self.ws();
                        let key = self.string()?;
                        self.ws();
                        self.eat(b':')?;
                        let shown = keep && n < JSON_KEYS;
                        let v = self.value(depth + 1, shown)?;
                        if let Some(v) = v.filter(|_| shown) {
                            pairs.push((key, v));
                        }
                        n += 1;
                        self.ws();
                        if self.eat(b',').is_none() {
                            self.eat(b'}')?;
                            break;
                        }
                    }
                }
                Node::Object(pairs, n)
            }
            b'[' => {
                self.pos += 1;
                let (mut items, mut n) = (Vec::new(), 0usize);
                self.ws();
                if self.eat(b']').is_none() {
                    loop {
                        let shown = keep && n < JSON_ITEMS;
                        if let Some(v) = self.value(depth + 1, shown)?.filter(|_| shown) {
                            items.push(v);
                        }
                        n += 1;
                        self.ws();
                        if self.eat(b',').is_none() {
                            self.eat(b']')?;
                            break;
                        }
                    }
                }
                Node::Array(items, n)
            }
            b'"' => Node::Str(self.string()?),
            b't' => Node::Raw(self.literal(b"true")?),
            b'f' => Node::Raw(self.literal(b"false")?),
            b'n' => Node::Raw(self.literal(b"null")?),
            _ => Node::Raw(self.number()?),
        };
        Some(keep.then_some(node))
    }
}

/// A JSON string literal as Python's `json.dumps(s, ensure_ascii=False)` writes it.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn cut(s: &str) -> String {
    match s.char_indices().nth(JSON_CHARS) {
        Some((i, _)) => json_str(&format!("{}...", &s[..i])),
        None => json_str(s),
    }
}

fn render(node: &Node, depth: usize, out: &mut Vec<String>) {
    // The caller has put the first line's prefix in `out.last()`; append to it.
    let indent = |d: usize| "  ".repeat(d);
    match node {
        Node::Raw(r) => out.last_mut().unwrap().push_str(r),
        Node::Str(s) => out.last_mut().unwrap().push_str(&cut(s)),
        Node::Object(_, 0) => out.last_mut().unwrap().push_str("{}"),
        Node::Array(_, 0) => out.last_mut().unwrap().push_str("[]"),
        Node::Object(_, n) if depth >= JSON_DEPTH => out.last_mut().unwrap().push_str(&format!("{{... {n} keys}}")),
        Node::Array(_, n) if depth >= JSON_DEPTH => out.last_mut().unwrap().push_str(&format!("[... {n} items]")),
        Node::Object(pairs, n) => {
            out.last_mut().unwrap().push('{');
            for (k, v) in pairs {
                out.push(format!("{}{}: ", indent(depth + 1), cut(k)));
                render(v, depth + 1, out);
            }
            if *n > JSON_KEYS {
                out.push(format!("{}... {} more keys", indent(depth + 1), n - JSON_KEYS));
            }
            out.push(format!("{}}}", indent(depth)));
        }
        Node::Array(items, n) => {
            out.last_mut().unwrap().push('[');
            for v in items {
                out.push(indent(depth + 1));
                render(v, depth + 1, out);
            }
            if *n > JSON_ITEMS {
                out.push(format!("{}... {} more items ({n} in all)", indent(depth + 1), n - JSON_ITEMS));
            }
            out.push(format!("{}]", indent(depth)));
        }
    }
}

/// The shape of a JSON document as summary lines, or None when `text` is not one JSON
/// value (or nests deeper than [`JSON_MAX_DEPTH`]).
pub fn json_shape(text: &str) -> Option<Vec<Item>> {
    let mut p = Parser { s: text.as_bytes(), pos: 0 };
    let node = p.value(0, true)??;
    p.ws();
    if p.pos != p.s.len() {
        return None;
    }
    let mut lines = vec![String::new()];
    render(&node, 0, &mut lines);
    Some(lines.into_iter().map(|l| made(l + "\n", 0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(kind: Kind, text: &str) -> String {
        let mut t = Transform::new(kind);
        for (i, line) in text.split_inclusive('\n').enumerate() {
            t.push(line, i as u64);
        }
        t.finish();
        t.items.iter().map(|i| i.text.as_str()).collect()
    }

    #[test]
    fn a_diff_keeps_its_headers_and_counts_changed_lines_per_hunk() {
        let diff = "diff --git a/x b/x\nindex 1..2 100644\n--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n a\n-b\n+c\n+d\n";
        assert_eq!(
            run(Kind::Diff, diff),
            "diff --git a/x b/x\nindex 1..2 100644\n--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n    (+2 -1 lines)\n"
        );
    }

    #[test]
    fn grep_matches_are_grouped_by_file_with_counts() {
        let grep = "a.py:1:x\na.py:2:x\na.py:3:x\na.py:4:x\nb.py:9:x\n";
        assert_eq!(
            run(Kind::Grep, grep),
            "a.py: 4 matches\na.py:1:x\na.py:2:x\na.py:3:x\n  ... 1 more matches in a.py\nb.py: 1 matches\nb.py:9:x\n"
        );
    }

    #[test]
    fn listings_are_grouped_by_directory() {
        let find = "./src/a.py\n./src/b.py\n./docs/x.md\n";
        assert_eq!(run(Kind::Listing, find), "./src/ (2 entries): a.py, b.py\n./docs/ (1 entries): x.md\n");
        let ls = ".:\na\nb\n\n./a:\nc\n";
        assert_eq!(run(Kind::Listing, ls), "./ (2 entries): a, b\n./a/ (1 entries): c\n");
    }

    #[test]
    fn json_shape_shows_the_first_items_and_the_counts() {
        let doc = r#"{"items": [1, 2, 3, 4, 5], "name": "x\u00e9", "nested": {"a": []}}"#;
        let shape: String = json_shape(doc).unwrap().iter().map(|i| i.text.as_str()).collect();
        assert_eq!(
            shape,
            "{\n  \"items\": [\n    1\n    2\n    3\n    ... 2 more items (5 in all)\n  ]\n  \"name\": \"xé\"\n  \"nested\": {\n    \"a\": []\n  }\n}\n"
        );
        assert!(json_shape("{\"a\": 1} x").is_none());
        assert!(json_shape("\"\\ud800\"").is_none());
        assert!(json_shape(&"[".repeat(500)).is_none());
    }
}
