//! The extractive summary: what a window is about to drop, kept as facts, without a model.
//!
//! The input is a list of messages, each a list of [`Event`]s (a prompt, a piece of
//! assistant text, a tool call, a tool result), read from any of the four formats by the
//! glue (`python/events.rs`). [`Facts`] folds them one message at a time:
//!
//! * **task**: the first user prompt, verbatim; later prompts as shortened follow-ups;
//! * **files**: every path created, modified, written, deleted or moved, from the
//!   arguments of file tools (`write_file`, `edit_file`, `str_replace_based_edit_tool`,
//!   `delete_file`, `move_file`, ...), from patches (`*** Update File:` blocks of
//!   `apply_patch`, unified and git diffs) in arguments and in the results of tools that
//!   write, and from shell commands (`rm`, `mv`, `cp`, `touch`, `mkdir`, `tee`,
//!   `sed -i`, `perl -i`, `git rm` / `git mv`, redirections `>` / `>>`);
//! * **commands**: each shell command with its latest outcome (exit code, error line or
//!   ok) and how often it ran, plus a count of calls per tool;
//! * **decisions**: sentences of the assistant such as "I'll use ...", "Let's ...",
//!   "We decided ..." (English, the language of the task classifier);
//! * **open errors**: an error result with no later success of the same tool and
//!   command (or path).
//!
//! A fold is sequential and its whole state lives in [`Facts`] (calls still waiting for
//! their result included), so summarizing a history in two steps (facts of a prefix,
//! then the rest added to them) gives exactly the facts of summarizing it at once: the
//! incremental update the window needs as its dropped prefix grows. Lists that could grow
//! without end keep their most recent items and count the rest; the file list and the
//! task are never cut. [`Facts::render`] writes them as compact sections within a token
//! cap, shortening the lowest-priority sections first and saying what it omitted.
//!
//! Everything is deterministic: no hashing order, no clock, no randomness.

use super::failure::{exit_code, prefix_at_boundary, says_failed, suffix_at_boundary};
use crate::counting;
use crate::encoding::Encoding;
use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::fmt::Write as _;

/// What an event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum EventKind {
    /// A system prompt or instructions: not summarized (the pipeline keeps them).
    System,
    /// A user-authored prompt.
    Prompt,
    /// Text written by the assistant.
    #[default]
    Text,
    /// A tool call: `tool`, `arguments` (JSON text, or the raw input), `call_id`.
    Call,
    /// A tool result: `text`, `is_error`, `call_id` (and `tool` when the format names it).
    Result,
}

/// One thing that happened in a message: the unit the summarizer reads.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Event {
    pub kind: EventKind,
    pub text: String,
    pub tool: String,
    pub arguments: String,
    pub is_error: bool,
    pub call_id: String,
}

impl Event {
    pub fn prompt(text: impl Into<String>) -> Event {
        Event { kind: EventKind::Prompt, text: text.into(), ..Event::default() }
    }

    pub fn system(text: impl Into<String>) -> Event {
        Event { kind: EventKind::System, text: text.into(), ..Event::default() }
    }

    pub fn text(text: impl Into<String>) -> Event {
        Event { kind: EventKind::Text, text: text.into(), ..Event::default() }
    }

    pub fn call(call_id: impl Into<String>, tool: impl Into<String>, arguments: impl Into<String>) -> Event {
        Event {
            kind: EventKind::Call,
            tool: tool.into(),
            arguments: arguments.into(),
            call_id: call_id.into(),
            ..Event::default()
        }
    }

    pub fn result(call_id: impl Into<String>, text: impl Into<String>, is_error: bool) -> Event {
        Event { kind: EventKind::Result, text: text.into(), is_error, call_id: call_id.into(), ..Event::default() }
    }

    /// The same result, naming its tool (pydantic-ai and legacy OpenAI results do).
    pub fn with_tool(mut self, tool: impl Into<String>) -> Event {
        self.tool = tool.into();
        self
    }
}

/// The first line of every rendered summary (the glue and the pipeline recognize a
/// summary by it: a summary met again in a history is not taken for the user's task).
pub const HEADER_PREFIX: &str = "[Summary of ";

const TASK_TITLE: &str = "## Task (the user's first message, verbatim)\n";
const LAST_ERROR_TITLE: &str = "## Last error (resolved since)\n";

/// Follow-up prompts kept (the most recent), each shortened to [`FOLLOW_UP_CHARS`].
pub const MAX_FOLLOW_UPS: usize = 12;
pub const FOLLOW_UP_CHARS: usize = 240;
/// Distinct shell commands kept (the most recently run).
pub const MAX_COMMANDS: usize = 100;
pub const COMMAND_CHARS: usize = 160;
/// Decisions kept (the most recent), each shortened to [`DECISION_CHARS`].
pub const MAX_DECISIONS: usize = 40;
pub const DECISION_CHARS: usize = 200;
/// Open errors kept (the most recent).
pub const MAX_ERRORS: usize = 40;
pub const ERROR_CHARS: usize = 200;
/// Calls waiting for their result (the oldest are forgotten first).
pub const MAX_PENDING: usize = 256;
/// Distinct tool names counted.
pub const MAX_TOOLS: usize = 64;
/// Longest path taken (longer strings are not paths).
const MAX_PATH_BYTES: usize = 400;

/// What happened to a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileAction {
    Created,
    Modified,
    /// Written whole (it may or may not have existed).
    Written,
    Deleted,
    /// Moved or renamed to the path given.
    MovedTo(String),
}

impl FileAction {
    /// The one-letter code of the files section (as `git status` writes them).
    pub fn code(&self) -> &'static str {
        match self {
            FileAction::Created => "A",
            FileAction::Modified => "M",
            FileAction::Written => "W",
            FileAction::Deleted => "D",
            FileAction::MovedTo(_) => "R",
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            FileAction::Created => "created",
            FileAction::Modified => "modified",
            FileAction::Written => "written",
            FileAction::Deleted => "deleted",
            FileAction::MovedTo(_) => "moved",
        }
    }

    /// The state after `self` when `next` happens.
    fn then(&self, next: FileAction) -> FileAction {
        match (self, next) {
            (FileAction::Created, FileAction::Modified | FileAction::Written) => FileAction::Created,
            (FileAction::Deleted | FileAction::MovedTo(_), FileAction::Modified) => FileAction::Written,
            (_, next) => next,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileFact {
    pub path: String,
    pub action: FileAction,
}

/// How a command or tool call ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// A non-zero exit code, with the line that says why.
    Exit(i64, String),
    /// An error without an exit code.
    Error(String),
    /// No result came (yet).
    Pending,
}

impl Outcome {
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Exit(..) | Outcome::Error(_))
    }

    fn render(&self, out: &mut String) {
        match self {
            Outcome::Ok => out.push_str("ok"),
            Outcome::Exit(code, line) if line.is_empty() => {
                let _ = write!(out, "exit {code}");
            }
            Outcome::Exit(code, line) => {
                let _ = write!(out, "exit {code}: {line}");
            }
            Outcome::Error(line) => {
                let _ = write!(out, "error: {line}");
            }
            Outcome::Pending => out.push_str("no result"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandFact {
    pub command: String,
    pub outcome: Outcome,
    pub runs: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorFact {
    /// The tool and what it was called on, as the summary names it.
    pub what: String,
    pub message: String,
    key: String,
}

/// A call waiting for its result.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Pending {
    call_id: String,
    tool: String,
    class: ToolClass,
    /// The shell command, for shell tools.
    command: Option<String>,
    /// The first path in the arguments, for the error key.
    path: Option<String>,
}

/// Everything the summary knows: the fold of the messages read so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// Messages folded.
    pub messages: u64,
    /// A content hash of every message folded, in order (see [`Facts::add_message`]).
    pub digest: u128,
    pub task: Option<String>,
    pub follow_ups: Vec<String>,
    pub follow_ups_dropped: u64,
    pub files: Vec<FileFact>,
    file_index: FxHashMap<String, usize>,
    pub commands: Vec<CommandFact>,
    pub commands_dropped: u64,
    /// Calls per tool name, in order of first use.
    pub tools: Vec<(String, u64)>,
    pub decisions: Vec<String>,
    pub decisions_dropped: u64,
    pub errors: Vec<ErrorFact>,
    pub errors_dropped: u64,
    /// The last error met, `what: message`, kept when a later success resolved it (the
    /// open errors forget it then): where the work last went wrong.
    pub last_error: Option<String>,
    pending: Vec<Pending>,
}

/// The facts of these messages (each a slice of events), folded from nothing.
pub fn summarize<'a>(messages: impl IntoIterator<Item = &'a [Event]>) -> Facts {
    let mut facts = Facts::default();
    for events in messages {
        facts.add_message(events);
    }
    facts
}

/// A content hash of one message's events: equal events, equal hashes.
pub fn message_digest(events: &[Event]) -> u128 {
    let mut bytes = Vec::with_capacity(64);
    for e in events {
        bytes.push(e.kind as u8);
        bytes.push(e.is_error as u8);
        for field in [&e.text, &e.tool, &e.arguments, &e.call_id] {
            bytes.extend_from_slice(&(field.len() as u64).to_le_bytes());
            bytes.extend_from_slice(field.as_bytes());
        }
    }
    xxhash_rust::xxh3::xxh3_128(&bytes)
}

/// The digest of facts `digest` with one more message of digest `message`.
pub fn chain_digest(digest: u128, message: u128) -> u128 {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(&digest.to_le_bytes());
    bytes[16..].copy_from_slice(&message.to_le_bytes());
    xxhash_rust::xxh3::xxh3_128(&bytes)
}

impl Facts {
    /// Fold one more message.
    pub fn add_message(&mut self, events: &[Event]) {
        self.messages += 1;
        self.digest = chain_digest(self.digest, message_digest(events));
        for event in events {
            self.add(event);
        }
    }

    /// These facts with more messages folded in (`self` unchanged).
    pub fn merged<'a>(&self, messages: impl IntoIterator<Item = &'a [Event]>) -> Facts {
        let mut facts = self.clone();
        for events in messages {
            facts.add_message(events);
        }
        facts
    }

    fn add(&mut self, event: &Event) {
        match event.kind {
            // A summary placed as a system message or a compaction part, met again.
            EventKind::System if event.text.starts_with(HEADER_PREFIX) => self.prompt(&event.text),
            EventKind::System => {}
            EventKind::Prompt => self.prompt(&event.text),
            EventKind::Text => self.assistant_text(&event.text),
            EventKind::Call => self.call(event),
            EventKind::Result => self.result(event),
        }
    }

    fn prompt(&mut self, text: &str) {
        if text.trim().is_empty() {
            return;
        }
        if text.starts_with(HEADER_PREFIX) {
            // A summary written earlier, met again: its task section is the task.
            if self.task.is_none() {
                if let Some(task) = rendered_task(text) {
                    self.task = Some(task.to_owned());
                }
            }
            for (action, path) in rendered_files(text) {
                self.file(action, path);
            }
            return;
        }
        if self.task.is_none() {
            self.task = Some(text.to_owned());
            return;
        }
        if self.task.as_deref() == Some(text) || is_acknowledgement(text) {
            return;
        }
        let short = shorten(text, FOLLOW_UP_CHARS);
        if self.follow_ups.last() == Some(&short) {
            return;
        }
        // A request made again is listed once, where it was last made.
        if let Some(at) = self.follow_ups.iter().position(|f| *f == short) {
            self.follow_ups.remove(at);
        }
        self.follow_ups.push(short);
        if self.follow_ups.len() > MAX_FOLLOW_UPS {
            self.follow_ups.remove(0);
            self.follow_ups_dropped += 1;
        }
    }

    fn assistant_text(&mut self, text: &str) {
        for sentence in decisions(text) {
            let short = shorten(&sentence, DECISION_CHARS);
            if let Some(at) = self.decisions.iter().position(|d| *d == short) {
                self.decisions.remove(at);
            }
            self.decisions.push(short);
            if self.decisions.len() > MAX_DECISIONS {
                self.decisions.remove(0);
                self.decisions_dropped += 1;
            }
        }
    }

    fn call(&mut self, event: &Event) {
        let tool = if event.tool.is_empty() { "tool" } else { event.tool.as_str() };
        self.count_tool(tool);
        let mut strings = Vec::new();
        let json = json_strings(&event.arguments, &mut strings);
        if !json && !event.arguments.is_empty() {
            strings.push((String::new(), Cow::Borrowed(event.arguments.as_str())));
        }
        let class = classify_tool(tool, &strings);
        let mut command = None;
        let mut effects = Vec::new();
        match &class {
            ToolClass::Shell => {
                if let Some(cmd) = shell_command(&strings) {
                    shell_effects(&cmd, &mut effects);
                    patch_effects(&cmd, &mut effects);
                    command = Some(cmd);
                }
            }
            ToolClass::File(action) => {
                file_tool_effects(action, &strings, &mut effects);
                for (key, value) in &strings {
                    if is_patch_key(key) {
                        patch_effects(value, &mut effects);
                    }
                }
            }
            ToolClass::Patch => {
                for (key, value) in &strings {
                    if key.is_empty() || is_patch_key(key) {
                        patch_effects(value, &mut effects);
                    }
                }
                // A patch tool given a path and an operation (Responses apply_patch_call).
                file_tool_effects(&operation_action(&strings).unwrap_or(FileAction::Modified), &strings, &mut effects);
            }
            ToolClass::Read | ToolClass::Other => {}
        }
        let path = strings.iter().find(|(k, v)| is_path_key(k) && looks_like_path(v)).map(|(_, v)| v.to_string());
        for (action, path) in effects {
            self.file(action, path);
        }
        if event.call_id.is_empty() {
            return;
        }
        if let Some(at) = self.pending.iter().position(|p| p.call_id == event.call_id) {
            self.pending.remove(at);
        }
        self.pending.push(Pending { call_id: event.call_id.clone(), tool: tool.to_owned(), class, command, path });
        if self.pending.len() > MAX_PENDING {
            self.pending.remove(0);
        }
    }

    fn count_tool(&mut self, tool: &str) {
        if let Some(entry) = self.tools.iter_mut().find(|(name, _)| name == tool) {
            entry.1 += 1;
        } else if self.tools.len() < MAX_TOOLS {
            self.tools.push((tool.to_owned(), 1));
        }
    }

    fn result(&mut self, event: &Event) {
        let pending = match self.pending.iter().rposition(|p| !event.call_id.is_empty() && p.call_id == event.call_id) {
            Some(at) => Some(self.pending.remove(at)),
            None => None,
        };
        let (tool, class, command, path) = match pending {
            Some(p) => (p.tool, p.class, p.command, p.path),
            None => {
                let tool = if event.tool.is_empty() { "tool".to_owned() } else { event.tool.clone() };
                let class = classify_tool(&tool, &[]);
                (tool, class, None, None)
            }
        };
        let shell = class == ToolClass::Shell;
        let outcome = outcome_of(&event.text, event.is_error, shell);
        // A tool that writes may report what it changed as a diff.
        if !outcome.is_failure() && matches!(class, ToolClass::Patch | ToolClass::File(_)) {
            let mut effects = Vec::new();
            patch_effects(&event.text, &mut effects);
            for (action, path) in effects {
                self.file(action, path);
            }
        }
        if let Some(cmd) = &command {
            let short = shorten(cmd, COMMAND_CHARS);
            let runs = match self.commands.iter().position(|c| c.command == short) {
                Some(at) => self.commands.remove(at).runs + 1,
                None => 1,
            };
            self.commands.push(CommandFact { command: short, outcome: outcome.clone(), runs });
            if self.commands.len() > MAX_COMMANDS {
                self.commands.remove(0);
                self.commands_dropped += 1;
            }
        }
        let subject = command.as_deref().or(path.as_deref()).unwrap_or("");
        let key = format!("{tool}\u{0}{subject}");
        if let Some(at) = self.errors.iter().position(|e| e.key == key) {
            self.errors.remove(at);
        }
        if !outcome.is_failure() && !subject.is_empty() {
            // A call that failed before naming what it works on (arguments refused by
            // validation) is resolved by the tool's next success.
            let bare = format!("{tool}\u{0}");
            self.errors.retain(|e| e.key != bare);
        }
        let message = match &outcome {
            Outcome::Exit(code, line) if line.is_empty() => format!("exit {code}"),
            Outcome::Exit(code, line) => format!("exit {code}: {line}"),
            Outcome::Error(line) => line.clone(),
            Outcome::Ok | Outcome::Pending => return,
        };
        let what = if subject.is_empty() { tool } else { format!("{tool} `{}`", shorten(subject, COMMAND_CHARS)) };
        self.last_error = Some(format!("{what}: {message}"));
        self.errors.push(ErrorFact { what, message, key });
        if self.errors.len() > MAX_ERRORS {
            self.errors.remove(0);
            self.errors_dropped += 1;
        }
    }

    fn file(&mut self, action: FileAction, path: String) {
        match self.file_index.get(&path) {
            Some(&at) => {
                let next = self.files[at].action.then(action);
                // A path moved away and then changed again: the destination of the move
                // stays listed, as a file of its own.
                let displaced = match &self.files[at].action {
                    FileAction::MovedTo(to) if next != FileAction::MovedTo(to.clone()) => Some(to.clone()),
                    _ => None,
                };
                self.files[at].action = next;
                if let Some(to) = displaced {
                    if !self.file_index.contains_key(&to) {
                        self.file_index.insert(to.clone(), self.files.len());
                        self.files.push(FileFact { path: to, action: FileAction::Written });
                    }
                }
            }
            None => {
                self.file_index.insert(path.clone(), self.files.len());
                self.files.push(FileFact { path, action });
            }
        }
    }

    /// Every path the files section names (sources and destinations of moves too).
    pub fn paths(&self) -> Vec<&str> {
        let mut paths = Vec::with_capacity(self.files.len());
        for f in &self.files {
            paths.push(f.path.as_str());
            if let FileAction::MovedTo(to) = &f.action {
                paths.push(to.as_str());
            }
        }
        paths
    }

    /// Shell commands whose result has not come yet.
    fn pending_commands(&self) -> impl Iterator<Item = &str> {
        self.pending.iter().filter_map(|p| p.command.as_deref())
    }
}

// ---- Serialization -------------------------------------------------------------------------

/// The first byte of [`Facts::to_bytes`]: its layout's version.
const BYTES_VERSION: u8 = 2;

struct Writer(Vec<u8>);

impl Writer {
    fn u64(&mut self, n: u64) {
        self.0.extend_from_slice(&n.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn opt(&mut self, s: Option<&str>) {
        match s {
            Some(s) => {
                self.0.push(1);
                self.str(s);
            }
            None => self.0.push(0),
        }
    }
    fn action(&mut self, a: &FileAction) {
        let (tag, to) = match a {
            FileAction::Created => (0, None),
            FileAction::Modified => (1, None),
            FileAction::Written => (2, None),
            FileAction::Deleted => (3, None),
            FileAction::MovedTo(to) => (4, Some(to.as_str())),
        };
        self.0.push(tag);
        self.opt(to);
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn len(&mut self) -> Option<usize> {
        // A length can never exceed what is left: a corrupt one fails here, not in an allocation.
        let n = usize::try_from(self.u64()?).ok()?;
        (n <= self.0.len()).then_some(n)
    }
    fn str(&mut self) -> Option<String> {
        let n = self.len()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn opt(&mut self) -> Option<Option<String>> {
        match self.byte()? {
            0 => Some(None),
            1 => Some(Some(self.str()?)),
            _ => None,
        }
    }
    fn strs(&mut self) -> Option<Vec<String>> {
        let n = self.len()?;
        (0..n).map(|_| self.str()).collect()
    }
    fn action(&mut self) -> Option<FileAction> {
        let tag = self.byte()?;
        let to = self.opt()?;
        Some(match (tag, to) {
            (0, None) => FileAction::Created,
            (1, None) => FileAction::Modified,
            (2, None) => FileAction::Written,
            (3, None) => FileAction::Deleted,
            (4, Some(to)) => FileAction::MovedTo(to),
            _ => return None,
        })
    }
}

impl Facts {
    /// The facts as bytes, for [`Facts::from_bytes`] in another process (pickling).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(256));
        w.0.push(BYTES_VERSION);
        w.u64(self.messages);
        w.0.extend_from_slice(&self.digest.to_le_bytes());
        w.opt(self.task.as_deref());
        w.u64(self.follow_ups.len() as u64);
        self.follow_ups.iter().for_each(|f| w.str(f));
        w.u64(self.follow_ups_dropped);
        w.u64(self.files.len() as u64);
        for f in &self.files {
            w.str(&f.path);
            w.action(&f.action);
        }
        w.u64(self.commands.len() as u64);
        for c in &self.commands {
            w.str(&c.command);
            let (tag, code, line) = match &c.outcome {
                Outcome::Ok => (0, 0, ""),
                Outcome::Exit(code, line) => (1, *code, line.as_str()),
                Outcome::Error(line) => (2, 0, line.as_str()),
                Outcome::Pending => (3, 0, ""),
            };
            w.0.push(tag);
            w.u64(code as u64);
            w.str(line);
            w.u64(c.runs as u64);
        }
        w.u64(self.commands_dropped);
        w.u64(self.tools.len() as u64);
        for (name, n) in &self.tools {
            w.str(name);
            w.u64(*n);
        }
        w.u64(self.decisions.len() as u64);
        self.decisions.iter().for_each(|d| w.str(d));
        w.u64(self.decisions_dropped);
        w.u64(self.errors.len() as u64);
        for e in &self.errors {
            w.str(&e.what);
            w.str(&e.message);
            w.str(&e.key);
        }
        w.u64(self.errors_dropped);
        w.opt(self.last_error.as_deref());
        w.u64(self.pending.len() as u64);
        for p in &self.pending {
            w.str(&p.call_id);
            w.str(&p.tool);
            match &p.class {
                ToolClass::Shell => w.0.push(0),
                ToolClass::Patch => w.0.push(1),
                ToolClass::File(a) => {
                    w.0.push(2);
                    w.action(a);
                }
                ToolClass::Read => w.0.push(3),
                ToolClass::Other => w.0.push(4),
            }
            w.opt(p.command.as_deref());
            w.opt(p.path.as_deref());
        }
        w.0
    }

    /// Facts written by [`Facts::to_bytes`]; None when the bytes are not such facts.
    pub fn from_bytes(bytes: &[u8]) -> Option<Facts> {
        let mut r = Reader(bytes);
        if r.byte()? != BYTES_VERSION {
            return None;
        }
        let mut f = Facts { messages: r.u64()?, ..Facts::default() };
        f.digest = u128::from_le_bytes(r.take(16)?.try_into().ok()?);
        f.task = r.opt()?;
        f.follow_ups = r.strs()?;
        f.follow_ups_dropped = r.u64()?;
        for _ in 0..r.len()? {
            let path = r.str()?;
            let action = r.action()?;
            f.file_index.insert(path.clone(), f.files.len());
            f.files.push(FileFact { path, action });
        }
        for _ in 0..r.len()? {
            let command = r.str()?;
            let tag = r.byte()?;
            let code = r.u64()? as i64;
            let line = r.str()?;
            let outcome = match tag {
                0 => Outcome::Ok,
                1 => Outcome::Exit(code, line),
                2 => Outcome::Error(line),
                3 => Outcome::Pending,
                _ => return None,
            };
            let runs = u32::try_from(r.u64()?).ok()?;
            f.commands.push(CommandFact { command, outcome, runs });
        }
        f.commands_dropped = r.u64()?;
        for _ in 0..r.len()? {
            let name = r.str()?;
            f.tools.push((name, r.u64()?));
        }
        f.decisions = r.strs()?;
        f.decisions_dropped = r.u64()?;
        for _ in 0..r.len()? {
            f.errors.push(ErrorFact { what: r.str()?, message: r.str()?, key: r.str()? });
        }
        f.errors_dropped = r.u64()?;
        f.last_error = r.opt()?;
        for _ in 0..r.len()? {
            let call_id = r.str()?;
            let tool = r.str()?;
            let class = match r.byte()? {
                0 => ToolClass::Shell,
                1 => ToolClass::Patch,
                2 => ToolClass::File(r.action()?),
                3 => ToolClass::Read,
                4 => ToolClass::Other,
                _ => return None,
            };
            f.pending.push(Pending { call_id, tool, class, command: r.opt()?, path: r.opt()? });
        }
        r.0.is_empty().then_some(f)
    }
}

// ---- Rendering -----------------------------------------------------------------------------

/// A rendered summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    /// Exact tokens of `text` (0 when no encoding was given).
    pub tokens: u64,
    /// Items left out to meet the cap (beyond those the facts had already let go).
    pub omitted: u64,
}

/// The sections, highest priority first; the cap shortens them from the last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    Files,
    Errors,
    FollowUps,
    Commands,
    Decisions,
}

impl Section {
    fn noun(self) -> &'static str {
        match self {
            Section::Files => "paths",
            Section::Errors => "open errors",
            Section::FollowUps => "later requests",
            Section::Commands => "commands",
            Section::Decisions => "decisions",
        }
    }
}

const CUT_ORDER: [Section; 5] =
    [Section::Decisions, Section::Commands, Section::FollowUps, Section::Errors, Section::Files];

struct Lines {
    section: Section,
    title: &'static str,
    /// Oldest first; cut from the front (the files section: from the back).
    items: Vec<String>,
    /// Items the facts had already let go.
    dropped: u64,
    /// A line after the items that is never cut (the tool counts).
    extra: Option<String>,
}

impl Facts {
    /// The summary as text: a header, the task verbatim, then the files, open errors,
    /// follow-ups, commands and decisions. With `cap = Some((encoding, max_tokens))`,
    /// sections are shortened from the lowest priority (decisions, commands, follow-ups,
    /// open errors, and the files last) until the text fits, each saying how many items
    /// it left out; the task is never cut, so a task longer than the cap alone makes a
    /// summary over it.
    pub fn render(&self, cap: Option<(&Encoding, usize)>) -> Rendered {
        let sections = self.sections();
        let full = assemble(self, &sections, &[0; 5]);
        let Some((encoding, max_tokens)) = cap else {
            return Rendered { text: full, tokens: 0, omitted: 0 };
        };
        let tokens = counting::count(encoding, &full) as u64;
        if tokens <= max_tokens as u64 {
            return Rendered { text: full, tokens, omitted: 0 };
        }
        // Estimate each line's tokens, cut by the estimates, then check the exact count
        // of the whole and cut one more item while it is still over.
        let item_tokens: Vec<Vec<u64>> = sections
            .iter()
            .map(|s| s.items.iter().map(|i| counting::count(encoding, i) as u64 + 1).collect())
            .collect();
        let mut cut = [0usize; 5];
        let mut estimate = tokens;
        const NOTE_TOKENS: u64 = 12;
        for section in CUT_ORDER {
            let Some(s) = sections.iter().position(|l| l.section == section) else { continue };
            while estimate > max_tokens as u64 && cut[s] < sections[s].items.len() {
                if cut[s] == 0 {
                    estimate += NOTE_TOKENS;
                }
                estimate = estimate.saturating_sub(item_tokens[s][cut[s]]);
                cut[s] += 1;
            }
        }
        loop {
            let text = assemble(self, &sections, &cut);
            let tokens = counting::count(encoding, &text) as u64;
            let omitted = cut.iter().sum::<usize>() as u64;
            if tokens <= max_tokens as u64 {
                return Rendered { text, tokens, omitted };
            }
            let next = CUT_ORDER
                .iter()
                .filter_map(|&section| sections.iter().position(|l| l.section == section))
                .find(|&s| cut[s] < sections[s].items.len());
            match next {
                Some(s) => cut[s] += 1,
                // Only the task, the headers and the notes of what was omitted are left:
                // over the cap as it is.
                None => return Rendered { text, tokens, omitted },
            }
        }
    }

    fn sections(&self) -> Vec<Lines> {
        let mut sections = Vec::new();
        if !self.files.is_empty() {
            let items = self
                .files
                .iter()
                .map(|f| match &f.action {
                    FileAction::MovedTo(to) => format!("R {} -> {}", f.path, to),
                    action => format!("{} {}", action.code(), f.path),
                })
                .collect();
            sections.push(Lines {
                section: Section::Files,
                title: "Files (A created, M modified, W written, D deleted, R moved)",
                items,
                dropped: 0,
                extra: None,
            });
        }
        if !self.errors.is_empty() || self.errors_dropped > 0 {
            let mut items: Vec<String> = self.errors.iter().map(|e| format!("{}: {}", e.what, e.message)).collect();
            // The last error is never cut: it is where the work stands.
            let extra = match items.last() {
                Some(last) if self.last_error.as_deref() == Some(last.as_str()) => items.pop(),
                _ => None,
            };
            sections.push(Lines {
                section: Section::Errors,
                title: "Open errors",
                items,
                dropped: self.errors_dropped,
                extra,
            });
        }
        if !self.follow_ups.is_empty() {
            sections.push(Lines {
                section: Section::FollowUps,
                title: "Later requests from the user",
                items: self.follow_ups.clone(),
                dropped: self.follow_ups_dropped,
                extra: None,
            });
        }
        let mut commands: Vec<String> = self
            .commands
            .iter()
            .map(|c| {
                let mut line = format!("`{}` -> ", c.command);
                c.outcome.render(&mut line);
                if c.runs > 1 {
                    let _ = write!(line, " ({} runs)", c.runs);
                }
                line
            })
            .collect();
        commands.extend(self.pending_commands().map(|c| format!("`{}` -> no result", shorten(c, COMMAND_CHARS))));
        if !commands.is_empty() || !self.tools.is_empty() {
            let mut tools: Vec<&(String, u64)> = self.tools.iter().collect();
            tools.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let extra = (!tools.is_empty()).then(|| {
                let list: Vec<String> = tools.iter().map(|(name, n)| format!("{name} {n}")).collect();
                format!("tool calls: {}", list.join(", "))
            });
            sections.push(Lines {
                section: Section::Commands,
                title: "Commands",
                items: commands,
                dropped: self.commands_dropped,
                extra,
            });
        }
        if !self.decisions.is_empty() {
            sections.push(Lines {
                section: Section::Decisions,
                title: "Decisions",
                items: self.decisions.clone(),
                dropped: self.decisions_dropped,
                extra: None,
            });
        }
        sections
    }
}

fn assemble(facts: &Facts, sections: &[Lines], cut: &[usize; 5]) -> String {
    let mut out = String::with_capacity(1024);
    let _ = writeln!(
        out,
        "{HEADER_PREFIX}{} earlier message{}, extracted by tokensieve]",
        facts.messages,
        if facts.messages == 1 { "" } else { "s" }
    );
    out.push_str(TASK_TITLE);
    match &facts.task {
        Some(task) => {
            out.push_str(task);
            if !task.ends_with('\n') {
                out.push('\n');
            }
        }
        None => out.push_str("(none in the summarized messages)\n"),
    }
    // The last error, when a later success resolved it (an open one is listed below): never cut.
    if let Some(last) = &facts.last_error {
        if facts.errors.last().map(|e| format!("{}: {}", e.what, e.message)).as_deref() != Some(last.as_str()) {
            let _ = writeln!(out, "{LAST_ERROR_TITLE}- {last}");
        }
    }
    // Sections the cap emptied are named on one line at the end, not each under its title.
    let mut emptied: Vec<String> = Vec::new();
    for (s, lines) in sections.iter().enumerate() {
        let n = lines.items.len();
        let cut_here = cut[s].min(n);
        if lines.section != Section::Files && cut_here == n && cut_here > 0 && lines.extra.is_none() {
            emptied.push(format!("{} {}", cut_here as u64 + lines.dropped, lines.section.noun()));
            continue;
        }
        let _ = writeln!(out, "## {}", lines.title);
        if lines.section == Section::Files {
            // Paths keep their order; the last ones go first (never silently).
            for item in &lines.items[..n - cut_here] {
                let _ = writeln!(out, "- {item}");
            }
            if cut_here > 0 {
                let _ = writeln!(out, "- ({cut_here} more paths omitted to fit the summary's token cap)");
            }
        } else {
            let omitted = cut_here as u64 + lines.dropped;
            if omitted > 0 {
                let _ = writeln!(out, "- ({omitted} earlier item{} omitted)", if omitted == 1 { "" } else { "s" });
            }
            for item in &lines.items[cut_here..] {
                let _ = writeln!(out, "- {item}");
            }
        }
        if let Some(extra) = &lines.extra {
            let _ = writeln!(out, "- {extra}");
        }
    }
    if !emptied.is_empty() {
        let _ = writeln!(out, "## Omitted to fit the token cap: {}", emptied.join(", "));
    }
    out
}

/// The task section of a summary rendered earlier.
fn rendered_task(text: &str) -> Option<&str> {
    let start = text.find(TASK_TITLE)? + TASK_TITLE.len();
    let rest = &text[start..];
    let end = rest.find("\n## ").map_or(rest.len(), |e| e + 1);
    let task = rest[..end].strip_suffix('\n').unwrap_or(&rest[..end]);
    (task != "(none in the summarized messages)" && !task.is_empty()).then_some(task)
}

/// The paths of the files section of a summary rendered earlier.
fn rendered_files(text: &str) -> Vec<(FileAction, String)> {
    let mut files = Vec::new();
    let Some(start) = text.find("## Files (") else { return files };
    for line in text[start..].lines().skip(1) {
        if line.starts_with("## ") {
            break;
        }
        let Some(item) = line.strip_prefix("- ") else { continue };
        let (code, path) = item.split_at(item.find(' ').unwrap_or(0));
        let path = path.trim_start();
        let action = match code {
            "A" => FileAction::Created,
            "M" => FileAction::Modified,
            "W" => FileAction::Written,
            "D" => FileAction::Deleted,
            "R" => match path.split_once(" -> ") {
                Some((from, to)) => {
                    files.push((FileAction::MovedTo(to.to_owned()), from.to_owned()));
                    continue;
                }
                None => continue,
            },
            _ => continue,
        };
        if !path.is_empty() {
            files.push((action, path.to_owned()));
        }
    }
    files
}

/// A plain transcript of events, for a model to summarize: one block per event, each
/// shortened to `max_chars` characters (the middle of a long text is left out).
pub fn transcript<'a>(messages: impl IntoIterator<Item = &'a [Event]>, max_chars: usize) -> String {
    let mut out = String::new();
    for events in messages {
        for e in events {
            let body = match e.kind {
                EventKind::System => continue,
                EventKind::Prompt => format!("USER: {}", middle_cut(&e.text, max_chars)),
                EventKind::Text => format!("ASSISTANT: {}", middle_cut(&e.text, max_chars)),
                EventKind::Call => {
                    format!("TOOL CALL {} [{}]: {}", e.tool, e.call_id, middle_cut(&e.arguments, max_chars))
                }
                EventKind::Result => format!(
                    "TOOL RESULT{} [{}]{}: {}",
                    if e.tool.is_empty() { String::new() } else { format!(" {}", e.tool) },
                    e.call_id,
                    if e.is_error { " (error)" } else { "" },
                    middle_cut(&e.text, max_chars)
                ),
            };
            out.push_str(&body);
            out.push_str("\n\n");
        }
    }
    out
}

fn middle_cut(text: &str, max_chars: usize) -> Cow<'_, str> {
    let n = text.chars().count();
    if n <= max_chars {
        return Cow::Borrowed(text);
    }
    let head = max_chars * 2 / 3;
    let tail = max_chars - head;
    let head_end = text.char_indices().nth(head).map_or(text.len(), |(i, _)| i);
    let tail_start = text.char_indices().nth(n - tail).map_or(text.len(), |(i, _)| i);
    Cow::Owned(format!(
        "{} [... {} characters omitted ...] {}",
        &text[..head_end],
        n - head - tail,
        &text[tail_start..]
    ))
}

// ---- Text helpers --------------------------------------------------------------------------

/// `text` on one line (runs of whitespace made one space), at most `max_chars`
/// characters (an ellipsis says it was cut).
pub fn shorten(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars * 4));
    let mut count = 0;
    let mut space = false;
    for c in text.trim().chars() {
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if space {
            out.push(' ');
            count += 1;
            space = false;
        }
        out.push(c);
        count += 1;
        if count > max_chars {
            break;
        }
    }
    if count > max_chars {
        let end = out.char_indices().nth(max_chars.saturating_sub(1)).map_or(out.len(), |(i, _)| i);
        out.truncate(end);
        out.push('…');
    }
    out
}

/// Whole prompts that only acknowledge or continue ("ok", "thanks", "go ahead").
fn is_acknowledgement(text: &str) -> bool {
    const ACKS: [&str; 24] = [
        "ok",
        "okay",
        "k",
        "thanks",
        "thank you",
        "thx",
        "ty",
        "great",
        "cool",
        "nice",
        "perfect",
        "got it",
        "yes",
        "yep",
        "sure",
        "continue",
        "go ahead",
        "go on",
        "proceed",
        "do it",
        "sounds good",
        "lgtm",
        "done",
        "alright",
    ];
    let t: String = text.trim().trim_end_matches(['.', '!', ' ']).to_lowercase();
    t.len() <= 24 && ACKS.contains(&t.as_str())
}

/// Sentences of assistant text that state a decision.
fn decisions(text: &str) -> Vec<String> {
    const STARTS: [&str; 16] = [
        "i'll ",
        "i will ",
        "i'm going to ",
        "i am going to ",
        "let's ",
        "let us ",
        "we'll ",
        "we will ",
        "i decided ",
        "i've decided ",
        "we decided ",
        "we've decided ",
        "decided ",
        "decision: ",
        "i chose ",
        "going with ",
    ];
    const ANYWHERE: [&str; 4] = [" decided to ", " chose to ", " instead of ", " we should use "];
    // Steps of the tool loop, not decisions ("I'll read the file first").
    const ROUTINE: [&str; 22] = [
        "read",
        "look",
        "check",
        "open",
        "view",
        "see",
        "inspect",
        "examine",
        "search",
        "run",
        "start",
        "take",
        "try",
        "first",
        "now",
        "begin",
        "list",
        "explore",
        "investigate",
        "find",
        "verify",
        "re-run",
    ];
    let mut out = Vec::new();
    if text.len() > 64 * 1024 {
        return out;
    }
    for sentence in sentences(text) {
        let s = sentence.trim_start_matches(['-', '*', '#', '>', ' ', '\t']).trim();
        if s.len() < 8 {
            continue;
        }
        let lower = s.to_lowercase().replace('’', "'");
        let start = STARTS.iter().find(|p| lower.starts_with(*p));
        let decision = match start {
            Some(prefix) => {
                let next = lower[prefix.len()..].split(|c: char| !c.is_alphanumeric() && c != '-').next().unwrap_or("");
                !ROUTINE.contains(&next)
            }
            None => ANYWHERE.iter().any(|w| lower.contains(w)),
        };
        if decision {
            out.push(s.to_owned());
        }
    }
    out
}

/// Sentences: split at line ends and at `. `, `! `, `? ` (code fences skipped).
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut start = 0;
        let bytes = line.as_bytes();
        for i in 0..bytes.len() {
            if matches!(bytes[i], b'.' | b'!' | b'?') && (i + 1 == bytes.len() || bytes[i + 1] == b' ') {
                let piece = line[start..=i].trim();
                if !piece.is_empty() {
                    out.push(piece);
                }
                start = i + 1;
            }
        }
        let piece = line[start..].trim();
        if !piece.is_empty() {
            out.push(piece);
        }
    }
    out
}

// ---- Tools ---------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
enum ToolClass {
    /// Runs a shell command.
    Shell,
    /// Applies a patch (`apply_patch`).
    Patch,
    /// Changes the files its arguments name, this way.
    File(FileAction),
    /// Reads only.
    Read,
    Other,
}

/// Words of a tool name: `str_replace_based_edit_tool`, `editFile`, `MultiEdit`.
fn name_words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_alphanumeric() {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        word.extend(c.to_lowercase());
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

fn classify_tool(name: &str, args: &[(String, Cow<'_, str>)]) -> ToolClass {
    let words = name_words(name);
    let has = |w: &[&str]| words.iter().any(|x| w.contains(&x.as_str()));
    if has(&["patch", "diff"]) {
        return ToolClass::Patch;
    }
    let file_tool = has(&[
        "edit",
        "write",
        "create",
        "delete",
        "remove",
        "unlink",
        "move",
        "rename",
        "replace",
        "insert",
        "append",
        "modify",
        "save",
        "touch",
        "mkdir",
        "notebook",
        "multiedit",
        "overwrite",
    ]);
    if file_tool {
        // A subcommand in the arguments decides (`str_replace_based_edit_tool`'s `command`).
        if let Some(action) = operation_action(args) {
            return ToolClass::File(action);
        }
        if args.iter().any(|(k, v)| matches!(k.as_str(), "command" | "action" | "operation") && is_read_word(v)) {
            return ToolClass::Read;
        }
        let action = if has(&["delete", "remove", "unlink", "rm"]) {
            FileAction::Deleted
        } else if has(&["move", "rename", "mv"]) {
            FileAction::MovedTo(String::new())
        } else if has(&["create", "touch", "mkdir", "new"]) {
            FileAction::Created
        } else if has(&["write", "save", "overwrite"]) && !has(&["edit", "replace", "insert", "append", "modify"]) {
            FileAction::Written
        } else {
            FileAction::Modified
        };
        return ToolClass::File(action);
    }
    let shell =
        has(&["bash", "shell", "sh", "zsh", "terminal", "exec", "execute", "command", "cmd", "powershell", "run"])
            && !has(&["python", "code", "sql", "query", "notebook", "test", "tests"]);
    if shell {
        return ToolClass::Shell;
    }
    if has(&["read", "view", "cat", "open", "get", "search", "grep", "find", "list", "ls", "glob", "fetch"]) {
        return ToolClass::Read;
    }
    ToolClass::Other
}

fn is_read_word(v: &str) -> bool {
    matches!(v, "view" | "read" | "show" | "cat" | "list" | "ls" | "get" | "open")
}

/// The action an operation field names (`create`, `str_replace`, `update_file`, ...).
fn operation_action(args: &[(String, Cow<'_, str>)]) -> Option<FileAction> {
    for (key, value) in args {
        if !matches!(key.as_str(), "command" | "action" | "operation" | "op" | "type" | "mode" | "kind") {
            continue;
        }
        let action = match value.as_ref() {
            "create" | "create_file" | "add" | "add_file" | "new" => FileAction::Created,
            "str_replace" | "insert" | "edit" | "replace" | "update" | "update_file" | "modify" | "append"
            | "undo_edit" | "patch" => FileAction::Modified,
            "write" | "overwrite" | "write_file" => FileAction::Written,
            "delete" | "delete_file" | "remove" | "rm" => FileAction::Deleted,
            "move" | "rename" | "move_file" => FileAction::MovedTo(String::new()),
            _ => continue,
        };
        return Some(action);
    }
    None
}

fn is_path_key(key: &str) -> bool {
    matches!(
        key,
        "path"
            | "paths"
            | "file"
            | "files"
            | "file_path"
            | "filepath"
            | "file_paths"
            | "filename"
            | "file_name"
            | "filenames"
            | "target_file"
            | "target_path"
            | "absolute_path"
            | "relative_path"
            | "notebook_path"
            | "pathname"
            | "dir"
            | "directory"
            | "dir_path"
    )
}

fn is_source_key(key: &str) -> bool {
    matches!(key, "source" | "src" | "from" | "old_path" | "source_path" | "from_path" | "old" | "old_name")
}

fn is_destination_key(key: &str) -> bool {
    matches!(
        key,
        "destination" | "dest" | "to" | "new_path" | "target" | "destination_path" | "to_path" | "new" | "new_name"
    )
}

fn is_patch_key(key: &str) -> bool {
    matches!(key, "patch" | "diff" | "input" | "changes" | "unified_diff" | "patch_text")
}

fn looks_like_path(v: &str) -> bool {
    let v = v.trim();
    !v.is_empty() && v.len() <= MAX_PATH_BYTES && !v.contains(['\n', '\r', '\0']) && !v.starts_with("/dev/") && v != "-"
}

fn file_tool_effects(action: &FileAction, args: &[(String, Cow<'_, str>)], out: &mut Vec<(FileAction, String)>) {
    if let FileAction::MovedTo(_) = action {
        let from = args.iter().find(|(k, v)| (is_source_key(k) || is_path_key(k)) && looks_like_path(v));
        let to = args.iter().find(|(k, v)| is_destination_key(k) && looks_like_path(v));
        match (from, to) {
            (Some((_, from)), Some((_, to))) => {
                out.push((FileAction::MovedTo(to.trim().to_owned()), from.trim().to_owned()))
            }
            (Some((_, from)), None) => out.push((FileAction::Modified, from.trim().to_owned())),
            (None, Some((_, to))) => out.push((FileAction::Created, to.trim().to_owned())),
            (None, None) => {}
        }
        return;
    }
    for (key, value) in args {
        if is_path_key(key) && looks_like_path(value) {
            out.push((action.clone(), value.trim().to_owned()));
        }
    }
}

// ---- JSON ----------------------------------------------------------------------------------

/// The string values of JSON text, each with the (lower-cased) key of the object member
/// it is in (items of an array take the array's key). False if `text` is no JSON object
/// or array. Tolerant: broken JSON gives what could be read.
fn json_strings<'a>(text: &'a str, out: &mut Vec<(String, Cow<'a, str>)>) -> bool {
    let t = text.trim_start();
    if !t.starts_with(['{', '[']) {
        return false;
    }
    let bytes = t.as_bytes();
    // (is_object, key of the current member, expecting a key)
    let mut stack: Vec<(bool, String, bool)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => {
                stack.push((true, String::new(), true));
                i += 1;
            }
            b'[' => {
                let key = stack.last().map(|s| s.1.clone()).unwrap_or_default();
                stack.push((false, key, false));
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                i += 1;
                if stack.is_empty() {
                    break;
                }
            }
            b',' => {
                if let Some(top) = stack.last_mut() {
                    if top.0 {
                        top.2 = true;
                    }
                }
                i += 1;
            }
            b':' => {
                if let Some(top) = stack.last_mut() {
                    top.2 = false;
                }
                i += 1;
            }
            b'"' => {
                let (value, end) = json_string_at(t, i);
                i = end;
                match stack.last_mut() {
                    Some(top) if top.0 && top.2 => {
                        top.1 = value.to_lowercase();
                        top.2 = false;
                    }
                    Some(top) => out.push((top.1.clone(), value)),
                    None => {}
                }
            }
            _ => i += 1,
        }
    }
    true
}

/// The JSON string starting at byte `start` (a `"`), decoded, and the byte after it.
fn json_string_at(t: &str, start: usize) -> (Cow<'_, str>, usize) {
    let bytes = t.as_bytes();
    let mut i = start + 1;
    let mut owned: Option<String> = None;
    let mut run = i;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let value = match owned {
                    Some(mut s) => {
                        s.push_str(&t[run..i]);
                        Cow::Owned(s)
                    }
                    None => Cow::Borrowed(&t[run..i]),
                };
                return (value, i + 1);
            }
            b'\\' if i + 1 < bytes.len() => {
                let s = owned.get_or_insert_with(String::new);
                s.push_str(&t[run..i]);
                let esc = bytes[i + 1];
                i += 2;
                match esc {
                    b'n' => s.push('\n'),
                    b't' => s.push('\t'),
                    b'r' => s.push('\r'),
                    b'b' => s.push('\u{8}'),
                    b'f' => s.push('\u{c}'),
                    b'u' => {
                        let hex = |at: usize| t.get(at..at + 4).and_then(|h| u32::from_str_radix(h, 16).ok());
                        match hex(i) {
                            Some(hi @ 0xD800..=0xDBFF) if t.get(i + 4..i + 6) == Some("\\u") => match hex(i + 6) {
                                Some(lo @ 0xDC00..=0xDFFF) => {
                                    let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                                    s.push(char::from_u32(c).unwrap_or('\u{FFFD}'));
                                    i += 10;
                                }
                                _ => {
                                    s.push('\u{FFFD}');
                                    i += 4;
                                }
                            },
                            Some(code) => {
                                s.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
                                i += 4;
                            }
                            None => {}
                        }
                    }
                    other => {
                        // `\"`, `\\`, `\/`, or an unknown escape kept as its character.
                        if other.is_ascii() {
                            s.push(other as char);
                        } else {
                            // Not a char boundary issue: back up to copy the whole char.
                            i -= 1;
                        }
                    }
                }
                run = i;
            }
            _ => i += 1,
        }
    }
    // Unterminated: what there is.
    let value = match owned {
        Some(mut s) => {
            s.push_str(&t[run.min(t.len())..]);
            Cow::Owned(s)
        }
        None => Cow::Borrowed(&t[run.min(t.len())..]),
    };
    (value, bytes.len())
}

// ---- Shell ---------------------------------------------------------------------------------

/// The command line of a shell tool's arguments: the `command` (or `cmd`, `script`,
/// `input`) string, or the last item of an argv such as `["bash", "-lc", "..."]`.
fn shell_command(args: &[(String, Cow<'_, str>)]) -> Option<String> {
    for keys in [&["command", "cmd"][..], &["script", "commands", "input", "code", "args", "argv", ""][..]] {
        let values: Vec<&str> =
            args.iter().filter(|(k, _)| keys.contains(&k.as_str())).map(|(_, v)| v.as_ref()).collect();
        match values.len() {
            0 => continue,
            1 => return Some(values[0].to_owned()),
            // Responses `shell_call`: a list of command lines.
            _ if args.iter().filter(|(k, _)| keys.contains(&k.as_str())).all(|(k, _)| k == "commands") => {
                return Some(values.join("\n"));
            }
            _ => {
                // An argv: `bash -lc "cmd"` is the command after -c.
                if let Some(at) =
                    values.iter().position(|v| v.starts_with('-') && v.ends_with('c') && !v.starts_with("--"))
                {
                    if at + 1 < values.len() && matches!(values[0].rsplit('/').next(), Some("bash" | "sh" | "zsh")) {
                        return Some(values[at + 1].to_owned());
                    }
                }
                let words: Vec<String> = values
                    .iter()
                    .map(|v| {
                        if v.contains([' ', '\'', '"']) {
                            format!("'{}'", v.replace('\'', "'\\''"))
                        } else {
                            (*v).to_owned()
                        }
                    })
                    .collect();
                return Some(words.join(" "));
            }
        }
    }
    None
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    /// `&&`, `||`, `;`, `|`, `&`: ends a simple command.
    Sep,
    /// `>`, `>>`, `&>`, `1>`, `>|` and the like, with whether it appends.
    Redirect {
        fd: u8,
        append: bool,
    },
    /// `<<`, `<<-`: a here-document.
    HereDoc,
    /// `<`, `<<<`: input.
    Input,
}

/// Tokens of one line of shell (quotes and backslashes undone).
fn shell_tokens(line: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = line.chars().collect();
    let mut word = String::new();
    let mut in_word = false;
    let mut i = 0;
    let flush = |word: &mut String, in_word: &mut bool, tokens: &mut Vec<Token>| {
        if *in_word {
            tokens.push(Token::Word(std::mem::take(word)));
            *in_word = false;
        }
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => {
                flush(&mut word, &mut in_word, &mut tokens);
                i += 1;
            }
            '#' if !in_word => break,
            '\'' => {
                in_word = true;
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    word.push(chars[i]);
                    i += 1;
                }
                i += 1;
            }
            '"' => {
                in_word = true;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' && i + 1 < chars.len() && matches!(chars[i + 1], '"' | '\\' | '$' | '`') {
                        i += 1;
                    }
                    word.push(chars[i]);
                    i += 1;
                }
                i += 1;
            }
            '\\' => {
                in_word = true;
                if i + 1 < chars.len() {
                    word.push(chars[i + 1]);
                }
                i += 2;
            }
            ';' | '|' | '&' | '(' | ')' => {
                // `&>` redirects both streams; `|&` pipes both.
                if c == '&' && chars.get(i + 1) == Some(&'>') {
                    flush(&mut word, &mut in_word, &mut tokens);
                    let append = chars.get(i + 2) == Some(&'>');
                    tokens.push(Token::Redirect { fd: 1, append });
                    i += if append { 3 } else { 2 };
                    continue;
                }
                flush(&mut word, &mut in_word, &mut tokens);
                if !matches!(tokens.last(), Some(Token::Sep)) {
                    tokens.push(Token::Sep);
                }
                i += 1;
                while i < chars.len() && matches!(chars[i], '|' | '&' | ';') {
                    i += 1;
                }
            }
            '>' => {
                // A file descriptor written just before (`2>`) belongs to the operator.
                let mut fd = 1;
                if in_word && word.len() == 1 && word.chars().all(|d| d.is_ascii_digit()) {
                    fd = word.parse().unwrap_or(1);
                    word.clear();
                    in_word = false;
                }
                flush(&mut word, &mut in_word, &mut tokens);
                let append = chars.get(i + 1) == Some(&'>');
                i += if append { 2 } else { 1 };
                if chars.get(i) == Some(&'|') {
                    i += 1;
                }
                if chars.get(i) == Some(&'&') {
                    // `2>&1`: a descriptor, not a file.
                    i += 1;
                    while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '-') {
                        i += 1;
                    }
                    continue;
                }
                tokens.push(Token::Redirect { fd, append });
            }
            '<' => {
                flush(&mut word, &mut in_word, &mut tokens);
                if chars.get(i + 1) == Some(&'<') && chars.get(i + 2) != Some(&'<') {
                    tokens.push(Token::HereDoc);
                    i += 2;
                    if chars.get(i) == Some(&'-') {
                        i += 1;
                    }
                } else {
                    tokens.push(Token::Input);
                    while i < chars.len() && chars[i] == '<' {
                        i += 1;
                    }
                }
            }
            _ => {
                in_word = true;
                word.push(c);
                i += 1;
            }
        }
    }
    flush(&mut word, &mut in_word, &mut tokens);
    tokens
}

/// The files a shell command line changes.
fn shell_effects(command: &str, out: &mut Vec<(FileAction, String)>) {
    let mut heredoc_end: Vec<String> = Vec::new();
    for line in command.lines() {
        if let Some(end) = heredoc_end.first() {
            if line.trim() == end {
                heredoc_end.remove(0);
            }
            continue;
        }
        let tokens = shell_tokens(line);
        let mut simple: Vec<String> = Vec::new();
        let mut i = 0;
        while i <= tokens.len() {
            match tokens.get(i) {
                None | Some(Token::Sep) => {
                    simple_command_effects(&simple, out);
                    simple.clear();
                }
                Some(Token::Word(w)) => simple.push(w.clone()),
                Some(Token::Redirect { fd, append }) => {
                    if let Some(Token::Word(target)) = tokens.get(i + 1) {
                        if *fd == 1 && looks_like_path(target) && !target.starts_with('&') {
                            let action = if *append { FileAction::Modified } else { FileAction::Written };
                            out.push((action, target.clone()));
                        }
                        i += 1;
                    }
                }
                Some(Token::HereDoc) => {
                    if let Some(Token::Word(end)) = tokens.get(i + 1) {
                        heredoc_end.push(end.clone());
                        i += 1;
                    }
                }
                Some(Token::Input) => i += 1,
            }
            i += 1;
        }
    }
}

/// The files one simple command (its words) changes.
fn simple_command_effects(words: &[String], out: &mut Vec<(FileAction, String)>) {
    let mut words: &[String] = words;
    // Prefixes that run the real command: assignments, sudo, env, time, ...
    while let Some(first) = words.first() {
        let is_assignment = first.contains('=')
            && !first.starts_with(['-', '='])
            && first.split('=').next().is_some_and(|n| n.chars().all(|c| c.is_alphanumeric() || c == '_'));
        if is_assignment
            || matches!(
                first.as_str(),
                "sudo" | "env" | "time" | "command" | "nohup" | "exec" | "then" | "do" | "else" | "{"
            )
        {
            words = &words[1..];
        } else {
            break;
        }
    }
    let Some(first) = words.first() else { return };
    let name = first.rsplit('/').next().unwrap_or(first);
    let mut rest = &words[1..];
    let name = if name == "git" {
        match rest.first().map(String::as_str) {
            Some(sub @ ("rm" | "mv")) => {
                rest = &rest[1..];
                sub
            }
            _ => return,
        }
    } else {
        name
    };
    let operands = |rest: &[String]| -> Vec<String> {
        let mut ops = Vec::new();
        let mut options = true;
        for w in rest {
            if options && w == "--" {
                options = false;
            } else if options && w.starts_with('-') && w.len() > 1 {
            } else if looks_like_path(w) {
                ops.push(w.clone());
            }
        }
        ops
    };
    match name {
        "rm" | "rmdir" | "unlink" | "shred" => {
            for p in operands(rest) {
                out.push((FileAction::Deleted, p));
            }
        }
        "touch" | "mkdir" => {
            for p in operands(rest) {
                out.push((FileAction::Created, p));
            }
        }
        "mv" => {
            let ops = operands(rest);
            if ops.len() >= 2 {
                let (dest, sources) = ops.split_last().expect("two or more");
                for s in sources {
                    out.push((FileAction::MovedTo(dest.clone()), s.clone()));
                }
            }
        }
        "cp" | "install" | "ln" => {
            let ops = operands(rest);
            if ops.len() >= 2 {
                out.push((FileAction::Written, ops[ops.len() - 1].clone()));
            }
        }
        "tee" => {
            let append = rest.iter().any(|w| w == "-a" || w == "--append");
            for p in operands(rest) {
                out.push((if append { FileAction::Modified } else { FileAction::Written }, p));
            }
        }
        "truncate" => {
            let mut skip = false;
            for w in rest {
                if skip {
                    skip = false;
                } else if w == "-s" || w == "--size" {
                    skip = true;
                } else if !w.starts_with('-') && looks_like_path(w) {
                    out.push((FileAction::Modified, w.clone()));
                }
            }
        }
        "sed" | "perl" => in_place_effects(name, rest, out),
        _ => {}
    }
}

/// `sed -i` and `perl -i` (`-pi`, `-i.bak`, `--in-place`): the files after the script.
fn in_place_effects(name: &str, rest: &[String], out: &mut Vec<(FileAction, String)>) {
    let mut in_place = false;
    let mut script_given = false;
    let mut operands = Vec::new();
    let mut i = 0;
    let mut options = true;
    while i < rest.len() {
        let w = &rest[i];
        if options && w == "--" {
            options = false;
        } else if options && w.starts_with("--") {
            if w.starts_with("--in-place") {
                in_place = true;
            } else if w == "--expression" || w == "--file" {
                script_given = true;
                i += 1;
            } else if w.starts_with("--expression=") || w.starts_with("--file=") {
                script_given = true;
            }
        } else if options && w.starts_with('-') && w.len() > 1 {
            let flags = &w[1..];
            // Letters up to the first that takes a value (`-i.bak`: i then a suffix).
            for (at, f) in flags.char_indices() {
                match f {
                    'i' => {
                        in_place = true;
                        if name == "sed" || at + 1 < flags.len() {
                            break; // the rest is the backup suffix
                        }
                        // perl: `-i` alone; a following empty word is not taken
                    }
                    'e' | 'f' => {
                        script_given = true;
                        if at + 1 == flags.len() {
                            i += 1; // the script is the next word
                        }
                        break;
                    }
                    _ => {}
                }
            }
            // macOS `sed -i '' ...`: the empty word is the suffix.
            if name == "sed" && w == "-i" && rest.get(i + 1).is_some_and(|n| n.is_empty()) {
                i += 1;
            }
        } else {
            operands.push(w.clone());
        }
        i += 1;
    }
    if !in_place {
        return;
    }
    let files = if script_given { &operands[..] } else { operands.get(1..).unwrap_or(&[]) };
    for f in files {
        if looks_like_path(f) {
            out.push((FileAction::Modified, f.clone()));
        }
    }
}

// ---- Patches -------------------------------------------------------------------------------

/// The files a patch in `text` changes: `apply_patch` blocks (`*** Add File: p`,
/// `*** Update File: p` with `*** Move to: q`, `*** Delete File: p`) and unified or git
/// diffs (`--- a/p` / `+++ b/p`, `/dev/null` for created and deleted files, `rename from`
/// / `rename to`).
fn patch_effects(text: &str, out: &mut Vec<(FileAction, String)>) {
    if !(text.contains("*** ") || text.contains("--- ") || text.contains("diff --git ")) {
        return;
    }
    let mut updating: Option<String> = None;
    let mut minus: Option<String> = None;
    let mut rename_from: Option<String> = None;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(p) = line.strip_prefix("*** Add File: ") {
            push_path(out, FileAction::Created, p);
            updating = None;
        } else if let Some(p) = line.strip_prefix("*** Update File: ") {
            push_path(out, FileAction::Modified, p);
            updating = Some(p.trim().to_owned());
        } else if let Some(p) = line.strip_prefix("*** Delete File: ") {
            push_path(out, FileAction::Deleted, p);
            updating = None;
        } else if let Some(q) = line.strip_prefix("*** Move to: ") {
            if let Some(p) = updating.take() {
                if looks_like_path(q) {
                    out.push((FileAction::MovedTo(q.trim().to_owned()), p));
                }
            }
        } else if let Some(rest) = line.strip_prefix("diff --git ") {
            // `a/x b/y`: the new path is after the last " b/".
            if let Some(at) = rest.rfind(" b/") {
                push_path(out, FileAction::Modified, &rest[at + 3..]);
            }
            minus = None;
        } else if let Some(p) = line.strip_prefix("--- ") {
            minus = Some(diff_path(p, "a/"));
        } else if let Some(p) = line.strip_prefix("+++ ") {
            let plus = diff_path(p, "b/");
            match minus.take() {
                Some(m) if m == "/dev/null" => push_path(out, FileAction::Created, &plus),
                Some(m) if plus == "/dev/null" => push_path(out, FileAction::Deleted, &m),
                Some(_) => push_path(out, FileAction::Modified, &plus),
                None => {}
            }
        } else if let Some(p) = line.strip_prefix("rename from ") {
            rename_from = Some(p.trim().to_owned());
        } else if let Some(q) = line.strip_prefix("rename to ") {
            if let Some(p) = rename_from.take() {
                if looks_like_path(&p) && looks_like_path(q) {
                    out.push((FileAction::MovedTo(q.trim().to_owned()), p));
                }
            }
        }
    }
}

/// A path on a `---` / `+++` line: without a timestamp after a tab, and without git's
/// `a/` / `b/` prefix.
fn diff_path(p: &str, prefix: &str) -> String {
    let p = p.split('\t').next().unwrap_or(p).trim();
    if p == "/dev/null" {
        return p.to_owned();
    }
    p.strip_prefix(prefix).unwrap_or(p).to_owned()
}

fn push_path(out: &mut Vec<(FileAction, String)>, action: FileAction, p: &str) {
    let p = p.trim();
    if looks_like_path(p) {
        out.push((action, p.to_owned()));
    }
}

// ---- Outcomes ------------------------------------------------------------------------------

/// How a result ended: its exit code if it states one, else its error flag, else (for
/// text that says it failed, [`super::failure`]) an error.
fn outcome_of(text: &str, is_error: bool, shell: bool) -> Outcome {
    // Only a process has an exit code: a file that mentions one is not a failure.
    let code = if shell { exit_code(text) } else { None };
    match code {
        Some(0) if !is_error => Outcome::Ok,
        Some(0) => Outcome::Error(error_line(text)),
        Some(code) => Outcome::Exit(code, error_line(text)),
        None if is_error || says_failed(text, shell) || refused(text) => Outcome::Error(error_line(text)),
        None => Outcome::Ok,
    }
}

/// A tool's own refusal (`edit_file: old_string not found in a.py`) or pydantic's
/// validation errors (`1 validation error for edit_file`) in the first line: errors for
/// the summary (which lists them), though not clear enough failures for the prune step's
/// shared detector ([`super::failure`]), where a false positive would hide a useful output.
fn refused(text: &str) -> bool {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    let first = prefix_at_boundary(first, 200).to_ascii_lowercase();
    if first.contains(" validation error for ") || first.contains(" validation errors for ") {
        return true;
    }
    first.split_once(": ").is_some_and(|(tool, rest)| {
        let a_name = !tool.is_empty() && tool.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        a_name && (rest.contains(" not found") || rest.starts_with("error") || rest.contains(" failed"))
    })
}

/// `path:line:col: message` (or `path:line: message`), as compilers and linters write.
fn is_diagnostic(line: &str) -> bool {
    let mut fields = line.splitn(4, ':');
    let (Some(path), Some(row)) = (fields.next(), fields.next()) else { return false };
    let numeric = |s: &str| !s.is_empty() && s.len() <= 7 && s.bytes().all(|b| b.is_ascii_digit());
    !path.is_empty() && !path.contains(' ') && path.contains(['.', '/']) && numeric(row) && fields.next().is_some()
}

/// The line of a failed result that says why: the last line of a Python traceback, else
/// the first line that names an error, else the first line.
fn error_line(text: &str) -> String {
    let head = prefix_at_boundary(text, 16 * 1024);
    if text.contains("Traceback (most recent call last)") {
        let tail = suffix_at_boundary(text, 4096);
        if let Some(line) = tail.lines().rev().map(str::trim_end).find(|l| !l.trim().is_empty() && !l.starts_with(' '))
        {
            return shorten(line, ERROR_CHARS);
        }
    }
    // pytest's short summary (`FAILED path::test - Error: why`): the last one.
    if let Some(line) = head.lines().rev().find(|l| l.starts_with("FAILED ") || l.starts_with("ERROR ")) {
        return shorten(line, ERROR_CHARS);
    }
    // A compiler's or linter's diagnostic: `path:line:col: message`.
    if let Some(line) = head.lines().find(|l| is_diagnostic(l)) {
        return shorten(line, ERROR_CHARS);
    }
    const WORDS: [&str; 9] = [
        "error",
        "failed",
        "failure",
        "exception",
        "fatal",
        "not found",
        "no such file",
        "permission denied",
        "panicked",
    ];
    let named = head.lines().find(|l| {
        // Banners (`==== FAILURES ====`, `____ test_x ____`) name no error.
        if l.trim_start().starts_with(['=', '_', '-']) {
            return false;
        }
        let lower = l.to_ascii_lowercase();
        WORDS.iter().any(|w| lower.contains(w))
    });
    let line = named.or_else(|| head.lines().find(|l| !l.trim().is_empty())).unwrap_or("");
    shorten(line, ERROR_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::{encoding, EncodingId};

    fn call(id: &str, tool: &str, args: &str) -> Event {
        Event::call(id, tool, args)
    }

    fn file_set(facts: &Facts) -> Vec<(String, String)> {
        facts.files.iter().map(|f| (f.action.code().to_owned(), f.path.clone())).collect()
    }

    fn session() -> Vec<Vec<Event>> {
        vec![
            vec![Event::system("You are a coding agent.")],
            vec![Event::prompt("Add retries to the HTTP client in src/http.py.\nKeep the API unchanged.")],
            vec![
                Event::text("I'll use exponential backoff with jitter. Let me read the file first."),
                call("c1", "read_file", r#"{"path": "src/http.py"}"#),
            ],
            vec![Event::result("c1", "import requests\n", false)],
            vec![
                call("c2", "edit_file", r#"{"path": "src/http.py", "old": "a", "new": "b"}"#),
                call("c3", "bash", r#"{"command": "pytest -q tests/test_http.py"}"#),
            ],
            vec![
                Event::result("c2", "ok", false),
                Event::result("c3", "F.\nFAILED tests/test_http.py::test_retry - AssertionError\nexit code: 1", false),
            ],
            vec![Event::prompt("also log each retry")],
            vec![call("c4", "write_file", r#"{"file_path": "src/retry_log.py", "content": "x"}"#)],
            vec![Event::result("c4", "written", false)],
        ]
    }

    fn refs(messages: &[Vec<Event>]) -> Vec<&[Event]> {
        messages.iter().map(Vec::as_slice).collect()
    }

    #[test]
    fn the_task_is_the_first_prompt_verbatim_and_later_prompts_are_follow_ups() {
        let facts = summarize(refs(&session()));
        assert_eq!(
            facts.task.as_deref(),
            Some("Add retries to the HTTP client in src/http.py.\nKeep the API unchanged.")
        );
        assert_eq!(facts.follow_ups, vec!["also log each retry".to_owned()]);
        let text = facts.render(None).text;
        assert!(text.contains("Add retries to the HTTP client in src/http.py.\nKeep the API unchanged.\n"));
    }

    #[test]
    fn files_written_by_tools_are_listed_and_files_only_read_are_not() {
        let facts = summarize(refs(&session()));
        assert_eq!(file_set(&facts), vec![("M".into(), "src/http.py".into()), ("W".into(), "src/retry_log.py".into())]);
    }

    #[test]
    fn a_failed_command_is_an_open_error_until_it_succeeds() {
        let mut messages = session();
        let facts = summarize(refs(&messages));
        assert_eq!(facts.commands.len(), 1);
        assert_eq!(
            facts.commands[0].outcome,
            Outcome::Exit(1, "FAILED tests/test_http.py::test_retry - AssertionError".into())
        );
        assert_eq!(facts.errors.len(), 1);
        assert!(facts.errors[0].what.contains("pytest -q tests/test_http.py"));
        messages.push(vec![call("c5", "bash", r#"{"command": "pytest -q tests/test_http.py"}"#)]);
        messages.push(vec![Event::result("c5", "2 passed\nexit code: 0", false)]);
        let facts = summarize(refs(&messages));
        assert!(facts.errors.is_empty());
        assert_eq!(facts.commands[0].runs, 2);
        assert_eq!(facts.commands[0].outcome, Outcome::Ok);
    }

    #[test]
    fn decisions_are_stated_intentions_not_routine_steps() {
        let facts = summarize(refs(&session()));
        assert_eq!(facts.decisions, vec!["I'll use exponential backoff with jitter.".to_owned()]);
    }

    #[test]
    fn folding_in_two_steps_equals_folding_at_once_at_every_split() {
        let messages = session();
        let all = summarize(refs(&messages));
        for split in 0..=messages.len() {
            let first = summarize(refs(&messages[..split]));
            let both = first.merged(refs(&messages[split..]));
            assert_eq!(both, all, "split at {split}");
            assert_eq!(both.render(None), all.render(None));
        }
    }

    #[test]
    fn shell_commands_that_change_files_are_read() {
        let mut out = Vec::new();
        shell_effects(
            "cd repo && rm -rf build/ old.txt; mv a.py b.py && touch new.md\nsed -i 's/x/y/g' src/c.py src/d.py\n\
             echo hi > out.log 2>&1 | tee -a notes.txt\ncat > gen.py <<'EOF'\nrm not_a_command.py\nEOF\n\
             git mv x.rs y.rs; perl -pi -e 's/a/b/' e.pl; sed -n 1,5p f.py; git rm -q gone.c; cp tpl.cfg app.cfg\n\
             echo '>' quoted.txt; ls > /dev/null; sed -i '' -e 's/a/b/' mac.txt",
            &mut out,
        );
        let got: Vec<(String, String)> = out
            .iter()
            .map(|(a, p)| match a {
                FileAction::MovedTo(to) => ("R".to_owned(), format!("{p}->{to}")),
                a => (a.code().to_owned(), p.clone()),
            })
            .collect();
        let want: Vec<(String, String)> = [
            ("D", "build/"),
            ("D", "old.txt"),
            ("R", "a.py->b.py"),
            ("A", "new.md"),
            ("M", "src/c.py"),
            ("M", "src/d.py"),
            ("W", "out.log"),
            ("M", "notes.txt"),
            ("W", "gen.py"),
            ("R", "x.rs->y.rs"),
            ("M", "e.pl"),
            ("D", "gone.c"),
            ("W", "app.cfg"),
            ("M", "mac.txt"),
        ]
        .iter()
        .map(|(a, p)| (a.to_string(), p.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn patches_name_their_files() {
        let mut out = Vec::new();
        patch_effects(
            "*** Begin Patch\n*** Add File: src/new.py\n+x\n*** Update File: src/old.py\n*** Move to: src/moved.py\n@@\n-a\n+b\n\
             *** Delete File: src/gone.py\n*** End Patch\n\
             diff --git a/lib/x.c b/lib/x.c\nindex 1..2\n--- a/lib/x.c\n+++ b/lib/x.c\n@@ -1 +1 @@\n\
             --- /dev/null\n+++ b/lib/fresh.c\n--- a/lib/dead.c\t2024-01-01\n+++ /dev/null\n",
            &mut out,
        );
        let mut facts = Facts::default();
        for (a, p) in out {
            facts.file(a, p);
        }
        let got: Vec<String> = facts
            .files
            .iter()
            .map(|f| match &f.action {
                FileAction::MovedTo(to) => format!("R {} -> {}", f.path, to),
                a => format!("{} {}", a.code(), f.path),
            })
            .collect();
        assert_eq!(
            got,
            vec![
                "A src/new.py",
                "R src/old.py -> src/moved.py",
                "D src/gone.py",
                "M lib/x.c",
                "A lib/fresh.c",
                "D lib/dead.c"
            ]
        );
    }

    #[test]
    fn the_edit_tools_subcommand_decides_what_happened() {
        let facts = summarize(refs(&[
            vec![call("1", "str_replace_based_edit_tool", r#"{"command": "view", "path": "a.py"}"#)],
            vec![call(
                "2",
                "str_replace_based_edit_tool",
                r#"{"command": "create", "path": "b.py", "file_text": "x"}"#,
            )],
            vec![call("3", "str_replace_based_edit_tool", r#"{"command": "str_replace", "path": "c.py"}"#)],
            vec![call("4", "apply_patch", r#"{"type": "delete_file", "path": "d.py"}"#)],
            vec![call("5", "move_file", r#"{"source": "e.py", "destination": "f.py"}"#)],
            vec![call("6", "Edit", r#"{"file_path": "/abs/g.py", "old_string": "a", "new_string": "b"}"#)],
            vec![call("7", "local_shell", r#"{"type": "exec", "command": ["bash", "-lc", "rm h.py"]}"#)],
        ]));
        assert_eq!(
            facts.render(None).text.lines().filter(|l| l.starts_with("- ") && l.len() < 40).collect::<Vec<_>>()[..6],
            ["- A b.py", "- M c.py", "- D d.py", "- R e.py -> f.py", "- M /abs/g.py", "- D h.py"]
        );
    }

    #[test]
    fn arguments_that_are_not_json_are_the_command_or_the_patch() {
        let facts = summarize(refs(&[
            vec![call("1", "shell", "rm -f tmp.txt")],
            vec![call("2", "apply_patch", "*** Begin Patch\n*** Update File: z.py\n*** End Patch")],
        ]));
        assert_eq!(file_set(&facts), vec![("D".into(), "tmp.txt".into()), ("M".into(), "z.py".into())]);
        assert_eq!(facts.pending_commands().collect::<Vec<_>>(), vec!["rm -f tmp.txt"]);
    }

    #[test]
    fn json_strings_are_decoded_with_their_keys() {
        let mut out = Vec::new();
        assert!(json_strings(
            r#"{"Path": "a\"b\\c\u00e9\ud83d\ude00", "n": 1, "list": ["x", {"file": "y"}], "o": {"k": "v"}}"#,
            &mut out
        ));
        let got: Vec<(String, String)> = out.into_iter().map(|(k, v)| (k, v.into_owned())).collect();
        assert_eq!(
            got,
            vec![
                ("path".into(), "a\"b\\cé😀".into()),
                ("list".into(), "x".into()),
                ("file".into(), "y".into()),
                ("k".into(), "v".into())
            ]
        );
        assert!(!json_strings("rm -rf x", &mut Vec::new()));
        // Broken JSON gives what it can, and never panics.
        for broken in
            [r#"{"path": "abc"#, r#"{"path"#, r#"["\"#, r#"{"a": "\u12"}"#, "[\"\\ud800\"]", "{\"é\\é\": \"x\"}"]
        {
            json_strings(broken, &mut Vec::new());
        }
    }

    #[test]
    fn the_cap_shortens_decisions_and_commands_before_files_and_never_cuts_the_task() {
        let enc = encoding(EncodingId::O200kBase);
        let mut messages = vec![vec![Event::prompt("Refactor the parser.")]];
        for i in 0..30 {
            messages.push(vec![
                Event::text(format!(
                    "I'll use approach number {i} for the tokenizer module, decided after long thought."
                )),
                call(&format!("w{i}"), "write_file", &format!(r#"{{"path": "src/mod_{i}.rs"}}"#)),
                call(&format!("b{i}"), "bash", &format!(r#"{{"command": "cargo test --package parser_{i}"}}"#)),
            ]);
            messages.push(vec![
                Event::result(format!("w{i}"), "ok", false),
                Event::result(format!("b{i}"), "exit code: 0", false),
            ]);
        }
        let facts = summarize(refs(&messages));
        let full = facts.render(Some((enc, 100_000)));
        assert_eq!(full.omitted, 0);
        let capped = facts.render(Some((enc, full.tokens as usize / 2)));
        assert!(capped.tokens <= full.tokens / 2, "{} > {}", capped.tokens, full.tokens / 2);
        assert_eq!(capped.tokens, counting::count(enc, &capped.text) as u64);
        assert!(capped.omitted > 0);
        assert!(capped.text.contains("Refactor the parser."));
        for i in 0..30 {
            assert!(capped.text.contains(&format!("src/mod_{i}.rs")), "path {i} lost");
        }
        assert!(capped.text.contains("earlier items omitted"));
        // A cap below the task alone: the task stays whole, everything else says it was cut.
        let tiny = facts.render(Some((enc, 5)));
        assert!(tiny.text.contains("Refactor the parser."));
        assert!(tiny.text.contains("more paths omitted"));
    }

    #[test]
    fn rendering_is_deterministic_and_a_rendered_summary_read_back_keeps_task_and_files() {
        let facts = summarize(refs(&session()));
        let text = facts.render(None).text;
        assert_eq!(text, summarize(refs(&session())).render(None).text);
        assert!(text.starts_with(HEADER_PREFIX));
        let again = summarize(refs(&[vec![Event::prompt(text.clone())], vec![Event::prompt("next")]]));
        assert_eq!(again.task, facts.task);
        assert_eq!(file_set(&again), file_set(&facts));
        assert_eq!(again.follow_ups, vec!["next".to_owned()]);
    }

    #[test]
    fn errors_are_read_from_flags_exit_codes_and_tracebacks() {
        assert_eq!(outcome_of("all good", false, true), Outcome::Ok);
        assert_eq!(outcome_of("boom", true, false), Outcome::Error("boom".into()));
        assert_eq!(
            outcome_of("Error: no such file: x.py", false, false),
            Outcome::Error("Error: no such file: x.py".into())
        );
        assert_eq!(
            outcome_of("Traceback (most recent call last):\n  File \"x\", line 1\nValueError: bad\n", false, true),
            Outcome::Error("ValueError: bad".into())
        );
        assert_eq!(
            outcome_of("{\"output\": \"\", \"returncode\": 2}", false, true),
            Outcome::Exit(2, "{\"output\": \"\", \"returncode\": 2}".into())
        );
        assert_eq!(exit_code("Process exited with code 127"), Some(127));
        assert_eq!(exit_code("nothing"), None);
    }

    #[test]
    fn the_error_line_is_pytests_failed_line_or_a_diagnostic_and_refusals_are_errors() {
        let pytest = "===== test session starts =====\ncollected 3 items\n\n===== FAILURES =====\n\
                      ____ test_a ____\nE   KeyError: x\n===== short test summary info =====\n\
                      FAILED tests/t.py::test_a - KeyError: x\n===== 1 failed =====\nexit code: 1";
        assert_eq!(outcome_of(pytest, false, true), Outcome::Exit(1, "FAILED tests/t.py::test_a - KeyError: x".into()));
        let ruff = "src/a.py:3:8: F401 `os` imported but unused\nFound 1 error.\n[exit code 1]";
        assert_eq!(
            outcome_of(ruff, false, true),
            Outcome::Exit(1, "src/a.py:3:8: F401 `os` imported but unused".into())
        );
        let refused = "edit_file: old_string not found in src/a.py. Read the file again.";
        assert_eq!(outcome_of(refused, false, false), Outcome::Error(refused.into()));
        let invalid = "1 validation error for edit_file\npath Field required";
        assert_eq!(outcome_of(invalid, false, false), Outcome::Error("1 validation error for edit_file".into()));
        // A file that happens to say "error" is no failure.
        assert_eq!(outcome_of("def error_line(text):\n    pass", false, false), Outcome::Ok);
    }

    #[test]
    fn the_last_error_is_kept_once_resolved_and_never_cut() {
        let messages = vec![
            vec![Event::prompt("task")],
            vec![call("c1", "bash", r#"{"command": "pytest -q"}"#)],
            vec![Event::result("c1", "FAILED tests/t.py::test_a - KeyError: x\nexit code: 1", false)],
            vec![call("c2", "edit_file", r#"{"old": "a"}"#)],
            vec![Event::result("c2", "1 validation error for edit_file", true)],
            vec![call("c3", "edit_file", r#"{"path": "src/a.py", "old": "a"}"#)],
            vec![Event::result("c3", "ok", false)],
            vec![call("c4", "bash", r#"{"command": "pytest -q"}"#)],
            vec![Event::result("c4", "3 passed\nexit code: 0", false)],
        ];
        let facts = summarize(refs(&messages));
        // The validation error is resolved by the tool's next success; the tests pass now.
        assert!(facts.errors.is_empty(), "{:?}", facts.errors);
        assert_eq!(facts.last_error.as_deref(), Some("edit_file: 1 validation error for edit_file"));
        let text = facts.render(None).text;
        assert!(
            text.contains("## Last error (resolved since)\n- edit_file: 1 validation error for edit_file\n"),
            "{text}"
        );
        // Open, it is listed once, last of the open errors, and survives any cap.
        let open = summarize(refs(&messages[..3]));
        let enc = encoding(EncodingId::O200kBase);
        let capped = open.render(Some((enc, 1))).text;
        assert!(capped.contains("- bash `pytest -q`: exit 1: FAILED tests/t.py::test_a - KeyError: x"), "{capped}");
        assert!(!capped.contains("## Last error"));
        assert_eq!(Facts::from_bytes(&facts.to_bytes()).as_ref(), Some(&facts));
    }

    #[test]
    fn a_request_made_again_is_listed_once_where_it_was_last_made() {
        let messages: Vec<Vec<Event>> = ["task", "update the README", "run the tests", "update the README"]
            .iter()
            .map(|p| vec![Event::prompt(*p)])
            .collect();
        let facts = summarize(refs(&messages));
        assert_eq!(facts.follow_ups, vec!["run the tests".to_owned(), "update the README".to_owned()]);
    }

    #[test]
    fn long_lists_keep_their_most_recent_items_and_count_the_rest() {
        let mut messages = vec![vec![Event::prompt("task")]];
        for i in 0..(MAX_DECISIONS + 5) {
            messages.push(vec![Event::text(format!("We'll use variant {i} of the design."))]);
        }
        let facts = summarize(refs(&messages));
        assert_eq!(facts.decisions.len(), MAX_DECISIONS);
        assert_eq!(facts.decisions_dropped, 5);
        assert!(facts.render(None).text.contains("(5 earlier items omitted)"));
    }

    #[test]
    fn a_path_changed_after_it_was_moved_keeps_the_destination_listed() {
        let mut facts = Facts::default();
        facts.file(FileAction::MovedTo("b.py".into()), "a.py".into());
        facts.file(FileAction::Written, "a.py".into());
        facts.file(FileAction::MovedTo("c.py".into()), "a.py".into());
        facts.file(FileAction::MovedTo("d.py".into()), "a.py".into());
        let mut paths = facts.paths();
        paths.sort();
        assert_eq!(paths, ["a.py", "b.py", "c.py", "d.py"]);
    }

    #[test]
    fn a_file_read_that_mentions_an_exit_code_is_no_failure_but_a_shell_exit_code_is() {
        let facts = summarize(refs(&[
            vec![call("1", "read_file", r#"{"path": "notes.md"}"#), call("2", "bash", r#"{"command": "make"}"#)],
            vec![
                Event::result("1", "the build returned exit code: 2 last week", false),
                Event::result("2", "exit code: 2", false),
            ],
            vec![call("3", "shell_call", r#"{"commands": ["rm a.txt", "touch b.txt"]}"#)],
        ]));
        assert_eq!(facts.errors.len(), 1);
        assert_eq!(facts.errors[0].what, "bash `make`");
        assert_eq!(file_set(&facts), vec![("D".into(), "a.txt".into()), ("A".into(), "b.txt".into())]);
    }

    #[test]
    fn a_summary_met_again_as_a_system_message_keeps_its_task() {
        let text = summarize(refs(&session())).render(None).text;
        let facts = summarize(refs(&[vec![Event::system(text)]]));
        assert_eq!(
            facts.task.as_deref(),
            Some("Add retries to the HTTP client in src/http.py.\nKeep the API unchanged.")
        );
    }

    #[test]
    fn facts_written_as_bytes_read_back_equal_and_corrupt_bytes_are_refused() {
        let mut messages = session();
        messages.push(vec![call("p1", "bash", r#"{"command": "make"}"#)]);
        messages.push(vec![call("m1", "move_file", r#"{"source": "a", "destination": "b"}"#)]);
        let facts = summarize(refs(&messages));
        let bytes = facts.to_bytes();
        assert_eq!(Facts::from_bytes(&bytes).as_ref(), Some(&facts));
        assert_eq!(Facts::from_bytes(&bytes).unwrap().merged(refs(&session())), facts.merged(refs(&session())));
        for cut in 0..bytes.len() {
            assert!(Facts::from_bytes(&bytes[..cut]).is_none(), "a prefix of {cut} bytes was accepted");
        }
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0xff;
            let _ = Facts::from_bytes(&bad); // never panics
        }
    }

    #[test]
    fn shorten_keeps_short_text_and_cuts_long_text_on_characters() {
        assert_eq!(shorten("  a \n b  ", 10), "a b");
        assert_eq!(shorten("abcdef", 6), "abcdef");
        assert_eq!(shorten("abcdefg", 6), "abcde…");
        assert_eq!(shorten("ééééééé", 4), "ééé…");
    }
}
