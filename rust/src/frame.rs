//! Storage-key frames: a value stored in etcd carries the key it was written under, so a value
//! copied to another key (or another project) is detected on read.
//!
//! Layout: `MAGIC (4 bytes: 0x7f "tsk") | VERSION (1 byte) | key length (u32 BE) | key | body`.
//!
//! Decoding rule, chosen so that a damaged frame can never be mistaken for legacy data:
//!
//! * data that does not begin with `0x7f` is not a frame (`Ok(None)`; this includes empty data);
//! * data that begins with `0x7f` must be a complete, valid frame: a partial or different magic,
//!   a truncated header, an unknown version or a key length past the end is an error.

use std::fmt;

/// The four bytes every frame starts with.
pub const MAGIC: [u8; 4] = *b"\x7ftsk";
/// The only format version this build writes and reads.
pub const VERSION: u8 = 1;
/// Magic + version + u32 key length.
pub const HEADER_LEN: usize = MAGIC.len() + 1 + 4;

/// Why data that starts like a frame could not be decoded (or a frame could not be built).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Starts with 0x7f but the rest of the magic is missing or different.
    BadMagic { len: usize },
    /// The magic is there but the header is cut short.
    TruncatedHeader { len: usize },
    /// A version byte this build does not know.
    UnknownVersion(u8),
    /// The key length runs past the end of the data.
    KeyPastEnd { key_len: u64, available: usize },
    /// Encoding only: a key longer than u32::MAX bytes.
    KeyTooLong(usize),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::BadMagic { len } => write!(
                f,
                "corrupt frame: data starts with 0x7f but not with the frame magic \
                 b'\\x7ftsk' ({len} bytes)"
            ),
            FrameError::TruncatedHeader { len } => write!(
                f,
                "corrupt frame: truncated header ({len} bytes, need at least {HEADER_LEN})"
            ),
            FrameError::UnknownVersion(v) => write!(
                f,
                "corrupt frame: unknown format version {v} (this build reads version {VERSION})"
            ),
            FrameError::KeyPastEnd { key_len, available } => write!(
                f,
                "corrupt frame: key length {key_len} runs past the end of the data \
                 ({available} bytes after the header)"
            ),
            FrameError::KeyTooLong(len) => {
                write!(
                    f,
                    "key of {len} bytes is too long for a frame (max {})",
                    u32::MAX
                )
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// Total length of the frame for a key and body, or an error if the key is too long.
#[inline]
pub fn frame_len(key_len: usize, body_len: usize) -> Result<usize, FrameError> {
    if u32::try_from(key_len).is_err() {
        return Err(FrameError::KeyTooLong(key_len));
    }
    Ok(HEADER_LEN + key_len + body_len)
}

/// Write the frame into `out`, which must be exactly `frame_len(key.len(), body.len())` long.
#[inline]
pub fn write_frame(out: &mut [u8], key: &[u8], body: &[u8]) {
    let key_len = u32::try_from(key.len()).expect("key length checked by frame_len");
    let (header, rest) = out.split_at_mut(HEADER_LEN);
    header[..4].copy_from_slice(&MAGIC);
    header[4] = VERSION;
    header[5..].copy_from_slice(&key_len.to_be_bytes());
    let (k, b) = rest.split_at_mut(key.len());
    k.copy_from_slice(key);
    b.copy_from_slice(body);
}

/// Frame `key` and `body` into a new vector.
pub fn frame(key: &[u8], body: &[u8]) -> Result<Vec<u8>, FrameError> {
    let mut out = vec![0u8; frame_len(key.len(), body.len())?];
    write_frame(&mut out, key, body);
    Ok(out)
}

/// A decoded frame: `(key, body)`, borrowed from the input.
pub type Unframed<'a> = (&'a [u8], &'a [u8]);

/// Split a frame into `(key, body)`; `Ok(None)` when the data is not a frame at all.
pub fn unframe(data: &[u8]) -> Result<Option<Unframed<'_>>, FrameError> {
    if data.first() != Some(&MAGIC[0]) {
        return Ok(None);
    }
    let magic_seen = data.len().min(MAGIC.len());
    if data[..magic_seen] != MAGIC[..magic_seen] {
        return Err(FrameError::BadMagic { len: data.len() });
    }
    if data.len() < HEADER_LEN {
        // A known version byte is still checked first so the message names the real problem.
        if let Some(&v) = data.get(MAGIC.len()) {
            if v != VERSION {
                return Err(FrameError::UnknownVersion(v));
            }
        }
        return Err(FrameError::TruncatedHeader { len: data.len() });
    }
    let version = data[MAGIC.len()];
    if version != VERSION {
        return Err(FrameError::UnknownVersion(version));
    }
    let mut len_bytes = [0u8; 4];
    len_bytes.copy_from_slice(&data[MAGIC.len() + 1..HEADER_LEN]);
    let key_len = u32::from_be_bytes(len_bytes);
    let rest = &data[HEADER_LEN..];
    let key_len_usize = usize::try_from(key_len).unwrap_or(usize::MAX);
    if key_len_usize > rest.len() {
        return Err(FrameError::KeyPastEnd {
            key_len: u64::from(key_len),
            available: rest.len(),
        });
    }
    Ok(Some(rest.split_at(key_len_usize)))
}

/// Python bindings for frames.
pub mod py {
    use super::FrameError;
    use pyo3::exceptions::PyValueError;
    use pyo3::prelude::*;
    use pyo3::types::{PyBytes, PyTuple};

    pyo3::create_exception!(
        tenantstore._native,
        CorruptFrameError,
        PyValueError,
        "Data that starts like a storage-key frame (first byte 0x7f) but is not a complete, valid \
         frame: wrong magic, truncated header, unknown version or key length past the end."
    );

    /// Lets `?` raise the exception Python callers catch: damaged stored data is a
    /// `CorruptFrameError`, an unframeable key is a plain `ValueError` (a caller bug).
    impl From<FrameError> for PyErr {
        fn from(err: FrameError) -> PyErr {
            match err {
                FrameError::KeyTooLong(_) => PyValueError::new_err(err.to_string()),
                FrameError::BadMagic { .. }
                | FrameError::TruncatedHeader { .. }
                | FrameError::UnknownVersion(_)
                | FrameError::KeyPastEnd { .. } => CorruptFrameError::new_err(err.to_string()),
            }
        }
    }

    /// MAGIC | VERSION | u32 BE key length | key | body, built in one allocation.
    #[pyfunction]
    pub fn frame<'py>(py: Python<'py>, key: &[u8], body: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let len = super::frame_len(key.len(), body.len())?;
        PyBytes::new_with(py, len, |out| {
            super::write_frame(out, key, body);
            Ok(())
        })
    }

    /// (key, body) for a frame, None for data not starting with 0x7f, CorruptFrameError otherwise.
    #[pyfunction]
    pub fn unframe<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Option<Bound<'py, PyTuple>>> {
        match super::unframe(data)? {
            None => Ok(None),
            Some((key, body)) => {
                PyTuple::new(py, [PyBytes::new(py, key), PyBytes::new(py, body)]).map(Some)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let f = frame(b"/k", b"body").unwrap();
        assert_eq!(&f[..4], b"\x7ftsk");
        assert_eq!(f[4], 1);
        assert_eq!(&f[5..9], &[0, 0, 0, 2]);
        assert_eq!(&f[9..11], b"/k");
        assert_eq!(&f[11..], b"body");
    }

    #[test]
    fn round_trip() {
        for (key, body) in [
            (&b""[..], &b""[..]),
            (b"/registry/configmaps/clusters/p1/ns/a", b"\x7ftsk nested"),
            (b"k", &[0u8; 1000][..]),
            (b"\x00\xff", b""),
        ] {
            let f = frame(key, body).unwrap();
            assert_eq!(f.len(), HEADER_LEN + key.len() + body.len());
            assert_eq!(unframe(&f), Ok(Some((key, body))));
        }
    }

    #[test]
    fn not_a_frame() {
        assert_eq!(unframe(b""), Ok(None));
        assert_eq!(unframe(b"{\"json\": 1}"), Ok(None));
        assert_eq!(unframe(b"k8s\x00"), Ok(None));
        assert_eq!(unframe(b"\x00\x7ftsk"), Ok(None));
    }

    #[test]
    fn corrupt() {
        assert_eq!(
            unframe(b"\x7f"),
            Err(FrameError::TruncatedHeader { len: 1 })
        );
        assert_eq!(
            unframe(b"\x7fts"),
            Err(FrameError::TruncatedHeader { len: 3 })
        );
        assert_eq!(
            unframe(b"\x7ftsk"),
            Err(FrameError::TruncatedHeader { len: 4 })
        );
        assert_eq!(
            unframe(b"\x7ftsk\x01\x00"),
            Err(FrameError::TruncatedHeader { len: 6 })
        );
        assert_eq!(
            unframe(b"\x7fELF\x02\x01"),
            Err(FrameError::BadMagic { len: 6 })
        );
        assert_eq!(unframe(b"\x7fx"), Err(FrameError::BadMagic { len: 2 }));
        assert_eq!(unframe(b"\x7ftsk\x02"), Err(FrameError::UnknownVersion(2)));
        assert_eq!(
            unframe(b"\x7ftsk\x00\x00\x00\x00\x00"),
            Err(FrameError::UnknownVersion(0))
        );
        assert_eq!(
            unframe(b"\x7ftsk\x01\x00\x00\x00\x05abc"),
            Err(FrameError::KeyPastEnd {
                key_len: 5,
                available: 3
            })
        );
        assert_eq!(
            unframe(b"\x7ftsk\x01\xff\xff\xff\xff"),
            Err(FrameError::KeyPastEnd {
                key_len: u64::from(u32::MAX),
                available: 0
            })
        );
        // Every strict prefix of a valid frame that starts with 0x7f is an error, never None.
        let f = frame(b"key", b"").unwrap();
        for end in 1..f.len() {
            assert!(unframe(&f[..end]).is_err(), "prefix of {end} bytes");
        }
        assert!(unframe(&f).is_ok());
    }

    #[test]
    fn messages() {
        assert!(FrameError::UnknownVersion(9)
            .to_string()
            .contains("version 9"));
        assert!(FrameError::TruncatedHeader { len: 3 }
            .to_string()
            .contains("truncated"));
        assert!(FrameError::KeyPastEnd {
            key_len: 5,
            available: 3
        }
        .to_string()
        .contains("key length 5"));
    }

    #[test]
    fn key_too_long() {
        let too_long = u32::MAX as usize + 1;
        assert_eq!(
            frame_len(too_long, 0),
            Err(FrameError::KeyTooLong(too_long))
        );
        assert_eq!(frame_len(3, 4), Ok(HEADER_LEN + 7));
    }
}
