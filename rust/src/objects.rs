//! Cached objects kept as encoded JSON, with the compact projection selectors need.
//!
//! The watch cache holds every object of a resource for every tenant. Holding them as decoded
//! Python dicts costs several times their JSON size, and every response re-encodes them; so an
//! [`Entry`] keeps the JSON bytes the codec wrote (compact, as `orjson` writes it, *without*
//! `metadata.resourceVersion`), plus byte offsets of the few fields that selectors, the tenant
//! tracker and response assembly look at. No field is copied out: the projection is spans into
//! the bytes, kept as varints in a header of about 20 bytes for a typical object (`Header`).
//!
//! Responses are assembled from the bytes ([`Entry::render_into`]): `resourceVersion` is spliced
//! in as the last member of `metadata` and `kind`/`apiVersion` are set the way the dict path does
//! (`{**obj, "kind": k, "apiVersion": v}`: replaced in place, or appended when absent), so the
//! output is byte for byte what `orjson.dumps` gives for the decoded object.

use crate::shared_bytes::SharedBytes;
use std::fmt;

/// Where a JSON value sits in an entry's bytes. For string fields, the raw content between
/// the quotes (escapes not resolved); for `kind`/`apiVersion`, the whole value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    start: u32,
    len: u32,
}

/// The field is absent.
const ABSENT: Span = Span {
    start: 0,
    len: u32::MAX,
};
/// The field is present but its value is not a string.
const NOT_STRING: Span = Span {
    start: 0,
    len: u32::MAX - 1,
};

impl Span {
    fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            len: (end - start) as u32,
        }
    }

    fn is_string(self) -> bool {
        self.len < u32::MAX - 1
    }

    fn is_present(self) -> bool {
        self.len != u32::MAX
    }

    fn bytes(self, json: &[u8]) -> &[u8] {
        let s = self.start as usize;
        &json[s..s + self.len as usize]
    }
}

/// Why bytes could not be taken as a cached object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectError {
    Malformed(usize),
    NotAnObject,
    NoMetadata,
    TooLarge,
}

impl fmt::Display for ObjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectError::Malformed(at) => write!(f, "malformed JSON at byte {at}"),
            ObjectError::NotAnObject => write!(f, "not a JSON object"),
            ObjectError::NoMetadata => write!(f, "object has no metadata object"),
            ObjectError::TooLarge => write!(f, "object or key is larger than 1 GiB"),
        }
    }
}

impl std::error::Error for ObjectError {}

/// One cached object: its JSON without `resourceVersion`, its revision and its projection.
///
/// All of it is one allocation ([`SharedBytes`]: a one-word pointer, an 8-byte count and
/// length), shared by every snapshot and handle: the key the index holds it under (empty until
/// it is put in one), a header (`Header`), then the JSON. At the scale the cache exists for,
/// every word per object counts: a separate key, projection struct and label table each cost
/// more than they hold.
#[derive(Clone)]
pub struct Entry {
    buf: SharedBytes,
}

/// What the header of an [`Entry`] holds; spans are offsets into the JSON.
///
/// Stored as LEB128 varints (7 bits a byte), in this order: the key's length (then the key,
/// so the tree's comparisons find it after one byte); one byte giving the length of the rest of
/// the header (so the JSON is found without decoding it); `rv`; `meta_close` with `meta_empty`
/// in its low bit; then each span as its length code (0 absent, 1 not a string, else the length
/// plus 2) and, for a string, its start, those a response needs (`kind`, `apiVersion`) first,
/// then those selectors read, so each reader decodes only up to what it needs. An offset below
/// 128 is one byte, below 16 KiB two: for a typical object the header is about 20 bytes where
/// fixed 32-bit fields took 64, and no object is too large for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    rv: u64,
    /// Offset of the `}` that closes `metadata`.
    meta_close: u32,
    meta_empty: bool,
    /// Bytes of the key.
    key_len: u32,
    name: Span,
    namespace: Span,
    uid: Span,
    kind: Span,
    api_version: Span,
    /// The `metadata.labels` object, braces included; [`ABSENT`] when the labels are absent or
    /// not an object, which selectors treat alike.
    labels: Span,
}

/// The spans of a header, in the order they are stored.
const API_VERSION: usize = 1;
const NAME: usize = 2;
const NAMESPACE: usize = 3;
const LABELS: usize = 4;
const SPANS: usize = 6;

/// The longest header after the key: `rv`, `meta_close` and the spans, 10 bytes a varint (so
/// its length fits the byte before it).
const MAX_HEADER: usize = 10 * (2 + 2 * SPANS);
const _: () = assert!(MAX_HEADER <= u8::MAX as usize);

/// A varint writer over a stack buffer (a header is built for every put; no allocation).
struct Varints {
    buf: [u8; MAX_HEADER],
    len: usize,
}

impl Varints {
    fn new() -> Varints {
        Varints {
            buf: [0; MAX_HEADER],
            len: 0,
        }
    }

    fn put(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf[self.len] = (v as u8) | 0x80;
            self.len += 1;
            v >>= 7;
        }
        self.buf[self.len] = v as u8;
        self.len += 1;
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The varint at `*at` (as [`Varints::put`] wrote it), moving `at` past it.
#[inline(always)]
fn varint(b: &[u8], at: &mut usize) -> u64 {
    let first = b[*at];
    if first < 0x80 {
        // Most of a typical header: lengths and offsets below 128.
        *at += 1;
        return u64::from(first);
    }
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = b[*at];
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return v;
        }
        shift += 7;
    }
}

impl Header {
    fn spans(&self) -> [Span; SPANS] {
        [
            self.kind,
            self.api_version,
            self.name,
            self.namespace,
            self.labels,
            self.uid,
        ]
    }

    /// The header after the key (the key's length is written with the key).
    fn write(&self) -> Varints {
        let mut out = Varints::new();
        out.put(self.rv);
        out.put(u64::from(self.meta_close) << 1 | u64::from(self.meta_empty));
        for span in self.spans() {
            if !span.is_present() {
                out.put(0);
            } else if !span.is_string() {
                out.put(1);
            } else {
                out.put(u64::from(span.len) + 2);
                out.put(u64::from(span.start));
            }
        }
        out
    }

    /// Reads what [`write`](Self::write) wrote at `at`, up to span `upto` (included; later
    /// spans read as [`ABSENT`]).
    fn read(b: &[u8], key_len: u32, mut at: usize, upto: usize) -> Header {
        let at = &mut at;
        let rv = varint(b, at);
        let meta = varint(b, at);
        let mut spans = [ABSENT; SPANS];
        for span in spans.iter_mut().take(upto + 1) {
            *span = match varint(b, at) {
                0 => ABSENT,
                1 => NOT_STRING,
                code => Span {
                    len: (code - 2) as u32,
                    start: varint(b, at) as u32,
                },
            };
        }
        let [kind, api_version, name, namespace, labels, uid] = spans;
        Header {
            rv,
            meta_close: (meta >> 1) as u32,
            meta_empty: meta & 1 != 0,
            key_len,
            name,
            namespace,
            uid,
            kind,
            api_version,
            labels,
        }
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("rv", &self.rv())
            .field("json", &String::from_utf8_lossy(self.json()))
            .finish()
    }
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

type PResult<T> = Result<T, ObjectError>;

impl<'a> Parser<'a> {
    fn err<T>(&self) -> PResult<T> {
        Err(ObjectError::Malformed(self.i))
    }

    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\n' | b'\r' | b'\t') {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> PResult<()> {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            self.err()
        }
    }

    /// A string at the cursor; returns the span of its raw content.
    fn string(&mut self) -> PResult<(usize, usize)> {
        self.ws();
        if self.peek() != Some(b'"') {
            return self.err();
        }
        self.i += 1;
        let start = self.i;
        while self.i < self.b.len() {
            match self.b[self.i] {
                b'"' => {
                    let end = self.i;
                    self.i += 1;
                    return Ok((start, end));
                }
                b'\\' => self.i += 2,
                _ => self.i += 1,
            }
        }
        self.err()
    }

    /// Skips one value of any type (iteratively: nesting depth costs no stack).
    fn skip_value(&mut self) -> PResult<()> {
        self.ws();
        let mut depth = 0usize;
        loop {
            match self.peek() {
                None => return self.err(),
                Some(b'"') => {
                    self.string()?;
                }
                Some(b'{') | Some(b'[') => {
                    depth += 1;
                    self.i += 1;
                }
                Some(b'}') | Some(b']') => {
                    if depth == 0 {
                        return self.err();
                    }
                    depth -= 1;
                    self.i += 1;
                }
                Some(b',') | Some(b':') if depth > 0 => self.i += 1,
                Some(b' ' | b'\n' | b'\r' | b'\t') if depth > 0 => self.i += 1,
                Some(_) => {
                    let start = self.i;
                    while self.i < self.b.len()
                        && !matches!(
                            self.b[self.i],
                            b',' | b']' | b'}' | b':' | b' ' | b'\n' | b'\r' | b'\t' | b'"'
                        )
                    {
                        self.i += 1;
                    }
                    if self.i == start {
                        return self.err();
                    }
                }
            }
            if depth == 0 {
                return Ok(());
            }
        }
    }

    /// A string value's span, or [`NOT_STRING`] (the value is skipped either way).
    fn string_or_other(&mut self) -> PResult<Span> {
        self.ws();
        if self.peek() == Some(b'"') {
            let (s, e) = self.string()?;
            Ok(Span::new(s, e))
        } else {
            self.skip_value()?;
            Ok(NOT_STRING)
        }
    }

    /// Calls `member(parser, raw key)` with the cursor on each member's value, which it
    /// must consume. The cursor ends after the closing `}`; returns its offset.
    fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, &'a [u8], usize) -> PResult<()>,
    ) -> PResult<usize> {
        self.expect(b'{')?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(self.i - 1);
        }
        loop {
            let (ks, ke) = self.string()?;
            self.expect(b':')?;
            self.ws();
            let key = &self.b[ks..ke];
            member(self, key, ks - 1)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(self.i - 1);
                }
                _ => return self.err(),
            }
        }
    }
}

#[derive(Default)]
struct Meta {
    close: usize,
    members: usize,
    name: Option<Span>,
    namespace: Option<Span>,
    uid: Option<Span>,
    labels: Option<Span>,
    /// `(start, end)` of a `resourceVersion` member, to be cut out.
    rv_member: Option<(usize, usize, usize)>,
}

fn parse_meta(p: &mut Parser<'_>) -> PResult<Meta> {
    let mut m = Meta::default();
    let mut index = 0usize;
    let close = p.object(|p, key, key_start| {
        match key {
            b"name" => m.name = Some(p.string_or_other()?),
            b"namespace" => m.namespace = Some(p.string_or_other()?),
            b"uid" => m.uid = Some(p.string_or_other()?),
            b"labels" => {
                p.ws();
                let start = p.i;
                if p.peek() == Some(b'{') {
                    // Checked now (every value skipped), read when a selector asks.
                    p.object(|p, _k, _ks| p.string_or_other().map(|_| ()))?;
                    m.labels = Some(Span::new(start, p.i));
                } else {
                    p.skip_value()?;
                    m.labels = None;
                }
            }
            b"resourceVersion" => {
                p.skip_value()?;
                m.rv_member = Some((key_start, p.i, index));
            }
            _ => p.skip_value()?,
        }
        index += 1;
        Ok(())
    })?;
    m.close = close;
    m.members = index;
    Ok(m)
}

/// The largest JSON or key an entry holds (both fit one [`SharedBytes`] with the header).
const MAX_PART: usize = 1 << 30;

impl Entry {
    /// Takes `json` (one JSON object with a `metadata` object, as `orjson` writes it) as the
    /// object at revision `rv`. A `metadata.resourceVersion` member is cut out: the revision
    /// is spliced in when the object is served, so it is never stored twice.
    pub fn parse(json: &[u8], rv: u64) -> Result<Entry, ObjectError> {
        if json.len() >= MAX_PART {
            return Err(ObjectError::TooLarge);
        }
        let (entry, cut) = Self::parse_once(json, rv)?;
        match cut {
            None => Ok(entry),
            Some((start, end, index)) => {
                // Cut the member with the comma that separates it from its neighbour.
                let (from, to) = if index > 0 {
                    let mut comma = start;
                    while comma > 0 && json[comma - 1] != b',' {
                        comma -= 1;
                    }
                    (comma.saturating_sub(1), end)
                } else if json.get(end) == Some(&b',') {
                    (start, end + 1)
                } else {
                    (start, end)
                };
                let mut trimmed = Vec::with_capacity(json.len() - (to - from));
                trimmed.extend_from_slice(&json[..from]);
                trimmed.extend_from_slice(&json[to..]);
                let (entry, _) = Self::parse_once(&trimmed, rv)?;
                Ok(entry)
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn parse_once(json: &[u8], rv: u64) -> PResult<(Entry, Option<(usize, usize, usize)>)> {
        let mut p = Parser { b: json, i: 0 };
        p.ws();
        if p.peek() != Some(b'{') {
            return Err(ObjectError::NotAnObject);
        }
        let mut meta: Option<Meta> = None;
        let mut kind = ABSENT;
        let mut api_version = ABSENT;
        p.object(|p, key, _| {
            match key {
                b"metadata" => {
                    p.ws();
                    if p.peek() != Some(b'{') {
                        return Err(ObjectError::NoMetadata);
                    }
                    meta = Some(parse_meta(p)?);
                }
                b"kind" | b"apiVersion" => {
                    let start = p.i;
                    p.skip_value()?;
                    let span = Span::new(start, p.i);
                    if key == b"kind" {
                        kind = span;
                    } else {
                        api_version = span;
                    }
                }
                _ => p.skip_value()?,
            }
            Ok(())
        })?;
        p.ws();
        if p.i != json.len() {
            return p.err();
        }
        let meta = meta.ok_or(ObjectError::NoMetadata)?;
        let members = meta.members - usize::from(meta.rv_member.is_some());
        let header = Header {
            rv,
            meta_close: meta.close as u32,
            meta_empty: members == 0,
            name: meta.name.unwrap_or(ABSENT),
            namespace: meta.namespace.unwrap_or(ABSENT),
            uid: meta.uid.unwrap_or(ABSENT),
            kind,
            api_version,
            labels: meta.labels.unwrap_or(ABSENT),
            key_len: 0,
        };
        Ok((Entry::build(&header, b"", json), meta.rv_member))
    }

    fn build(header: &Header, key: &[u8], json: &[u8]) -> Entry {
        debug_assert_eq!(header.key_len as usize, key.len());
        let mut key_len = Varints::new();
        key_len.put(key.len() as u64);
        let rest = header.write();
        let rest_len = [rest.bytes().len() as u8];
        Entry {
            buf: SharedBytes::concat(&[key_len.bytes(), key, &rest_len, rest.bytes(), json]),
        }
    }

    /// Where the key starts and how long it is.
    #[inline(always)]
    fn key_at(&self) -> (usize, usize) {
        let mut at = 0;
        let len = varint(&self.buf, &mut at) as usize;
        (at, len)
    }

    /// Where the header starts (after its length byte) and where the JSON starts.
    #[inline(always)]
    fn header_at(&self) -> (usize, usize) {
        let (start, len) = self.key_at();
        let at = start + len;
        (at + 1, at + 1 + usize::from(self.buf[at]))
    }

    /// The header, up to span `upto`.
    fn header_upto(&self, upto: usize) -> Header {
        let (start, len) = self.key_at();
        Header::read(&self.buf, len as u32, start + len + 1, upto)
    }

    fn header(&self) -> Header {
        self.header_upto(SPANS - 1)
    }

    /// Span number `i` ([`NAME`], [`NAMESPACE`], ...) of the header.
    fn span(&self, i: usize) -> Span {
        self.header_upto(i).spans()[i]
    }

    /// The key the entry is held under in an index (empty outside one).
    #[inline]
    pub fn key(&self) -> &[u8] {
        let (at, len) = self.key_at();
        &self.buf[at..at + len]
    }

    /// The same object held under `key` (an index keeps its keys in its entries: one
    /// allocation per object, no separate key).
    pub fn with_key(&self, key: &str) -> Result<Entry, ObjectError> {
        if key.len() >= MAX_PART {
            return Err(ObjectError::TooLarge);
        }
        let (mut header, json) = self.parts(SPANS - 1);
        header.key_len = key.len() as u32;
        Ok(Entry::build(&header, key.as_bytes(), json))
    }

    /// The header (up to span `upto`) and the JSON.
    fn parts(&self, upto: usize) -> (Header, &[u8]) {
        (self.header_upto(upto), self.json())
    }

    /// The revision the object is at.
    pub fn rv(&self) -> u64 {
        varint(&self.buf, &mut self.header_at().0)
    }

    /// The stored JSON (no `resourceVersion`).
    pub fn json(&self) -> &[u8] {
        &self.buf[self.header_at().1..]
    }

    /// The same object at another revision (a deletion's last state carries the revision
    /// of the deletion), outside any index.
    pub fn with_rv(&self, rv: u64) -> Entry {
        let (mut header, json) = self.parts(SPANS - 1);
        header.rv = rv;
        header.key_len = 0;
        Entry::build(&header, b"", json)
    }

    fn string_field(&self, span: Span) -> Option<String> {
        if span.is_string() {
            unescape(span.bytes(self.json()))
        } else {
            None
        }
    }

    pub fn name(&self) -> Option<String> {
        self.string_field(self.span(NAME))
    }

    pub fn namespace(&self) -> Option<String> {
        self.string_field(self.span(NAMESPACE))
    }

    pub fn uid(&self) -> Option<String> {
        self.string_field(self.header().uid)
    }

    /// `metadata.<field>` as a field selector sees it: "" unless a string.
    fn field_eq(&self, span: Span, want: &str) -> bool {
        if span.is_string() {
            raw_eq(span.bytes(self.json()), want)
        } else {
            want.is_empty()
        }
    }

    /// The label `key`: None when absent, Some(None) when not a string (the last member of
    /// that name, as a decoded dict would hold it).
    fn label(&self, key: &str) -> Option<Option<&[u8]>> {
        let span = self.span(LABELS);
        if !span.is_present() {
            return None;
        }
        let json = self.json();
        let mut p = Parser {
            b: json,
            i: span.start as usize,
        };
        let mut found: Option<Option<&[u8]>> = None;
        // Checked when the entry was built, so this cannot fail; if it did, no label.
        let scanned = p.object(|p, k, _| {
            let value = p.string_or_other()?;
            if raw_eq(k, key) {
                found = Some(value.is_string().then(|| value.bytes(json)));
            }
            Ok(())
        });
        scanned.ok().and(found)
    }

    /// Appends the object as served: `resourceVersion` set to `rv` (None: the object's own) as
    /// the last member of `metadata`, and, when `typed` is given, `kind` and `apiVersion` set
    /// to it.
    pub fn render_into(&self, out: &mut Vec<u8>, rv: Option<u64>, typed: Option<&Typed>) {
        #[derive(Clone, Copy)]
        enum Edit {
            Rv,
            Kind,
            ApiVersion,
        }
        let (h, json) = self.parts(API_VERSION);
        let rv = rv.unwrap_or(h.rv);
        // (start, end, what goes there), at most three, applied in order; no allocation.
        let close = h.meta_close as usize;
        let mut edits = [(close, close, Edit::Rv); 3];
        let mut n = 1;
        if typed.is_some() {
            for (span, edit) in [(h.kind, Edit::Kind), (h.api_version, Edit::ApiVersion)] {
                if span.is_present() {
                    let s = span.start as usize;
                    edits[n] = (s, s + span.len as usize, edit);
                    n += 1;
                }
            }
        }
        let edits = &mut edits[..n];
        edits.sort_unstable_by_key(|e| e.0);
        out.reserve(json.len() + 48);
        let last = json.len() - 1; // the closing brace of the object
        let mut at = 0;
        for &(s, e, edit) in edits.iter() {
            out.extend_from_slice(&json[at..s]);
            match (edit, typed) {
                (Edit::Rv, _) => {
                    if !h.meta_empty {
                        out.push(b',');
                    }
                    out.extend_from_slice(b"\"resourceVersion\":\"");
                    decimal(out, rv);
                    out.push(b'"');
                }
                (Edit::Kind, Some(t)) => out.extend_from_slice(&t.kind),
                (Edit::ApiVersion, Some(t)) => out.extend_from_slice(&t.api_version),
                (_, None) => {}
            }
            at = e;
        }
        out.extend_from_slice(&json[at..last]);
        if let Some(t) = typed {
            if !h.kind.is_present() {
                out.extend_from_slice(b",\"kind\":");
                out.extend_from_slice(&t.kind);
            }
            if !h.api_version.is_present() {
                out.extend_from_slice(b",\"apiVersion\":");
                out.extend_from_slice(&t.api_version);
            }
        }
        out.extend_from_slice(&json[last..]);
    }

    /// The object as served (see [`render_into`](Self::render_into)) at its own revision.
    pub fn render(&self, typed: Option<(&str, &str)>) -> Vec<u8> {
        let typed = typed.map(|(k, a)| Typed::new(k, a));
        let mut out = Vec::new();
        self.render_into(&mut out, None, typed.as_ref());
        out
    }

    /// One watch event line, `{"type":..,"object":..}\n`, as the server streams it.
    pub fn render_event(&self, event_type: &str, typed: Option<(&str, &str)>) -> Vec<u8> {
        let typed = typed.map(|(k, a)| Typed::new(k, a));
        let mut out = Vec::with_capacity(self.json().len() + 96);
        out.extend_from_slice(b"{\"type\":");
        out.extend_from_slice(&json_string(event_type));
        out.extend_from_slice(b",\"object\":");
        self.render_into(&mut out, None, typed.as_ref());
        out.extend_from_slice(b"}\n");
        out
    }
}

/// The `kind` and `apiVersion` a response sets, encoded once for all the objects it holds.
pub struct Typed {
    kind: Vec<u8>,
    api_version: Vec<u8>,
}

impl Typed {
    pub fn new(kind: &str, api_version: &str) -> Typed {
        Typed {
            kind: json_string(kind),
            api_version: json_string(api_version),
        }
    }
}

/// Appends `v` in decimal (as `write!` would, without its formatting machinery: a LIST writes
/// one per item).
fn decimal(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Is the raw JSON string content `raw` the string `want`?
fn raw_eq(raw: &[u8], want: &str) -> bool {
    if !raw.contains(&b'\\') {
        return raw == want.as_bytes();
    }
    unescape(raw).is_some_and(|s| s == want)
}

fn hex4(b: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(b.get(..4)?).ok()?;
    u32::from_str_radix(s, 16).ok()
}

/// The string a raw JSON string content stands for (None if malformed).
pub fn unescape(raw: &[u8]) -> Option<String> {
    if !raw.contains(&b'\\') {
        return std::str::from_utf8(raw).ok().map(str::to_owned);
    }
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let esc = *raw.get(i + 1)?;
        i += 2;
        let ch: char = match esc {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex4(&raw[i..])?;
                i += 4;
                if (0xD800..0xDC00).contains(&hi) && raw.get(i..i + 2) == Some(b"\\u") {
                    let lo = hex4(&raw[i + 2..])?;
                    if (0xDC00..0xE000).contains(&lo) {
                        i += 6;
                        char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))?
                    } else {
                        return None;
                    }
                } else {
                    char::from_u32(hi)?
                }
            }
            _ => return None,
        };
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    }
    String::from_utf8(out).ok()
}

/// `s` as a JSON string, escaped exactly as `orjson` escapes it.
pub fn json_string(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 2);
    out.push(b'"');
    for &c in s.as_bytes() {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            c if c < 0x20 => {
                out.extend_from_slice(format!("\\u{c:04x}").as_bytes());
            }
            c => out.push(c),
        }
    }
    out.push(b'"');
    out
}

/// A label requirement's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelOp {
    /// `=`, `==`, `in`.
    In,
    /// `!=`, `notin`.
    NotIn,
    Exists,
    NotExists,
    Gt,
    Lt,
}

#[derive(Debug, Clone)]
pub struct LabelReq {
    pub key: String,
    pub op: LabelOp,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Name,
    Namespace,
    /// Any other selectable field: paths into the JSON (object member names), tried in turn;
    /// the value is the first non-empty string found, else "". Read from the bytes only when a
    /// selector asks, so the projection stays the few spans every object needs.
    Paths(Vec<Vec<String>>),
}

/// The span of the value at `path` in the object `json`: [`ABSENT`] when a step is missing or
/// its parent is not an object, [`NOT_STRING`] when the value is not a string. Of members
/// sharing a name the last counts, as in a decoded dict.
fn path_span(json: &[u8], path: &[String]) -> Span {
    let mut p = Parser { b: json, i: 0 };
    let Some((last, steps)) = path.split_last() else {
        return ABSENT;
    };
    for step in steps.iter().chain(std::iter::once(last)) {
        let mut found: Option<usize> = None;
        let scanned = p.object(|p, k, _| {
            if raw_eq(k, step) {
                found = Some(p.i);
            }
            p.skip_value()
        });
        match (scanned, found) {
            (Ok(_), Some(at)) => p.i = at,
            _ => return ABSENT,
        }
    }
    p.string_or_other().unwrap_or(ABSENT)
}

#[derive(Debug, Clone)]
pub struct FieldReq {
    pub field: Field,
    pub equal: bool,
    pub value: String,
}

/// A compiled label and field selector: a conjunction, evaluated on the projection.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    pub labels: Vec<LabelReq>,
    pub fields: Vec<FieldReq>,
}

/// `-?[0-9]{1,18}` as an integer.
fn small_int(raw: &[u8]) -> Option<i64> {
    let digits = raw.strip_prefix(b"-").unwrap_or(raw);
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(raw).ok()?.parse().ok()
}

impl LabelReq {
    fn matches(&self, e: &Entry) -> bool {
        let label = e.label(&self.key);
        let in_values = |v: &[u8]| self.values.iter().any(|want| raw_eq(v, want));
        match self.op {
            LabelOp::Exists => label.is_some(),
            LabelOp::NotExists => label.is_none(),
            LabelOp::In => matches!(label, Some(Some(v)) if in_values(v)),
            LabelOp::NotIn => !matches!(label, Some(Some(v)) if in_values(v)),
            LabelOp::Gt | LabelOp::Lt => {
                let have = match label {
                    Some(Some(v)) if !v.contains(&b'\\') => small_int(v),
                    _ => None,
                };
                let want = self.values.first().and_then(|w| small_int(w.as_bytes()));
                match (have, want) {
                    (Some(h), Some(w)) => {
                        if self.op == LabelOp::Gt {
                            h > w
                        } else {
                            h < w
                        }
                    }
                    _ => false,
                }
            }
        }
    }
}

impl Selector {
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    pub fn matches(&self, e: &Entry) -> bool {
        self.labels.iter().all(|r| r.matches(e))
            && self.fields.iter().all(|r| {
                let span = match &r.field {
                    Field::Name => e.span(NAME),
                    Field::Namespace => e.span(NAMESPACE),
                    Field::Paths(paths) => {
                        let json = e.json();
                        paths
                            .iter()
                            .map(|path| path_span(json, path))
                            .find(|span| span.is_string() && span.len > 0)
                            .unwrap_or(ABSENT)
                    }
                };
                e.field_eq(span, &r.value) == r.equal
            })
    }
}

/// Python classes `CachedObject` and `Selector`.
pub mod py {
    use super::{Entry, Field, FieldReq, LabelOp, LabelReq, ObjectError};
    use pyo3::exceptions::PyValueError;
    use pyo3::prelude::*;
    use pyo3::types::PyBytes;

    impl From<ObjectError> for PyErr {
        fn from(e: ObjectError) -> PyErr {
            PyValueError::new_err(e.to_string())
        }
    }

    pub(crate) fn typed<'a>(
        kind: Option<&'a str>,
        api_version: Option<&'a str>,
    ) -> PyResult<Option<(&'a str, &'a str)>> {
        match (kind, api_version) {
            (Some(k), Some(a)) => Ok(Some((k, a))),
            (None, None) => Ok(None),
            _ => Err(PyValueError::new_err(
                "kind and api_version are given together or not at all",
            )),
        }
    }

    /// One cached object: its JSON without `resourceVersion`, its revision and projection.
    #[pyclass(frozen, module = "tenantstore._native")]
    pub struct CachedObject {
        pub(crate) entry: Entry,
    }

    #[pymethods]
    impl CachedObject {
        #[new]
        fn new(data: &[u8], resource_version: u64) -> PyResult<Self> {
            Ok(CachedObject {
                entry: Entry::parse(data, resource_version)?,
            })
        }

        #[getter]
        fn resource_version(&self) -> u64 {
            self.entry.rv()
        }

        /// Bytes of the stored JSON (what a byte quota counts).
        #[getter]
        fn size(&self) -> usize {
            self.entry.json().len()
        }

        #[getter]
        fn data<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
            PyBytes::new(py, self.entry.json())
        }

        #[getter]
        fn name(&self) -> Option<String> {
            self.entry.name()
        }

        #[getter]
        fn namespace(&self) -> Option<String> {
            self.entry.namespace()
        }

        #[getter]
        fn uid(&self) -> Option<String> {
            self.entry.uid()
        }

        /// The object as served; `kind`/`api_version` (both or neither) set as the server sets them.
        #[pyo3(signature = (kind = None, api_version = None))]
        fn encode<'py>(
            &self,
            py: Python<'py>,
            kind: Option<&str>,
            api_version: Option<&str>,
        ) -> PyResult<Bound<'py, PyBytes>> {
            let typed = typed(kind, api_version)?;
            Ok(PyBytes::new(py, &self.entry.render(typed)))
        }

        /// One watch event line for this object.
        #[pyo3(signature = (event_type, kind = None, api_version = None))]
        fn encode_event<'py>(
            &self,
            py: Python<'py>,
            event_type: &str,
            kind: Option<&str>,
            api_version: Option<&str>,
        ) -> PyResult<Bound<'py, PyBytes>> {
            let typed = typed(kind, api_version)?;
            Ok(PyBytes::new(
                py,
                &self.entry.render_event(event_type, typed),
            ))
        }

        fn with_resource_version(&self, resource_version: u64) -> CachedObject {
            CachedObject {
                entry: self.entry.with_rv(resource_version),
            }
        }

        fn matches(&self, selector: &Selector) -> bool {
            selector.inner.matches(&self.entry)
        }

        fn __repr__(&self) -> String {
            format!(
                "<tenantstore._native.CachedObject rv={} {} bytes>",
                self.entry.rv(),
                self.entry.json().len()
            )
        }
    }

    /// A compiled label/field selector (parsed and validated in Python).
    #[pyclass(frozen, module = "tenantstore._native")]
    pub struct Selector {
        pub(crate) inner: super::Selector,
    }

    #[pymethods]
    impl Selector {
        /// `labels`: `(key, op, values)` with the operators of `selectors.py`; `fields`:
        /// `(paths, "=" or "!=", value)`, `paths` where the field is read (`FieldPaths`).
        #[new]
        fn new(
            labels: Vec<(String, String, Vec<String>)>,
            fields: Vec<(Vec<Vec<String>>, String, String)>,
        ) -> PyResult<Self> {
            let mut inner = super::Selector::default();
            for (key, op, values) in labels {
                let op = match op.as_str() {
                    "=" | "==" | "in" => LabelOp::In,
                    "!=" | "notin" => LabelOp::NotIn,
                    "exists" => LabelOp::Exists,
                    "!" => LabelOp::NotExists,
                    ">" => LabelOp::Gt,
                    "<" => LabelOp::Lt,
                    other => {
                        return Err(PyValueError::new_err(format!(
                            "unknown label operator {other:?}"
                        )))
                    }
                };
                inner.labels.push(LabelReq { key, op, values });
            }
            for (paths, op, value) in fields {
                if paths.is_empty() || paths.iter().any(Vec::is_empty) {
                    return Err(PyValueError::new_err(
                        "a field is read from non-empty paths",
                    ));
                }
                let single = |a: &str, b: &str| paths.len() == 1 && paths[0] == [a, b];
                let field = if single("metadata", "name") {
                    Field::Name
                } else if single("metadata", "namespace") {
                    Field::Namespace
                } else {
                    Field::Paths(paths)
                };
                let equal = match op.as_str() {
                    "=" | "==" => true,
                    "!=" => false,
                    other => {
                        return Err(PyValueError::new_err(format!(
                            "unknown field operator {other:?}"
                        )))
                    }
                };
                inner.fields.push(FieldReq {
                    field,
                    equal,
                    value,
                });
            }
            Ok(Selector { inner })
        }

        #[getter]
        fn empty(&self) -> bool {
            self.inner.is_empty()
        }

        fn matches(&self, obj: &CachedObject) -> bool {
            self.inner.matches(&obj.entry)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(json: &str) -> Entry {
        Entry::parse(json.as_bytes(), 7).unwrap()
    }

    fn s(v: Vec<u8>) -> String {
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn splices_resource_version() {
        assert_eq!(
            s(e(r#"{"metadata":{"name":"a"},"data":{}}"#).render(None)),
            r#"{"metadata":{"name":"a","resourceVersion":"7"},"data":{}}"#
        );
        assert_eq!(
            s(e(r#"{"metadata":{}}"#).render(None)),
            r#"{"metadata":{"resourceVersion":"7"}}"#
        );
    }

    #[test]
    fn cuts_stored_resource_version() {
        for json in [
            r#"{"metadata":{"resourceVersion":"3","name":"a"}}"#,
            r#"{"metadata":{"name":"a","resourceVersion":"3"}}"#,
        ] {
            let entry = e(json);
            assert_eq!(s(entry.json().to_vec()), r#"{"metadata":{"name":"a"}}"#);
            assert_eq!(
                s(entry.render(None)),
                r#"{"metadata":{"name":"a","resourceVersion":"7"}}"#
            );
        }
        let only = e(r#"{"metadata":{"resourceVersion":"3"}}"#);
        assert_eq!(
            s(only.render(None)),
            r#"{"metadata":{"resourceVersion":"7"}}"#
        );
    }

    #[test]
    fn typed_like_the_dict_path() {
        let entry = e(r#"{"kind":"X","metadata":{"name":"a"},"x":1}"#);
        assert_eq!(
            s(entry.render(Some(("ConfigMap", "v1")))),
            r#"{"kind":"ConfigMap","metadata":{"name":"a","resourceVersion":"7"},"x":1,"apiVersion":"v1"}"#
        );
        let bare = e(r#"{"metadata":{"name":"a"}}"#);
        assert_eq!(
            s(bare.render(Some(("K", "v\"1")))),
            r#"{"metadata":{"name":"a","resourceVersion":"7"},"kind":"K","apiVersion":"v\"1"}"#
        );
    }

    #[test]
    fn projection_and_escapes() {
        let entry = e(
            r#"{"metadata":{"name":"a\"b","namespace":"n\u00e9","uid":"u","labels":{"k":"v","n":1,"i":"-12","e\\s":"x"}}}"#,
        );
        assert_eq!(entry.name().as_deref(), Some("a\"b"));
        assert_eq!(entry.namespace().as_deref(), Some("né"));
        assert_eq!(entry.uid().as_deref(), Some("u"));
        let sel = |labels: Vec<(&str, LabelOp, Vec<&str>)>| Selector {
            labels: labels
                .into_iter()
                .map(|(k, op, v)| LabelReq {
                    key: k.into(),
                    op,
                    values: v.into_iter().map(String::from).collect(),
                })
                .collect(),
            fields: vec![],
        };
        assert!(sel(vec![("k", LabelOp::In, vec!["v"])]).matches(&entry));
        assert!(!sel(vec![("k", LabelOp::NotIn, vec!["v"])]).matches(&entry));
        assert!(sel(vec![("n", LabelOp::NotIn, vec!["1"])]).matches(&entry));
        assert!(!sel(vec![("n", LabelOp::In, vec!["1"])]).matches(&entry));
        assert!(sel(vec![("n", LabelOp::Exists, vec![])]).matches(&entry));
        assert!(sel(vec![("zz", LabelOp::NotExists, vec![])]).matches(&entry));
        assert!(sel(vec![("i", LabelOp::Lt, vec!["0"])]).matches(&entry));
        assert!(!sel(vec![("i", LabelOp::Gt, vec!["0"])]).matches(&entry));
        assert!(sel(vec![("e\\s", LabelOp::In, vec!["x"])]).matches(&entry));
        let field = |field, equal, value: &str| Selector {
            labels: vec![],
            fields: vec![FieldReq {
                field,
                equal,
                value: value.into(),
            }],
        };
        assert!(field(Field::Name, true, "a\"b").matches(&entry));
        let path = |p: &[&[&str]]| {
            Field::Paths(
                p.iter()
                    .map(|s| s.iter().map(|x| x.to_string()).collect())
                    .collect(),
            )
        };
        assert!(field(path(&[&["metadata", "name"]]), true, "a\"b").matches(&entry));
        assert!(field(Field::Namespace, false, "n").matches(&entry));
        let nameless = e(r#"{"metadata":{"name":3}}"#);
        assert!(field(Field::Name, true, "").matches(&nameless));
        assert!(field(Field::Namespace, true, "").matches(&nameless));
    }

    #[test]
    fn selects_on_paths_into_the_json() {
        let owned = |p: &[&[&str]]| -> Vec<Vec<String>> {
            p.iter()
                .map(|s| s.iter().map(|x| x.to_string()).collect())
                .collect()
        };
        let sel = |paths: &[&[&str]], equal, value: &str| Selector {
            labels: vec![],
            fields: vec![FieldReq {
                field: Field::Paths(owned(paths)),
                equal,
                value: value.into(),
            }],
        };
        let ev = e(concat!(
            r#"{"metadata":{"name":"e"},"involvedObject":{"kind":"ConfigMap","name":"c\u00e9"},"#,
            r#""source":{"component":""},"reportingComponent":"ctl","type":3,"#,
            r#""x":{"y":{"z":"a"},"y":{"z":"b"}}}"#
        ));
        assert!(sel(&[&["involvedObject", "kind"]], true, "ConfigMap").matches(&ev));
        assert!(sel(&[&["involvedObject", "name"]], true, "cé").matches(&ev));
        assert!(sel(&[&["involvedObject", "uid"]], true, "").matches(&ev));
        assert!(sel(&[&["involvedObject", "kind", "deeper"]], true, "").matches(&ev));
        // Not a string: selects as "".
        assert!(sel(&[&["type"]], true, "").matches(&ev));
        assert!(!sel(&[&["type"]], true, "3").matches(&ev));
        // The first non-empty string of the alternatives.
        let source: &[&[&str]] = &[&["source", "component"], &["reportingComponent"]];
        assert!(sel(source, true, "ctl").matches(&ev));
        assert!(sel(source, false, "").matches(&ev));
        // The last member of a name, as a decoded dict keeps it.
        assert!(sel(&[&["x", "y", "z"]], true, "b").matches(&ev));
    }

    #[test]
    fn refuses_what_is_not_an_object_with_metadata() {
        assert_eq!(
            Entry::parse(b"[1]", 1).unwrap_err(),
            ObjectError::NotAnObject
        );
        assert_eq!(
            Entry::parse(b"{\"a\":1}", 1).unwrap_err(),
            ObjectError::NoMetadata
        );
        assert_eq!(
            Entry::parse(b"{\"metadata\":[]}", 1).unwrap_err(),
            ObjectError::NoMetadata
        );
        assert!(matches!(
            Entry::parse(b"{\"metadata\":{}", 1),
            Err(ObjectError::Malformed(_))
        ));
        assert!(Entry::parse(b"{\"metadata\":{}} x", 1).is_err());
    }

    #[test]
    fn deep_nesting_costs_no_stack() {
        let depth = 100_000;
        let json = format!(
            "{{\"metadata\":{{}},\"x\":{}1{}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let entry = Entry::parse(json.as_bytes(), 1).unwrap();
        assert_eq!(entry.render(None).len(), json.len() + 21);
    }

    /// An object of exactly `size` bytes with its metadata after `pad` bytes of padding (so
    /// the spans sit past 64 KiB when the padding is that long).
    fn sized(size: usize, meta_last: bool) -> String {
        let meta = r#""metadata":{"name":"n\u00e9","namespace":"ns","uid":"u-1","labels":{"k":"v","\u00fc":"x"}}"#;
        let typed = r#""kind":"K","apiVersion":"v1""#;
        let fixed = format!("{{{meta},{typed},\"pad\":\"\"}}").len();
        let pad = "p".repeat(size - fixed);
        let json = if meta_last {
            format!("{{\"pad\":\"{pad}\",{typed},{meta}}}")
        } else {
            format!("{{{meta},{typed},\"pad\":\"{pad}\"}}")
        };
        assert_eq!(json.len(), size);
        json
    }

    /// Bytes of an entry next to its key and JSON (not counting the count and length).
    fn overhead(entry: &Entry) -> usize {
        entry.buf.len() - entry.key().len() - entry.json().len()
    }

    #[test]
    fn headers_at_the_64_kib_edge_and_past_varint_steps() {
        let label = |key: &str, value: &str| Selector {
            labels: vec![LabelReq {
                key: key.into(),
                op: LabelOp::In,
                values: vec![value.into()],
            }],
            fields: vec![],
        };
        let name_is = |value: &str| Selector {
            labels: vec![],
            fields: vec![FieldReq {
                field: Field::Name,
                equal: true,
                value: value.into(),
            }],
        };
        for size in [
            200, 1000, 0x3FFF, 0x4000, 0xFFFE, 0xFFFF, 0x10000, 0x10001, 0x20_0001,
        ] {
            for meta_last in [false, true] {
                let json = sized(size, meta_last);
                let entry = e(&json);
                // The key's length, the header's, rv (7) and `meta_close`, and six spans: a
                // length code and a start each, every one at most as long as the varint of
                // the size.
                let vlen = |v: usize| (usize::BITS - v.leading_zeros()).div_ceil(7) as usize;
                let most = 3 + vlen(2 * size) + SPANS * (1 + vlen(size));
                if !meta_last && size < 1 << 14 {
                    // The metadata first: its spans start below 128, one byte each.
                    assert!(overhead(&entry) <= 19, "{size}: {}", overhead(&entry));
                }
                assert!(overhead(&entry) <= most, "{size}: {}", overhead(&entry));
                assert_eq!(entry.json(), json.as_bytes());
                assert_eq!(entry.name().as_deref(), Some("né"));
                assert_eq!(entry.namespace().as_deref(), Some("ns"));
                assert_eq!(entry.uid().as_deref(), Some("u-1"));
                assert!(label("k", "v").matches(&entry));
                assert!(label("ü", "x").matches(&entry));
                assert!(!label("k", "x").matches(&entry));
                assert!(name_is("né").matches(&entry));
                let rendered = json.replacen(r#""x"}}"#, r#""x"},"resourceVersion":"7"}"#, 1);
                assert_eq!(s(entry.render(None)), rendered);
                let typed = rendered
                    .replacen(r#""kind":"K""#, r#""kind":"Kä""#, 1)
                    .replacen(r#""apiVersion":"v1""#, r#""apiVersion":"g/v2""#, 1);
                assert_eq!(s(entry.render(Some(("Kä", "g/v2")))), typed);
                for key in ["", "\u{1}clusters/p/ns/é", &"k".repeat(0x10000)] {
                    let keyed = entry.with_key(key).unwrap();
                    assert_eq!(keyed.key(), key.as_bytes());
                    assert_eq!(keyed.json(), json.as_bytes());
                    assert_eq!(
                        overhead(&keyed),
                        overhead(&entry)
                            + (key.len() >= 128) as usize
                            + (key.len() >= 1 << 14) as usize
                    );
                    assert_eq!(
                        keyed.header(),
                        Header {
                            key_len: key.len() as u32,
                            ..entry.header()
                        }
                    );
                    assert_eq!(s(keyed.render(None)), rendered);
                    let later = keyed.with_rv(u64::MAX);
                    assert_eq!((later.rv(), later.key()), (u64::MAX, &b""[..]));
                    assert_eq!(later.json(), json.as_bytes());
                    assert_eq!(later.name().as_deref(), Some("né"));
                }
            }
        }
    }

    #[test]
    fn empty_absent_and_odd_projections() {
        for json in [
            r#"{"metadata":{"labels":{}}}"#,
            r#"{"metadata":{"name":"a","labels":[]}}"#,
            r#"{"metadata":{"name":null,"namespace":7,"labels":{"k":null}}}"#,
        ] {
            let entry = e(json);
            assert!(overhead(&entry) <= 13);
            assert_eq!(entry.uid(), None);
            assert_eq!(entry.label("k").and_then(|v| v), None);
            assert_eq!(
                s(entry.render(Some(("K", "v1"))))
                    .matches("resourceVersion")
                    .count(),
                1
            );
        }
        assert_eq!(e(r#"{"metadata":{"labels":{}}}"#).label("k"), None);
        assert_eq!(
            e(r#"{"metadata":{"name":null,"labels":{"k":null}}}"#).label("k"),
            Some(None)
        );
        assert_eq!(e(r#"{"metadata":{"name":null}}"#).name(), None);
        let header = e(r#"{"metadata":{"name":"a","labels":[]}}"#).header();
        assert_eq!(
            (header.labels, header.uid, header.kind),
            (ABSENT, ABSENT, ABSENT)
        );
        assert_eq!(e(r#"{"metadata":{"name":1}}"#).header().name, NOT_STRING);
        assert!(e(r#"{"metadata":{}}"#).header().meta_empty);
    }

    #[test]
    fn decimal_is_display() {
        for v in [0, 7, 9, 10, 99, 100, 12_345, u64::from(u32::MAX), u64::MAX] {
            let mut out = b"x".to_vec();
            decimal(&mut out, v);
            assert_eq!(s(out), format!("x{v}"));
        }
    }

    #[test]
    fn json_string_matches_orjson() {
        assert_eq!(
            s(json_string("a\"\\\n\r\t\u{8}\u{c}\u{1}é/")),
            "\"a\\\"\\\\\\n\\r\\t\\b\\f\\u0001é/\""
        );
    }
}
