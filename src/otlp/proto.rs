//! The protobuf wire format, as much of it as OTLP needs: varints, fixed-width numbers and
//! length-delimited fields, written into one `Vec<u8>`.
//!
//! A nested message is written in place ([`begin`] then [`end`]): its content goes straight
//! into the buffer after a one-byte length placeholder, which [`end`] fills in; only a message
//! of 128 bytes or more moves its content to make room for a longer length. No message is
//! built in a buffer of its own.

/// Wire type of varints.
const VARINT: u32 = 0;
/// Wire type of 64-bit fixed-width values (`fixed64`, `double`).
const I64: u32 = 1;
/// Wire type of length-delimited values (strings, bytes, messages, packed numbers).
const LEN: u32 = 2;
/// Wire type of 32-bit fixed-width values (`fixed32`).
const I32: u32 = 5;

/// Appends `v` as a base-128 varint.
#[inline(never)]
pub fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// A field's tag: one byte for the fields below 16 OTLP uses most, without a call.
#[inline]
fn tag(buf: &mut Vec<u8>, field: u32, wire: u32) {
    let key = field << 3 | wire;
    if key < 0x80 {
        buf.push(key as u8);
    } else {
        varint(buf, u64::from(key));
    }
}

/// The number of bytes of `v` as a varint.
#[inline]
pub fn varint_len(v: u64) -> usize {
    // 1 byte per 7 significant bits, at least 1.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// The encoded size of a field numbered below 16 (one tag byte) whose content (a string, bytes
/// or a message) is `len` bytes long, including its tag and length.
#[inline]
pub fn len_field_size(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// The tag and length of a length-delimited field (a string, bytes or a message) whose `len`
/// bytes of content the caller writes next: the alternative to [`begin`] and [`end`] when the
/// length is known up front.
#[inline]
pub fn len_prefix(buf: &mut Vec<u8>, field: u32, len: usize) {
    tag(buf, field, LEN);
    if len < 0x80 {
        buf.push(len as u8);
    } else {
        varint(buf, len as u64);
    }
}

/// A varint field (`uint64`, `int64`, `uint32`, enums, `bool`).
pub fn uint(buf: &mut Vec<u8>, field: u32, v: u64) {
    tag(buf, field, VARINT);
    varint(buf, v);
}

/// A `fixed64` field.
pub fn fixed64(buf: &mut Vec<u8>, field: u32, v: u64) {
    tag(buf, field, I64);
    buf.extend_from_slice(&v.to_le_bytes());
}

/// A `double` field.
pub fn double(buf: &mut Vec<u8>, field: u32, v: f64) {
    fixed64(buf, field, v.to_bits());
}

/// A `fixed32` field.
pub fn fixed32(buf: &mut Vec<u8>, field: u32, v: u32) {
    tag(buf, field, I32);
    buf.extend_from_slice(&v.to_le_bytes());
}

/// A `bytes` or `string` field.
pub fn bytes(buf: &mut Vec<u8>, field: u32, v: &[u8]) {
    len_prefix(buf, field, v.len());
    buf.extend_from_slice(v);
}

/// Starts a nested message (or packed field) `field`; pass the result to [`end`].
#[must_use]
pub fn begin(buf: &mut Vec<u8>, field: u32) -> usize {
    tag(buf, field, LEN);
    // The placeholder of a one-byte length (most messages here are shorter than 128 bytes).
    buf.push(0);
    buf.len()
}

/// Ends the message started at `start`: writes its length in front of its content.
#[inline(never)]
pub fn end(buf: &mut Vec<u8>, start: usize) {
    let len = buf.len() - start;
    if len < 0x80 {
        buf[start - 1] = len as u8;
        return;
    }
    // The length's varint goes to the end, then the content moves behind it; the
    // placeholder byte is its first byte.
    varint(buf, len as u64);
    let n = buf.len() - start - len;
    let mut prefix = [0u8; 10];
    prefix[..n].copy_from_slice(&buf[start + len..]);
    buf.copy_within(start..start + len, start + n - 1);
    buf[start - 1..start - 1 + n].copy_from_slice(&prefix[..n]);
    buf.truncate(start - 1 + n + len);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_computed_up_front_are_the_sizes_written() {
        for v in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut b = Vec::new();
            varint(&mut b, v);
            assert_eq!(varint_len(v), b.len(), "{v}");
        }
        for len in [0, 1, 127, 128, 300, 20_000] {
            let mut b = Vec::new();
            bytes(&mut b, 15, &vec![1; len]);
            assert_eq!(len_field_size(len), b.len(), "{len}");
            let mut m = Vec::new();
            let start = begin(&mut m, 15);
            m.extend_from_slice(&vec![1; len]);
            end(&mut m, start);
            assert_eq!(m, b, "{len}");
        }
    }

    #[test]
    fn wire_format_examples_from_the_protobuf_docs() {
        let mut b = Vec::new();
        uint(&mut b, 1, 150);
        assert_eq!(b, [0x08, 0x96, 0x01]);
        b.clear();
        bytes(&mut b, 2, b"testing");
        assert_eq!(b, b"\x12\x07testing");
        b.clear();
        let m = begin(&mut b, 3);
        uint(&mut b, 1, 150);
        end(&mut b, m);
        assert_eq!(b, [0x1a, 0x03, 0x08, 0x96, 0x01]);
        b.clear();
        // A message longer than 127 bytes gets a two-byte length.
        let m = begin(&mut b, 1);
        bytes(&mut b, 1, &[7; 200]);
        end(&mut b, m);
        assert_eq!(&b[..5], [0x0a, 0xcb, 0x01, 0x0a, 0xc8]);
        assert_eq!(b.len(), 3 + 3 + 200);
        // Three length bytes, nested in a message that also outgrows its placeholder.
        b.clear();
        let outer = begin(&mut b, 1);
        let inner = begin(&mut b, 2);
        b.extend_from_slice(&[9; 20_000]);
        end(&mut b, inner);
        end(&mut b, outer);
        assert_eq!(&b[..8], [0x0a, 0xa4, 0x9c, 0x01, 0x12, 0xa0, 0x9c, 0x01]);
        assert_eq!(b.len(), 8 + 20_000);
        assert!(b[8..].iter().all(|x| *x == 9));
    }
}
