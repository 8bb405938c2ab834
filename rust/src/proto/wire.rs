//! The protobuf wire format: varints, tags and length-delimited fields, read with bounds checks
//! (a length past the end of the data is an error, never a panic or an allocation of that size).

use super::ProtoError;

pub const VARINT: u8 = 0;
pub const FIXED64: u8 = 1;
pub const LEN: u8 = 2;
pub const FIXED32: u8 = 5;

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn varint(&mut self) -> Result<u64, ProtoError> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(ProtoError::decode("truncated varint"));
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ProtoError::decode("varint longer than 10 bytes"))
    }

    /// `(field number, wire type)`; field number 0 is invalid.
    pub fn tag(&mut self) -> Result<(u32, u8), ProtoError> {
        let key = self.varint()?;
        let num = key >> 3;
        if num == 0 || num > u64::from(u32::MAX >> 3) {
            return Err(ProtoError::decode(format!("invalid field number {num}")));
        }
        Ok((num as u32, (key & 7) as u8))
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], ProtoError> {
        let available = self.buf.len() - self.pos;
        if len > available as u64 {
            return Err(ProtoError::decode(format!(
                "field length {len} runs past the end of the data ({available} bytes left)"
            )));
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok(&self.buf[start..self.pos])
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], ProtoError> {
        let len = self.varint()?;
        self.take(len)
    }

    /// Skip a field this codec does not know, as protobuf parsers do. Groups (wire types 3
    /// and 4, deprecated and never written by Kubernetes) are refused.
    pub fn skip(&mut self, wire: u8) -> Result<(), ProtoError> {
        match wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => self.take(4).map(drop),
            other => Err(ProtoError::decode(format!("unsupported wire type {other}"))),
        }
    }
}

pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub fn put_tag(out: &mut Vec<u8>, num: u32, wire: u8) {
    put_varint(out, (u64::from(num) << 3) | u64::from(wire));
}

pub fn put_bytes(out: &mut Vec<u8>, num: u32, data: &[u8]) {
    put_tag(out, num, LEN);
    put_varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

pub fn put_uint(out: &mut Vec<u8>, num: u32, value: u64) {
    put_tag(out, num, VARINT);
    put_varint(out, value);
}
