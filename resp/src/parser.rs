//! The client request parser.
//!
//! Owns [`RequestDecoder`], a `tokio_util::codec::Decoder` that turns a connection's input
//! buffer into [`Request`]s: multibulk requests (`*N\r\n` then N × `$len\r\n<bytes>\r\n`) and
//! inline requests (one line of blank-separated, optionally quoted words, as typed into telnet),
//! with Redis's rules and error texts (`processInputBuffer` in Redis's `networking.c`).
//!
//! Why not `redis-protocol`'s decoder (DESIGN.md, "The client protocol"): it recurses on nesting,
//! rejects inline requests, re-parses a partial frame from its start on every read and buffers
//! without bound. This one:
//! - is **flat**: client requests are arrays of bulk strings, so a nested array is the
//!   "expected '$'" error, found with no recursion;
//! - is **resumable**: each finished argument is split off the buffer as soon as it is complete,
//!   and the decoder remembers how many arguments remain, the length of the argument in progress
//!   and how far into an unfinished line it has already looked, so bytes are examined once however
//!   the request is cut into reads;
//! - is **bounded**: every length is checked against [`ParserLimits`] when its header is read,
//!   before anything is reserved or awaited;
//! - is **zero-copy**: arguments are `Bytes` slices of the read buffer (quoted inline words
//!   excepted). A slice keeps its whole read buffer alive, so code that stores an argument for
//!   long (a memtable, a cache) should copy small ones out;
//! - is **cheap for the common case**: a plain multibulk request already whole in the buffer
//!   is taken in one pass and one split (`parser/whole.rs`), and the argument vector of a
//!   finished request can be handed back ([`RequestDecoder::recycle`]) so the next one does not
//!   allocate. Anything else goes through the state machine.
//!
//! It never executes, interprets or answers a request, and never closes anything: on an error it
//! resets itself, discards the buffered input and returns the error; the connection replies
//! `-ERR <text>` and closes, as Redis does.

mod inline;
mod limits;
pub(crate) mod number;
#[cfg(test)]
mod tests;
mod whole;

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::error::ProtocolError;

pub use limits::ParserLimits;

/// How many argument slots to reserve up front for a multibulk request, whatever count it
/// announces, as Redis does (`min(multibulklen, 1024)`): the vector grows as arguments actually
/// arrive, so a large count costs nothing until the data is there.
const INITIAL_ARGS_CAPACITY: usize = 1024;

/// Largest argument vector [`RequestDecoder::recycle`] keeps for the next request; a bigger one
/// (from an MSET of thousands of keys) is freed rather than held by an idle connection.
const MAX_RECYCLED_ARGS_CAPACITY: usize = 64;

/// One client request: its arguments in order, the command name first. Never empty: an empty
/// inline line and a `*0` / `*-1` multibulk are skipped by the decoder, as Redis skips them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The arguments, each a slice of the connection's read buffer where possible.
    pub args: Vec<Bytes>,
}

/// Where the decoder is within the current request. The input buffer always starts at the first
/// byte this state has not consumed: finished lines and arguments are split off at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between requests; the next byte chooses multibulk (`*`) or inline (anything else).
    Start,
    /// An inline line; the first `scanned` buffered bytes hold no `\n`.
    Inline { scanned: usize },
    /// The `*<count>` line; the first `scanned` buffered bytes hold no `\r`.
    ArrayHeader { scanned: usize },
    /// A `$<length>` line; the first `scanned` buffered bytes hold no `\r`, and when `scanned > 0`
    /// the first byte has been checked to be `$`.
    BulkHeader { scanned: usize },
    /// An argument of `len` bytes, to be followed by two line-ending bytes.
    BulkData { len: usize },
}

/// Decodes client requests from a connection's input buffer; one per connection.
///
/// Use it with `tokio_util::codec::FramedRead`, or call [`Decoder::decode`] directly after each
/// read. See the module documentation for the rules.
#[derive(Debug)]
pub struct RequestDecoder {
    limits: ParserLimits,
    /// Whether the client still has to authenticate; Redis's `authRequired(c)`.
    auth_required: bool,
    state: State,
    /// Arguments of the multibulk request in progress.
    args: Vec<Bytes>,
    /// Arguments of the multibulk request in progress still to come.
    remaining_args: usize,
    /// Argument bytes of the multibulk request in progress, announced so far.
    request_bytes: usize,
    /// Bytes looked at or consumed, over the decoder's life.
    bytes_examined: u64,
    /// An empty vector with room for a few arguments, handed back by [`RequestDecoder::recycle`]
    /// and used for the next request instead of a new allocation.
    spare_args: Vec<Bytes>,
    /// Where the fast path found each argument (start, length), kept to reuse its allocation.
    spans: Vec<(usize, usize)>,
}

impl Default for RequestDecoder {
    fn default() -> Self {
        RequestDecoder::new(ParserLimits::default())
    }
}

impl RequestDecoder {
    /// A decoder for a new connection, enforcing `limits`.
    pub fn new(limits: ParserLimits) -> Self {
        RequestDecoder {
            limits,
            auth_required: false,
            state: State::Start,
            args: Vec::new(),
            remaining_args: 0,
            request_bytes: 0,
            bytes_examined: 0,
            spare_args: Vec::new(),
            spans: Vec::new(),
        }
    }

    /// The limits this decoder enforces.
    pub fn limits(&self) -> &ParserLimits {
        &self.limits
    }

    /// Turns the unauthenticated limits ([`ParserLimits::max_unauthenticated_args`] and
    /// [`ParserLimits::max_unauthenticated_bulk_bytes`]) on or off. A connection turns them on
    /// when a password is required and off once `AUTH` succeeds; they apply to requests whose
    /// header is read afterwards, as in Redis, where each request is parsed after the previous
    /// one ran.
    pub fn set_auth_required(&mut self, required: bool) {
        self.auth_required = required;
    }

    /// How many input bytes the decoder has looked at or consumed so far. Each byte is counted
    /// once however the input was split into reads, so this stays close to the number of bytes
    /// received: a diagnostic for tests and statistics. The fast path's read-ahead into a
    /// request it then leaves to the state machine is not counted; it is bounded per request
    /// (`parser/whole.rs`).
    pub fn bytes_examined(&self) -> u64 {
        self.bytes_examined
    }

    /// Hands back the argument vector of a request that has been answered, so the next request
    /// reuses its allocation. Its arguments are dropped now (releasing the read buffer they
    /// share); a vector that grew large is freed instead of kept.
    pub fn recycle(&mut self, mut args: Vec<Bytes>) {
        args.clear();
        if args.capacity() <= MAX_RECYCLED_ARGS_CAPACITY
            && args.capacity() > self.spare_args.capacity()
        {
            self.spare_args = args;
        }
    }

    /// Forgets the request in progress.
    fn reset(&mut self) {
        self.state = State::Start;
        self.args = Vec::new();
        self.remaining_args = 0;
        self.request_bytes = 0;
    }

    /// Looks for `needle` in `buf[from..]`, counting the bytes looked at; returns its index in
    /// `buf`.
    fn find(&mut self, buf: &[u8], from: usize, needle: u8) -> Option<usize> {
        let rest = buf.get(from..).unwrap_or_default();
        let found = rest.iter().position(|&byte| byte == needle);
        let looked_at = found.map_or(rest.len(), |i| i + 1);
        self.bytes_examined += looked_at as u64;
        found.map(|i| from + i)
    }

    /// Runs the state machine until a request is complete, more input is needed, or the input is
    /// invalid.
    fn decode_request(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, ProtocolError> {
        loop {
            match self.state {
                State::Start => match buf.first() {
                    None => return Ok(None),
                    Some(b'*') => {
                        if let Some(request) = self.decode_whole(buf) {
                            return Ok(Some(request));
                        }
                        self.state = State::ArrayHeader { scanned: 1 };
                    }
                    Some(_) => self.state = State::Inline { scanned: 0 },
                },
                State::Inline { scanned } => {
                    if let Some(request) = self.decode_inline(buf, scanned)? {
                        return Ok(Some(request));
                    }
                    if self.state != State::Start {
                        return Ok(None);
                    }
                }
                State::ArrayHeader { scanned } => {
                    let Some(cr) = self.header_line(buf, scanned, true)? else {
                        return Ok(None);
                    };
                    let count = header_number(buf, cr);
                    buf.advance(cr + 2);
                    self.start_array(count)?;
                }
                State::BulkHeader { scanned } => {
                    let Some(&first) = buf.first() else {
                        return Ok(None);
                    };
                    // Checked at the first byte rather than when the whole line is in, as Redis
                    // does: a nested `*` (the nesting bomb) fails at once instead of after up to
                    // `max_inline_bytes` of waiting.
                    if first != b'$' {
                        return Err(ProtocolError::ExpectedBulk { got: first });
                    }
                    let Some(cr) = self.header_line(buf, scanned.max(1), false)? else {
                        return Ok(None);
                    };
                    let len = header_number(buf, cr);
                    buf.advance(cr + 2);
                    self.start_bulk(len, buf)?;
                }
                State::BulkData { len } => {
                    // Redis skips the two bytes after an argument without checking they are
                    // "\r\n"; so does ringkv, so both read the same stream the same way.
                    let Some(framed_len) = len.checked_add(2) else {
                        return Err(ProtocolError::InvalidBulkLength);
                    };
                    if buf.len() < framed_len {
                        return Ok(None);
                    }
                    let arg = buf.split_to(len).freeze();
                    buf.advance(2);
                    self.bytes_examined += framed_len as u64;
                    self.args.push(arg);
                    self.remaining_args -= 1;
                    if self.remaining_args == 0 {
                        let args = std::mem::take(&mut self.args);
                        self.reset();
                        return Ok(Some(Request { args }));
                    }
                    self.state = State::BulkHeader { scanned: 0 };
                }
            }
        }
    }

    /// Reads an inline line. Returns the request if the line had words; leaves the state at
    /// `Start` if it was blank (skipped), or at `Inline` if the line is not complete yet.
    fn decode_inline(
        &mut self,
        buf: &mut BytesMut,
        scanned: usize,
    ) -> Result<Option<Request>, ProtocolError> {
        let max = self.limits.max_inline_bytes;
        // Redis looks for the '\n' with `strchr`, so a NUL byte hides it and the client hangs
        // until its line passes the limit; here the '\n' is found past a NUL, and the NUL then
        // ends the line's words as it does in Redis's `sdssplitargs`.
        let Some(newline) = self.find(buf, scanned, b'\n') else {
            // The finished line will hold at least all of these bytes but a final '\r', so
            // refusing now gives the same answer as waiting for the '\n' would.
            if buf.len() > max.saturating_add(1) {
                return Err(ProtocolError::TooBigInlineRequest);
            }
            self.state = State::Inline { scanned: buf.len() };
            return Ok(None);
        };
        let line_len = if newline > 0 && buf[newline - 1] == b'\r' {
            newline - 1
        } else {
            newline
        };
        if line_len > max {
            return Err(ProtocolError::TooBigInlineRequest);
        }
        let line = buf.split_to(line_len).freeze();
        buf.advance(newline + 1 - line_len);
        self.state = State::Start;
        let args = inline::split_inline_args(&line).ok_or(ProtocolError::UnbalancedQuotes)?;
        Ok((!args.is_empty()).then_some(Request { args }))
    }

    /// Finds the end of a complete `*<count>` or `$<length>` line: the index of its `\r`, with
    /// both line-ending bytes buffered (the caller reads the line in place and advances past
    /// them, so a header costs no buffer split), or records how far it looked and returns
    /// `None`.
    ///
    /// Like Redis, the line ends at the first `\r`, and the byte after it is skipped unchecked.
    fn header_line(
        &mut self,
        buf: &BytesMut,
        scanned: usize,
        array: bool,
    ) -> Result<Option<usize>, ProtocolError> {
        let too_big = || {
            if array {
                ProtocolError::TooBigMultibulkCount
            } else {
                ProtocolError::TooBigBulkCount
            }
        };
        let max = self.limits.max_inline_bytes;
        let Some(cr) = self.find(buf, scanned, b'\r') else {
            // The '\r' will come at or after the current end, so the line is already too long.
            if buf.len() > max {
                return Err(too_big());
            }
            let scanned = buf.len();
            self.state = if array {
                State::ArrayHeader { scanned }
            } else {
                State::BulkHeader { scanned }
            };
            return Ok(None);
        };
        if cr > max {
            return Err(too_big());
        }
        if buf.len() < cr + 2 {
            self.state = if array {
                State::ArrayHeader { scanned: cr }
            } else {
                State::BulkHeader { scanned: cr }
            };
            return Ok(None);
        }
        self.bytes_examined += 1;
        Ok(Some(cr))
    }

    /// Checks a `*<count>` line and sets up for its arguments; a count of zero or less is an
    /// empty request, skipped as in Redis.
    fn start_array(&mut self, count: Option<i64>) -> Result<(), ProtocolError> {
        let count = count.ok_or(ProtocolError::InvalidMultibulkLength)?;
        if count > 0 && count as u64 > self.limits.max_args as u64 {
            return Err(ProtocolError::InvalidMultibulkLength);
        }
        if self.auth_required
            && count > 0
            && count as u64 > self.limits.max_unauthenticated_args as u64
        {
            return Err(ProtocolError::UnauthenticatedMultibulkLength);
        }
        if count <= 0 {
            self.state = State::Start;
            return Ok(());
        }
        // In range: count <= max_args, a usize.
        let count = count as usize;
        let mut args = std::mem::take(&mut self.spare_args);
        args.reserve_exact(count.min(INITIAL_ARGS_CAPACITY));
        self.args = args;
        self.remaining_args = count;
        self.request_bytes = 0;
        self.state = State::BulkHeader { scanned: 0 };
        Ok(())
    }

    /// Checks a `$<length>` line's number, reserves room for a big argument, and waits for
    /// its bytes.
    fn start_bulk(&mut self, len: Option<i64>, buf: &mut BytesMut) -> Result<(), ProtocolError> {
        let len = len
            .and_then(|len| usize::try_from(len).ok())
            .filter(|&len| len <= self.limits.max_bulk_bytes)
            .ok_or(ProtocolError::InvalidBulkLength)?;
        if self.auth_required && len > self.limits.max_unauthenticated_bulk_bytes {
            return Err(ProtocolError::UnauthenticatedBulkLength);
        }
        self.request_bytes = self
            .request_bytes
            .checked_add(len)
            .filter(|&total| total <= self.limits.max_request_bytes)
            .ok_or(ProtocolError::TooBigRequest)?;
        if len >= ParserLimits::BIG_ARG_BYTES {
            let want = len
                .saturating_add(2)
                .min(self.limits.max_reserve_bytes.max(buf.len()));
            buf.reserve(want - buf.len().min(want));
        }
        self.state = State::BulkData { len };
        Ok(())
    }
}

/// The number of the header line ending at `cr` (after its one-byte marker), if it is one.
fn header_number(buf: &[u8], cr: usize) -> Option<i64> {
    buf.get(1..cr).and_then(number::parse_i64)
}

impl Decoder for RequestDecoder {
    type Item = Request;
    type Error = ProtocolError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, ProtocolError> {
        match self.decode_request(buf) {
            Ok(request) => Ok(request),
            Err(error) => {
                // The stream is out of sync: nothing after the error can be trusted, and the
                // connection is about to close, as Redis's setProtocolError arranges.
                self.reset();
                buf.clear();
                Err(error)
            }
        }
    }

    /// At end of input a partial request is dropped without an error, as Redis drops a client
    /// that disconnects mid-request: there is no one left to answer.
    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, ProtocolError> {
        match self.decode(buf)? {
            Some(request) => Ok(Some(request)),
            None => {
                self.reset();
                buf.clear();
                Ok(None)
            }
        }
    }
}
