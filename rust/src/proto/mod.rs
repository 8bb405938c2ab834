//! Kubernetes' protobuf encoding of the built-in types, converted straight to and from the
//! JSON the server stores.
//!
//! A protobuf body is the magic `k8s\0` followed by a `runtime.Unknown` message: its
//! `typeMeta` names the apiVersion and kind, its `raw` holds the typed message. The typed
//! messages are described by tables ([`schema`]) rather than generated structs: one
//! declaration per field gives both directions, the JSON field order and Go's omission
//! rules, so a decoded body is the JSON a Go client would have sent for the same object.
//!
//! Decoding is strict about what it reads (bounds, wire types of known fields, UTF-8, time
//! ranges) and skips unknown fields, as protobuf parsers do. Encoding reads JSON that any
//! client may have written: values of the wrong type are an error, unknown members are left
//! out (a Go server decoding the same JSON into its types would drop them too).

pub mod schema;
pub mod time;
pub mod wire;

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use serde_json::{Map, Value};

use schema::{Emit, Field, Message, Ty};
use wire::{put_bytes, put_uint, Reader, LEN, VARINT};

/// The four bytes before every protobuf-encoded Kubernetes object.
pub const MAGIC: [u8; 4] = *b"k8s\x00";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtoError {
    /// The body is not a valid encoding of the expected message (a client's fault).
    Decode(String),
    /// The envelope names a kind other than the one the request is for.
    WrongKind(String),
    /// A JSON value has no protobuf form under the schema (stored data a Go client could
    /// not have written).
    Encode(String),
}

impl ProtoError {
    fn decode(msg: impl Into<String>) -> Self {
        ProtoError::Decode(msg.into())
    }

    fn at(self, path: &str) -> Self {
        match self {
            ProtoError::Decode(m) => ProtoError::Decode(format!("{path}: {m}")),
            ProtoError::Encode(m) => ProtoError::Encode(format!("{path}: {m}")),
            other => other,
        }
    }
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtoError::Decode(m) | ProtoError::WrongKind(m) | ProtoError::Encode(m) => {
                f.write_str(m)
            }
        }
    }
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

// -- decoding --------------------------------------------------------------------------------

/// How many JSON values a body may still decode to. Protobuf is denser than JSON: two bytes
/// (`ownerReferences: [{}]`) become an object with four required strings, so a body of a
/// few MiB could otherwise fan out into hundreds of MiB of values. Every value costs one
/// unit; a body gets two per byte, plus headroom for the fields Go always writes. Real
/// objects stay far below (a map entry costs at least four bytes on the wire).
pub struct Budget(usize);

impl Budget {
    pub fn for_body(len: usize) -> Self {
        Budget(len.saturating_mul(2).saturating_add(256))
    }

    fn spend(&mut self) -> Result<(), ProtoError> {
        self.0 = self.0.checked_sub(1).ok_or_else(|| {
            ProtoError::decode("the body decodes to far more values than its size allows")
        })?;
        Ok(())
    }
}

/// A field's decoded value(s) before they are laid out as JSON.
enum Slot {
    Empty,
    One(Value),
    Many(Vec<Value>),
    Entries(BTreeMap<String, Value>),
}

fn utf8(data: &[u8]) -> Result<String, ProtoError> {
    String::from_utf8(data.to_vec()).map_err(|_| ProtoError::decode("invalid UTF-8 in a string"))
}

fn decode_time(data: &[u8], micro: bool) -> Result<Value, ProtoError> {
    if data.is_empty() {
        return Ok(Value::Null);
    }
    let (mut seconds, mut nanos) = (0i64, 0i64);
    let mut r = Reader::new(data);
    while !r.done() {
        match r.tag()? {
            (1, VARINT) => seconds = r.varint()? as i64,
            (2, VARINT) => nanos = i64::from(r.varint()? as i32),
            (1 | 2, _) => return Err(ProtoError::decode("wrong wire type in a timestamp")),
            (_, w) => r.skip(w)?,
        }
    }
    if !micro {
        // Go keeps only the seconds of a `Time` read from protobuf.
        nanos = 0;
    }
    let seconds = seconds
        .checked_add(nanos.div_euclid(1_000_000_000))
        .ok_or_else(|| ProtoError::decode("timestamp out of range"))?;
    let nanos = nanos.rem_euclid(1_000_000_000) as u32;
    if seconds == time::ZERO_SECONDS && nanos < 1000 {
        return Ok(Value::Null);
    }
    time::format(seconds, nanos, micro)
        .map(Value::String)
        .ok_or_else(|| ProtoError::decode("timestamp out of range"))
}

fn decode_entry(data: &[u8], bytes_value: bool) -> Result<(String, Value), ProtoError> {
    let (mut key, mut value) = (String::new(), Vec::new());
    let mut r = Reader::new(data);
    while !r.done() {
        match r.tag()? {
            (1, LEN) => key = utf8(r.bytes()?)?,
            (2, LEN) => value = r.bytes()?.to_vec(),
            (1 | 2, _) => return Err(ProtoError::decode("wrong wire type in a map entry")),
            (_, w) => r.skip(w)?,
        }
    }
    let value = if bytes_value {
        Value::String(b64().encode(&value))
    } else {
        Value::String(
            String::from_utf8(value)
                .map_err(|_| ProtoError::decode("invalid UTF-8 in a string").at(&key))?,
        )
    };
    Ok((key, value))
}

/// One occurrence of a known field, as JSON.
fn decode_value(
    r: &mut Reader<'_>,
    field: &Field,
    wire: u8,
    budget: &mut Budget,
) -> Result<Value, ProtoError> {
    let want = match field.ty {
        Ty::Bool | Ty::Int32 | Ty::Int64 => VARINT,
        _ => LEN,
    };
    if wire != want {
        return Err(ProtoError::decode(format!(
            "wrong wire type {wire} (want {want})"
        )));
    }
    Ok(match field.ty {
        Ty::Bool => Value::Bool(r.varint()? != 0),
        // Truncation to 32 bits is what Go's generated decoders do.
        Ty::Int32 => Value::from(r.varint()? as i32),
        Ty::Int64 => Value::from(r.varint()? as i64),
        Ty::Str => Value::String(utf8(r.bytes()?)?),
        Ty::Bytes => Value::String(b64().encode(r.bytes()?)),
        Ty::Time => decode_time(r.bytes()?, false)?,
        Ty::MicroTime => decode_time(r.bytes()?, true)?,
        Ty::Msg(msg) => Value::Object(decode_message(r.bytes()?, msg, budget)?),
        Ty::RawJson => {
            let data = r.bytes()?;
            let mut raw: &[u8] = &[];
            let mut inner = Reader::new(data);
            while !inner.done() {
                match inner.tag()? {
                    (1, LEN) => raw = inner.bytes()?,
                    (1, _) => return Err(ProtoError::decode("wrong wire type in fieldsV1")),
                    (_, w) => inner.skip(w)?,
                }
            }
            if raw.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(raw)
                    .map_err(|e| ProtoError::decode(format!("fieldsV1 is not JSON: {e}")))?
            }
        }
        Ty::StrMap | Ty::BytesMap => unreachable!("maps are decoded entry by entry"),
    })
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// What Go writes for a field that was not on the wire and is never omitted.
fn zero_value(field: &Field, budget: &mut Budget) -> Result<Value, ProtoError> {
    if field.repeated {
        return Ok(Value::Array(Vec::new()));
    }
    Ok(match field.ty {
        Ty::Str | Ty::Bytes => Value::String(String::new()),
        Ty::Bool => Value::Bool(false),
        Ty::Int32 | Ty::Int64 => Value::from(0),
        Ty::Time | Ty::MicroTime | Ty::RawJson => Value::Null,
        Ty::StrMap | Ty::BytesMap => Value::Object(Map::new()),
        Ty::Msg(msg) => Value::Object(decode_message(&[], msg, budget)?),
    })
}

/// A message as the JSON object Go's `encoding/json` would write for it.
pub fn decode_message(
    data: &[u8],
    msg: &Message,
    budget: &mut Budget,
) -> Result<Map<String, Value>, ProtoError> {
    let mut slots: Vec<Slot> = msg.fields.iter().map(|_| Slot::Empty).collect();
    let mut r = Reader::new(data);
    while !r.done() {
        let (num, wire) = r.tag()?;
        let Some(index) = msg.fields.iter().position(|f| f.num == num) else {
            r.skip(wire)?;
            continue;
        };
        let field = &msg.fields[index];
        let slot = &mut slots[index];
        match field.ty {
            Ty::StrMap | Ty::BytesMap => {
                if wire != LEN {
                    return Err(ProtoError::decode("wrong wire type for a map").at(field.name));
                }
                budget.spend()?;
                let (k, v) = decode_entry(r.bytes()?, matches!(field.ty, Ty::BytesMap))
                    .map_err(|e| e.at(field.name))?;
                if !matches!(slot, Slot::Entries(_)) {
                    *slot = Slot::Entries(BTreeMap::new());
                }
                if let Slot::Entries(entries) = slot {
                    entries.insert(k, v);
                }
            }
            _ => {
                budget.spend()?;
                let value =
                    decode_value(&mut r, field, wire, budget).map_err(|e| e.at(field.name))?;
                if field.repeated {
                    if let Slot::Many(values) = slot {
                        values.push(value);
                    } else {
                        *slot = Slot::Many(vec![value]);
                    }
                } else {
                    *slot = Slot::One(value);
                }
            }
        }
    }
    let mut out = Map::new();
    for (field, slot) in msg.fields.iter().zip(slots) {
        let value = match slot {
            Slot::Empty => None,
            Slot::One(v) => Some(v),
            Slot::Many(vs) => Some(Value::Array(vs)),
            Slot::Entries(entries) => Some(Value::Object(entries.into_iter().collect())),
        };
        let value = match (field.emit, value) {
            (Emit::OmitEmpty, Some(v)) if is_zero(&v) => None,
            (Emit::Always, None) => {
                budget.spend()?;
                Some(zero_value(field, budget)?)
            }
            (_, v) => v,
        };
        if let Some(v) = value {
            out.insert(field.name.to_owned(), v);
        }
    }
    Ok(out)
}

/// `(apiVersion, kind, raw)` of a `runtime.Unknown` envelope (after the magic).
fn read_unknown(data: &[u8]) -> Result<(String, String, &[u8]), ProtoError> {
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    let mut r = Reader::new(data);
    while !r.done() {
        match r.tag()? {
            (1, LEN) => {
                let mut tm = Reader::new(r.bytes()?);
                while !tm.done() {
                    match tm.tag()? {
                        (1, LEN) => api_version = utf8(tm.bytes()?)?,
                        (2, LEN) => kind = utf8(tm.bytes()?)?,
                        (1 | 2, _) => {
                            return Err(ProtoError::decode("wrong wire type in typeMeta"))
                        }
                        (_, w) => tm.skip(w)?,
                    }
                }
            }
            (2, LEN) => raw = r.bytes()?,
            (3 | 4, LEN) => {
                utf8(r.bytes()?)?;
            }
            (1..=4, _) => return Err(ProtoError::decode("wrong wire type in runtime.Unknown")),
            (_, w) => r.skip(w)?,
        }
    }
    Ok((api_version, kind, raw))
}

/// The JSON of a protobuf request body that must hold `kind` of `api_version`: `kind` and
/// `apiVersion` first (an empty `typeMeta` takes the expected ones, as Kubernetes' decoder
/// defaults them from the target type), then the object's fields in Go's order.
pub fn decode_body(data: &[u8], api_version: &str, kind: &str) -> Result<Vec<u8>, ProtoError> {
    let Some(rest) = data.strip_prefix(&MAGIC[..]) else {
        return Err(ProtoError::decode(
            "provided data does not appear to be a protobuf message, expected prefix \"k8s\\x00\"",
        ));
    };
    if rest.is_empty() {
        return Err(ProtoError::decode("empty body"));
    }
    let (mut got_version, mut got_kind, raw) =
        read_unknown(rest).map_err(|e| e.at("runtime.Unknown"))?;
    if got_version.is_empty() {
        got_version = api_version.to_owned();
    }
    if got_kind.is_empty() {
        got_kind = kind.to_owned();
    }
    let wrong_kind = || {
        ProtoError::WrongKind(format!(
            "the body holds {} of {}, not {kind} of {api_version}",
            clip(&got_kind),
            clip(&got_version)
        ))
    };
    let msg = schema::lookup(&got_version, &got_kind).ok_or_else(wrong_kind)?;
    let expected = schema::lookup(api_version, kind).ok_or_else(wrong_kind)?;
    if got_kind != kind || !std::ptr::eq(msg, expected) {
        return Err(wrong_kind());
    }
    let mut out = Map::new();
    out.insert("kind".into(), Value::String(got_kind));
    out.insert("apiVersion".into(), Value::String(got_version));
    let mut budget = Budget::for_body(data.len());
    out.extend(decode_message(raw, msg, &mut budget).map_err(|e| e.at(msg.name))?);
    serde_json::to_vec(&Value::Object(out)).map_err(|e| ProtoError::Decode(e.to_string()))
}

/// A client's string as an error message shows it: at most 64 characters.
fn clip(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

// -- encoding --------------------------------------------------------------------------------

fn encode_error(what: &str, value: &Value) -> ProtoError {
    let shown = match value {
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
        Value::Null => "null",
    };
    ProtoError::Encode(format!("want {what}, found {shown}"))
}

fn want_str<'v>(value: &'v Value, what: &str) -> Result<&'v str, ProtoError> {
    match value {
        Value::String(s) => Ok(s),
        Value::Null => Ok(""),
        other => Err(encode_error(what, other)),
    }
}

fn want_bytes(value: &Value) -> Result<Vec<u8>, ProtoError> {
    let text = want_str(value, "a base64 string")?;
    // Go's `encoding/json` skips line breaks inside base64.
    let cleaned: String = text.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    b64()
        .decode(cleaned)
        .map_err(|e| ProtoError::Encode(format!("invalid base64: {e}")))
}

fn want_int(value: &Value, min: i64, max: i64) -> Result<i64, ProtoError> {
    match value.as_i64() {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(match value {
            Value::Number(n) => ProtoError::Encode(format!("integer {n} out of range")),
            other => encode_error("an integer", other),
        }),
    }
}

fn encode_time(value: &Value, micro: bool) -> Result<Vec<u8>, ProtoError> {
    let text = want_str(value, "an RFC 3339 time")?;
    let (seconds, nanos) = time::parse(text)
        .ok_or_else(|| ProtoError::Encode(format!("invalid RFC 3339 time \"{text}\"")))?;
    let mut out = Vec::new();
    put_uint(&mut out, 1, seconds as u64);
    let nanos = if micro { nanos - nanos % 1000 } else { 0 };
    if nanos != 0 {
        put_uint(&mut out, 2, u64::from(nanos));
    }
    Ok(out)
}

fn encode_one(out: &mut Vec<u8>, field: &Field, value: &Value) -> Result<(), ProtoError> {
    let num = field.num;
    match field.ty {
        Ty::Str => put_bytes(out, num, want_str(value, "a string")?.as_bytes()),
        Ty::Bytes => put_bytes(out, num, &want_bytes(value)?),
        Ty::Bool => match value {
            Value::Bool(b) => put_uint(out, num, u64::from(*b)),
            other => return Err(encode_error("a boolean", other)),
        },
        Ty::Int32 => {
            let n = want_int(value, i64::from(i32::MIN), i64::from(i32::MAX))?;
            put_uint(out, num, n as u64);
        }
        Ty::Int64 => put_uint(out, num, want_int(value, i64::MIN, i64::MAX)? as u64),
        Ty::Time | Ty::MicroTime => put_bytes(
            out,
            num,
            &encode_time(value, matches!(field.ty, Ty::MicroTime))?,
        ),
        Ty::Msg(msg) => {
            let body = match value {
                Value::Object(obj) => encode_message(obj, msg)?,
                Value::Null => Vec::new(),
                other => return Err(encode_error("an object", other)),
            };
            put_bytes(out, num, &body);
        }
        Ty::RawJson => {
            let raw = serde_json::to_vec(value).map_err(|e| ProtoError::Encode(e.to_string()))?;
            let mut inner = Vec::new();
            put_bytes(&mut inner, 1, &raw);
            put_bytes(out, num, &inner);
        }
        Ty::StrMap | Ty::BytesMap => {
            let Value::Object(entries) = value else {
                return Err(encode_error("an object", value));
            };
            // Sorted by key, as Go's generated encoders write maps.
            let mut keys: Vec<&String> = entries.keys().collect();
            keys.sort();
            for key in keys {
                let v = &entries[key.as_str()];
                let mut entry = Vec::new();
                put_bytes(&mut entry, 1, key.as_bytes());
                if matches!(field.ty, Ty::BytesMap) {
                    put_bytes(&mut entry, 2, &want_bytes(v).map_err(|e| e.at(key))?);
                } else {
                    let s = want_str(v, "a string").map_err(|e| e.at(key))?;
                    put_bytes(&mut entry, 2, s.as_bytes());
                }
                put_bytes(out, num, &entry);
            }
        }
    }
    Ok(())
}

/// A JSON object as the message `msg`, fields in ascending number order; `null` members are
/// absent, unknown members are dropped.
pub fn encode_message(obj: &Map<String, Value>, msg: &Message) -> Result<Vec<u8>, ProtoError> {
    let mut fields: Vec<&Field> = msg.fields.iter().collect();
    fields.sort_by_key(|f| f.num);
    let mut out = Vec::new();
    for field in fields {
        let Some(value) = obj.get(field.name) else {
            continue;
        };
        if value.is_null() {
            continue;
        }
        let result = if field.repeated {
            let Value::Array(items) = value else {
                return Err(encode_error("a list", value).at(field.name));
            };
            items.iter().enumerate().try_for_each(|(i, item)| {
                encode_one(&mut out, field, item).map_err(|e| e.at(&format!("[{i}]")))
            })
        } else {
            encode_one(&mut out, field, value)
        };
        result.map_err(|e| e.at(field.name))?;
    }
    Ok(out)
}

fn put_unknown(out: &mut Vec<u8>, api_version: &str, kind: &str, raw: &[u8]) {
    let mut type_meta = Vec::new();
    put_bytes(&mut type_meta, 1, api_version.as_bytes());
    put_bytes(&mut type_meta, 2, kind.as_bytes());
    put_bytes(out, 1, &type_meta);
    put_bytes(out, 2, raw);
    // contentEncoding and contentType, empty, as Go writes them.
    put_bytes(out, 3, b"");
    put_bytes(out, 4, b"");
}

/// A JSON object (its `apiVersion` and `kind` choose the message) as a protobuf body: the
/// magic, then `runtime.Unknown`.
pub fn encode_value(value: &Value) -> Result<Vec<u8>, ProtoError> {
    let Value::Object(obj) = value else {
        return Err(encode_error("an object", value));
    };
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let msg = schema::lookup(api_version, kind).ok_or_else(|| {
        ProtoError::Encode(format!("no protobuf encoding for {kind} of {api_version}"))
    })?;
    let raw = encode_message(obj, msg).map_err(|e| e.at(msg.name))?;
    let mut out = Vec::with_capacity(raw.len() + 32);
    out.extend_from_slice(&MAGIC);
    put_unknown(&mut out, api_version, kind, &raw);
    Ok(out)
}

/// JSON text as a protobuf body (see [`encode_value`]).
pub fn encode_json(json: &[u8]) -> Result<Vec<u8>, ProtoError> {
    let value: Value =
        serde_json::from_slice(json).map_err(|e| ProtoError::Encode(format!("not JSON: {e}")))?;
    encode_value(&value)
}

/// One frame of a protobuf watch (`application/vnd.kubernetes.protobuf;stream=watch`) for a
/// watch event as JSON (`{"type": ..., "object": ...}`, the line the JSON stream would send):
/// a 4-byte big-endian length, then a `metav1.WatchEvent` whose `object.raw` is the event's
/// object as a protobuf body (magic and envelope included).
pub fn watch_frame(event_json: &[u8]) -> Result<Vec<u8>, ProtoError> {
    let event: Value = serde_json::from_slice(event_json)
        .map_err(|e| ProtoError::Encode(format!("not JSON: {e}")))?;
    let event_type = event.get("type").and_then(Value::as_str).unwrap_or("");
    let object = encode_value(event.get("object").unwrap_or(&Value::Null))?;
    let mut raw_extension = Vec::with_capacity(object.len() + 8);
    put_bytes(&mut raw_extension, 1, &object);
    let mut message = Vec::with_capacity(raw_extension.len() + event_type.len() + 16);
    put_bytes(&mut message, 1, event_type.as_bytes());
    put_bytes(&mut message, 2, &raw_extension);
    let len = u32::try_from(message.len())
        .map_err(|_| ProtoError::Encode("watch event too large for a frame".into()))?;
    let mut out = Vec::with_capacity(message.len() + 4);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&message);
    Ok(out)
}

pub mod py {
    use super::ProtoError;
    use pyo3::exceptions::PyValueError;
    use pyo3::prelude::*;
    use pyo3::types::PyBytes;

    pyo3::create_exception!(
        tenantstore._native,
        ProtobufDecodeError,
        PyValueError,
        "A protobuf request body that is not a valid encoding of the kind the request is for: \
         bad magic, truncated or malformed fields, invalid UTF-8, or another kind named in its \
         envelope."
    );
    pyo3::create_exception!(
        tenantstore._native,
        ProtobufEncodeError,
        PyValueError,
        "JSON that has no protobuf encoding: a kind the codec does not know, or a value of the \
         wrong type for its field."
    );

    impl From<ProtoError> for PyErr {
        fn from(err: ProtoError) -> PyErr {
            match err {
                ProtoError::Decode(_) | ProtoError::WrongKind(_) => {
                    ProtobufDecodeError::new_err(err.to_string())
                }
                ProtoError::Encode(_) => ProtobufEncodeError::new_err(err.to_string()),
            }
        }
    }

    /// The JSON of a protobuf request body that must hold `kind` of `api_version`.
    #[pyfunction]
    pub fn protobuf_to_json<'py>(
        py: Python<'py>,
        data: &[u8],
        api_version: &str,
        kind: &str,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let json = py.detach(|| super::decode_body(data, api_version, kind))?;
        Ok(PyBytes::new(py, &json))
    }

    /// JSON text (an object whose `apiVersion` and `kind` the codec knows) as a protobuf body.
    #[pyfunction]
    pub fn json_to_protobuf<'py>(py: Python<'py>, json: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let body = py.detach(|| super::encode_json(json))?;
        Ok(PyBytes::new(py, &body))
    }

    /// One length-prefixed frame of a protobuf watch stream, for a watch event's JSON.
    #[pyfunction]
    pub fn protobuf_watch_frame<'py>(
        py: Python<'py>,
        event_json: &[u8],
    ) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &super::watch_frame(event_json)?))
    }

    /// Every `(apiVersion, kind)` the codec encodes and decodes.
    #[pyfunction]
    pub fn protobuf_kinds() -> Vec<(&'static str, &'static str)> {
        super::schema::kinds().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A protobuf body built by hand, independently of the encoder.
    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        put_unknown(&mut out, api_version, kind, raw);
        out
    }

    fn decode(body: &[u8], kind: &str) -> Result<Value, ProtoError> {
        decode_body(body, "v1", kind).map(|j| serde_json::from_slice(&j).unwrap())
    }

    #[test]
    fn configmap_from_hand_encoded_bytes() {
        // metadata{name: "a", labels{x: y}}, immutable: false, data{k: v}, binaryData{b: 0x00ff}
        let mut meta = Vec::new();
        put_bytes(&mut meta, 1, b"a");
        put_bytes(&mut meta, 11, b"\x0a\x01x\x12\x01y");
        let mut raw = Vec::new();
        put_bytes(&mut raw, 1, &meta);
        put_bytes(&mut raw, 2, b"\x0a\x01k\x12\x01v");
        put_bytes(&mut raw, 3, b"\x0a\x01b\x12\x02\x00\xff");
        put_uint(&mut raw, 4, 0);
        let got = decode(&envelope("v1", "ConfigMap", &raw), "ConfigMap").unwrap();
        let want = json!({
            "kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": "a", "labels": {"x": "y"}},
            "immutable": false, "data": {"k": "v"}, "binaryData": {"b": "AP8="},
        });
        assert_eq!(got, want);
        // Go's field order: kind, apiVersion, metadata, immutable, data, binaryData.
        let keys: Vec<&String> = got.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "kind",
                "apiVersion",
                "metadata",
                "immutable",
                "data",
                "binaryData"
            ]
        );
        let again = encode_value(&got).unwrap();
        assert_eq!(decode(&again, "ConfigMap").unwrap(), want);
    }

    #[test]
    fn event_round_trip_with_times() {
        let event = json!({
            "kind": "Event", "apiVersion": "v1",
            "metadata": {"name": "e", "namespace": "default",
                         "creationTimestamp": "2024-05-06T07:08:09Z"},
            "involvedObject": {"kind": "ConfigMap", "namespace": "default", "name": "a",
                               "uid": "u", "apiVersion": "v1", "resourceVersion": "7",
                               "fieldPath": "data"},
            "reason": "Made", "message": "m", "source": {"component": "c", "host": "h"},
            "firstTimestamp": "2024-05-06T07:08:09Z", "lastTimestamp": null,
            "count": 3, "type": "Normal", "eventTime": "2024-05-06T07:08:09.123456Z",
            "series": {"count": 2, "lastObservedTime": "2024-05-06T07:08:10.000001Z"},
            "action": "Create",
            "related": {"kind": "Secret", "name": "s"},
            "reportingComponent": "rc", "reportingInstance": "",
        });
        let body = encode_value(&event).unwrap();
        assert_eq!(decode(&body, "Event").unwrap(), event);
    }

    #[test]
    fn absent_fields_follow_go_json() {
        let got = decode(&envelope("v1", "Event", b""), "Event").unwrap();
        assert_eq!(
            got,
            json!({"kind": "Event", "apiVersion": "v1", "metadata": {}, "involvedObject": {},
                   "source": {}, "firstTimestamp": null, "lastTimestamp": null,
                   "eventTime": null, "reportingComponent": "", "reportingInstance": ""})
        );
        let ns = decode(&envelope("", "", b""), "Namespace").unwrap();
        assert_eq!(
            ns,
            json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {}, "spec": {}, "status": {}})
        );
    }

    #[test]
    fn hostile_bodies_are_decode_errors() {
        let good = envelope("v1", "ConfigMap", b"");
        let cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"k8s".to_vec(),
            b"k8s\x00".to_vec(),
            b"k9s\x00\x0a\x00".to_vec(),
            good[..good.len() - 1].to_vec(),
            // raw claims 2^62 bytes
            [&MAGIC[..], b"\x12\xff\xff\xff\xff\xff\xff\xff\xff\x3f"].concat(),
            // an 11-byte varint
            [
                &MAGIC[..],
                b"\x12\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
            ]
            .concat(),
            // a group wire type
            [&MAGIC[..], b"\x0b"].concat(),
            // field number 0
            [&MAGIC[..], b"\x02\x00"].concat(),
            // metadata.name is not UTF-8
            envelope("v1", "ConfigMap", b"\x0a\x03\x0a\x01\xff"),
            // a data value is not UTF-8
            envelope("v1", "ConfigMap", b"\x12\x06\x0a\x01k\x12\x01\xc3"),
            // metadata with the varint wire type
            envelope("v1", "ConfigMap", b"\x08\x01"),
            // a time past year 9999
            envelope("v1", "Event", b"\x32\x07\x08\x80\x80\x80\x80\x80\x08"),
        ];
        for body in cases {
            let err = decode_body(&body, "v1", "ConfigMap")
                .or_else(|e| match e {
                    ProtoError::WrongKind(_) => decode_body(&body, "v1", "Event"),
                    other => Err(other),
                })
                .unwrap_err();
            assert!(matches!(err, ProtoError::Decode(_)), "{body:?}: {err:?}");
        }
    }

    #[test]
    fn fan_out_is_bounded() {
        // 100,000 empty owner references: 200 KB on the wire, 500,000 values in JSON.
        let mut meta = Vec::new();
        for _ in 0..100_000 {
            put_bytes(&mut meta, 13, b"");
        }
        let mut raw = Vec::new();
        put_bytes(&mut raw, 1, &meta);
        let err = decode_body(&envelope("v1", "ConfigMap", &raw), "v1", "ConfigMap").unwrap_err();
        assert!(err.to_string().contains("far more values"), "{err}");
        // A large real ConfigMap (short keys and values) stays within its budget.
        let mut raw = Vec::new();
        for i in 0..100_000 {
            let key = format!("k{i}");
            let mut entry = Vec::new();
            put_bytes(&mut entry, 1, key.as_bytes());
            put_bytes(&mut entry, 2, b"v");
            put_bytes(&mut raw, 2, &entry);
        }
        let got = decode(&envelope("v1", "ConfigMap", &raw), "ConfigMap").unwrap();
        assert_eq!(got["data"].as_object().unwrap().len(), 100_000);
    }

    #[test]
    fn another_kind_is_refused() {
        let secret = envelope("v1", "Secret", b"");
        assert!(matches!(
            decode_body(&secret, "v1", "ConfigMap"),
            Err(ProtoError::WrongKind(_))
        ));
        let custom = envelope("example.com/v1", "ConfigMap", b"");
        assert!(matches!(
            decode_body(&custom, "v1", "ConfigMap"),
            Err(ProtoError::WrongKind(_))
        ));
        let options = envelope("meta.k8s.io/v1", "DeleteOptions", b"\x08\x05");
        let got = decode(&options, "DeleteOptions").unwrap();
        assert_eq!(got["gracePeriodSeconds"], json!(5));
    }

    #[test]
    fn unencodable_json_is_an_encode_error() {
        for bad in [
            json!({"kind": "ConfigMap", "apiVersion": "v1", "data": {"a": 1}}),
            json!({"kind": "ConfigMap", "apiVersion": "v1", "binaryData": {"a": "!!"}}),
            json!({"kind": "ConfigMap", "apiVersion": "v1", "immutable": "yes"}),
            json!({"kind": "Event", "apiVersion": "v1", "count": 1u64 << 40}),
            json!({"kind": "Event", "apiVersion": "v1", "firstTimestamp": "yesterday"}),
            json!({"kind": "Widget", "apiVersion": "example.com/v1"}),
            json!([1]),
        ] {
            assert!(
                matches!(encode_value(&bad), Err(ProtoError::Encode(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn watch_frames_are_length_prefixed() {
        let frame = watch_frame(
            br#"{"type":"ADDED","object":{"kind":"Status","apiVersion":"v1","code":410}}"#,
        )
        .unwrap();
        let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - 4);
        let mut r = Reader::new(&frame[4..]);
        assert_eq!(r.tag().unwrap(), (1, LEN));
        assert_eq!(r.bytes().unwrap(), b"ADDED");
        assert_eq!(r.tag().unwrap(), (2, LEN));
        let mut ext = Reader::new(r.bytes().unwrap());
        assert_eq!(ext.tag().unwrap(), (1, LEN));
        let object = ext.bytes().unwrap();
        assert_eq!(decode(object, "Status").unwrap()["code"], json!(410));
    }
}
