//! A conversation history as the compactor sees it, whatever format it came in.
//!
//! The readers (`python/read.rs`) turn OpenAI, Anthropic and pydantic-ai messages into
//! this shape; [`crate::compact`] works on it alone. Parts live in one flat vector with
//! each message owning a range of it: one allocation for a whole history instead of one
//! per message. The kinds are described in `docs/compaction.md`.

use std::ops::Range;

/// Interned tool-call id: equal ids, equal numbers.
pub type CallId = u32;

/// Tokens every message costs besides its parts by default: the 3 tokens of the chat
/// format's message framing plus 1 for the role, as OpenAI's published counting recipe
/// does. A history read for an encoding of another family carries that family's value
/// in [`History::message_overhead`] (`Encoding::message_overhead`).
pub const MESSAGE_OVERHEAD: u64 = 4;

/// Tokens charged for an image, audio clip or other binary item, which is never read:
/// what OpenAI charges for a 1024x1024 image at high detail (85 + 4 * 170).
pub const BINARY_PART_TOKENS: u64 = 765;

/// The content of a synthesized result answering a call whose result was cut away.
pub const STUB_TEXT: &str = "[tool result elided by tokensieve]";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Sent to the model: system prompt, user prompts, tool results.
    Request,
    /// Produced by the model: text, thinking, tool calls.
    Response,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartKind {
    /// System prompt, developer message, instructions: pins its message.
    System,
    /// A user-authored prompt: the latest one pins its message.
    Prompt,
    /// A tool call that must be answered.
    Call(CallId),
    /// A tool result that must answer a call.
    Result(CallId),
    /// A tool result synthesized by tokensieve (its content is exactly [`STUB_TEXT`]): it
    /// pairs like any result, and a run of requests made only of these does not start an
    /// exchange, so compacting a stub-mode output again moves no boundary.
    StubResult(CallId),
    /// Everything else, kept with its message.
    Content,
    /// Thinking or reasoning: kept with its message, but cannot stand alone (a message
    /// left with only thinking is removed; providers reject it once thinking is stripped).
    Thinking,
    /// A request's instructions (pydantic-ai): sent only with the last request of the
    /// history, so counted only there; like thinking, it cannot keep a message alone.
    Instructions,
}

impl PartKind {
    /// The call a result answers (a real or a synthesized one).
    pub fn result_id(self) -> Option<CallId> {
        match self {
            PartKind::Result(id) | PartKind::StubResult(id) => Some(id),
            _ => None,
        }
    }

    pub fn is_result(self) -> bool {
        self.result_id().is_some()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    pub kind: PartKind,
    pub tokens: u64,
    /// For a call: the tokens of the stub result that would answer it.
    pub stub_tokens: u64,
}

impl Part {
    pub fn new(kind: PartKind, tokens: u64) -> Self {
        Part { kind, tokens, stub_tokens: 0 }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub side: Side,
    /// Indices of this message's parts in [`History::parts`].
    pub parts: Range<usize>,
    /// Kept or dropped together with the next message (a Responses `reasoning` item).
    pub bonded_to_next: bool,
}

/// Where a tool result must stand relative to its call for the provider to accept it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pairing {
    /// In the run of request messages right after the call's message, whatever they hold
    /// (pydantic-ai: consecutive requests are merged, tool results hoisted first).
    RequestRun,
    /// In the run of request messages made only of results right after the call's
    /// message, or in the first other request after them (OpenAI chat: a block of tool
    /// messages; Anthropic: consecutive user turns are merged, and in the merged turn the
    /// results must come first).
    ToolBlock,
    /// Anywhere after the call (OpenAI Responses).
    Anywhere,
}

/// Where a synthesized result answering a call of message `i` goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StubPlacement {
    /// Into the next message if it is a request, after its results; else a new request
    /// after `i` (Anthropic, pydantic-ai: a message holds many results).
    NextRequest,
    /// One new tool message per call, after the block of tool messages following `i`
    /// (OpenAI chat: a message holds one result).
    AfterToolBlock,
    /// One new output item per call, right after `i` (Responses).
    AfterCall,
}

/// What a format's provider enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    pub pairing: Pairing,
    pub stubs: StubPlacement,
    /// The first message that is not a system message must be a request (Anthropic,
    /// pydantic-ai).
    pub user_first: bool,
    /// A history that ends with a request must still end with one, even emptied
    /// (pydantic-ai refuses a processed history that ends with a response).
    pub keep_last_request: bool,
}

impl Rules {
    pub const PYDANTIC_AI: Rules = Rules {
        pairing: Pairing::RequestRun,
        stubs: StubPlacement::NextRequest,
        user_first: true,
        keep_last_request: true,
    };
    pub const ANTHROPIC: Rules = Rules {
        pairing: Pairing::ToolBlock,
        stubs: StubPlacement::NextRequest,
        user_first: true,
        keep_last_request: false,
    };
    pub const OPENAI_CHAT: Rules = Rules {
        pairing: Pairing::ToolBlock,
        stubs: StubPlacement::AfterToolBlock,
        user_first: false,
        keep_last_request: false,
    };
    pub const RESPONSES: Rules = Rules {
        pairing: Pairing::Anywhere,
        stubs: StubPlacement::AfterCall,
        user_first: false,
        keep_last_request: false,
    };
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History {
    pub messages: Vec<Message>,
    pub parts: Vec<Part>,
    /// Tokens each request message costs besides its parts (its chat template's framing).
    pub message_overhead: u64,
    /// Tokens each response message costs besides its parts (harmony adds a channel).
    pub response_overhead: u64,
}

impl Default for History {
    fn default() -> Self {
        History {
            messages: Vec::new(),
            parts: Vec::new(),
            message_overhead: MESSAGE_OVERHEAD,
            response_overhead: MESSAGE_OVERHEAD,
        }
    }
}

impl History {
    /// Start a new message; parts pushed afterwards belong to it.
    pub fn begin(&mut self, side: Side) {
        let at = self.parts.len();
        self.messages.push(Message { side, parts: at..at, bonded_to_next: false });
    }

    /// Add a part to the last message begun; returns the part's index.
    pub fn push(&mut self, part: Part) -> usize {
        self.parts.push(part);
        let last = self.messages.last_mut().expect("begin() before push()");
        last.parts.end = self.parts.len();
        self.parts.len() - 1
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Tokens message `i` costs besides its parts: its side's template framing.
    pub fn overhead(&self, i: usize) -> u64 {
        match self.messages[i].side {
            Side::Request => self.message_overhead,
            Side::Response => self.response_overhead,
        }
    }

    /// Tokens of message `i`: its overhead and parts, its instructions only if asked
    /// (they are sent with the last request alone).
    pub fn message_tokens(&self, i: usize, with_instructions: bool) -> u64 {
        let parts = &self.parts[self.messages[i].parts.clone()];
        self.overhead(i)
            + parts
                .iter()
                .filter(|p| with_instructions || p.kind != PartKind::Instructions)
                .map(|p| p.tokens)
                .sum::<u64>()
    }

    /// Tokens of each message as the history is sent (instructions on its last request).
    pub fn tokens_per_message(&self) -> Vec<u64> {
        let last_request = self.messages.iter().rposition(|m| m.side == Side::Request);
        (0..self.len()).map(|i| self.message_tokens(i, Some(i) == last_request)).collect()
    }
}
