//! Sparse histograms and the HdrHistogram V2 (+DEFLATE) codec working on
//! them directly.
//!
//! Every Quarry histogram has one configuration, so a bucket is fully named
//! by its index in the HDR counts array. A [`Sparse`] histogram keeps only
//! the recorded buckets as (index, count) pairs: a series that saw 50
//! requests costs a few hundred bytes instead of 270 KB, decoding it touches
//! only what the bytes hold, and adding it to a full histogram costs one
//! record per recorded bucket instead of a pass over all 33,792 counts.
//!
//! The codec is HdrHistogram's V2 format (and its DEFLATE wrapper), as
//! `hdrhistogram::serialization` writes and reads it: tests check byte for
//! byte that both agree, so agents, controllers and results files of either
//! side interoperate.

use std::cell::RefCell;
use std::cmp::Ordering;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use hdrhistogram::Histogram;

use super::{HISTOGRAM_HIGHEST, HISTOGRAM_LOWEST, HISTOGRAM_SIGFIG, new_histogram};

// The index arithmetic below is HDR's for a lowest value of 1 (unit
// magnitude 0); any other lowest value would need the unit shifts back.
const _: () = assert!(HISTOGRAM_LOWEST == 1);

/// log2 of the sub-buckets per bucket: unit resolution up to 2 × 10^sigfig
/// (2,000 at 3 digits) needs 2,048.
const SUB_BUCKET_MAGNITUDE: u32 = {
    let largest = 2 * 10u64.pow(HISTOGRAM_SIGFIG as u32);
    64 - (largest - 1).leading_zeros()
};
const HALF_MAGNITUDE: u32 = SUB_BUCKET_MAGNITUDE - 1;
const HALF_COUNT: u32 = 1 << HALF_MAGNITUDE;
/// Buckets needed to cover [`HISTOGRAM_HIGHEST`] (32 for one hour in ns).
const BUCKETS: u32 = {
    let mut untrackable = 1u64 << SUB_BUCKET_MAGNITUDE;
    let mut buckets = 1;
    while untrackable <= HISTOGRAM_HIGHEST {
        untrackable <<= 1;
        buckets += 1;
    }
    buckets
};
/// Length of the HDR counts array: 33,792 for Quarry's configuration.
pub(super) const COUNTS_LEN: u32 = (BUCKETS + 1) * HALF_COUNT;

/// The lowest value counted at `index`.
#[inline]
pub(super) fn value_at(index: u32) -> u64 {
    let bucket = index >> HALF_MAGNITUDE;
    let sub = index & (HALF_COUNT - 1);
    if bucket == 0 {
        u64::from(sub)
    } else {
        u64::from(sub + HALF_COUNT) << (bucket - 1)
    }
}

/// The index counting `value` (values beyond the counts array map past its
/// end; callers only pass values a Quarry histogram holds).
pub(super) fn index_of(value: u64) -> u32 {
    let lz_base = 64 - SUB_BUCKET_MAGNITUDE;
    let bucket = lz_base - (value | ((1 << SUB_BUCKET_MAGNITUDE) - 1)).leading_zeros();
    // In [HALF_COUNT, 2 × HALF_COUNT) except in bucket 0, where it is below.
    let sub = (value >> bucket) as u32;
    ((bucket + 1) << HALF_MAGNITUDE) + sub - HALF_COUNT
}

/// A histogram as its recorded buckets only: (counts index, count) with
/// indexes rising and counts non-zero. Same configuration as every Quarry
/// histogram, so it converts to and adds into one exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Sparse {
    buckets: Vec<(u32, u64)>,
    /// Sum of the counts (saturating, as HDR's total).
    total: u64,
}

impl Sparse {
    /// The recorded buckets of a full histogram.
    pub(super) fn of(h: &Histogram<u64>) -> Self {
        let mut sparse = Sparse::default();
        for v in h.iter_recorded() {
            sparse.push(index_of(v.value_iterated_to()), v.count_at_value());
        }
        sparse
    }

    /// Appends a bucket above every bucket held.
    #[inline]
    fn push(&mut self, index: u32, count: u64) {
        debug_assert!(self.buckets.last().is_none_or(|(i, _)| *i < index));
        debug_assert!(count > 0 && index < COUNTS_LEN);
        self.buckets.push((index, count));
        self.total = self.total.saturating_add(count);
    }

    /// Values recorded.
    pub(super) fn len(&self) -> u64 {
        self.total
    }

    /// Nothing recorded.
    pub(super) fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Buckets with a count.
    pub(super) fn distinct(&self) -> usize {
        self.buckets.len()
    }

    /// Adds `other` bucket by bucket (HDR's saturating sums), in one pass
    /// over both.
    pub(super) fn merge(&mut self, other: &Sparse) {
        if other.is_empty() {
            return;
        }
        let last = self.buckets.last().map(|(i, _)| *i);
        if last.is_none_or(|l| l < other.buckets[0].0) {
            // Disjoint and above: append.
            self.buckets.extend_from_slice(&other.buckets);
        } else {
            let (a, b) = (&self.buckets, &other.buckets);
            let mut out = Vec::with_capacity(a.len() + b.len());
            let (mut i, mut j) = (0, 0);
            while let (Some(&(ia, ca)), Some(&(ib, cb))) = (a.get(i), b.get(j)) {
                match ia.cmp(&ib) {
                    Ordering::Less => {
                        out.push((ia, ca));
                        i += 1;
                    }
                    Ordering::Greater => {
                        out.push((ib, cb));
                        j += 1;
                    }
                    Ordering::Equal => {
                        out.push((ia, ca.saturating_add(cb)));
                        i += 1;
                        j += 1;
                    }
                }
            }
            out.extend_from_slice(&a[i..]);
            out.extend_from_slice(&b[j..]);
            self.buckets = out;
        }
        self.total = self.total.saturating_add(other.total);
    }

    /// Adds every bucket into `h`, one record per bucket. Exact: `h` has
    /// Quarry's configuration, and each bucket's lowest value lands in that
    /// same bucket.
    pub(super) fn add_to(&self, h: &mut Histogram<u64>) {
        for (index, count) in &self.buckets {
            h.saturating_record_n(value_at(*index), *count);
        }
    }

    /// A full histogram with these counts.
    pub(super) fn to_histogram(&self) -> Histogram<u64> {
        let mut h = new_histogram();
        self.add_to(&mut h);
        h
    }

    /// Plain V2 bytes: what `hdrhistogram`'s `V2Serializer` writes for the
    /// same histogram.
    pub(super) fn encode_v2(&self) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(V2_HEADER_LEN + 3 * self.buckets.len());
        self.write_v2(&mut out)?;
        Ok(out)
    }

    /// V2 bytes, DEFLATE-wrapped: what `hdrhistogram`'s
    /// `V2DeflateSerializer` writes for the same histogram.
    pub(super) fn encode_v2_deflate(&self) -> Result<Vec<u8>, String> {
        CODEC.with(|codec| {
            let codec = &mut *codec.borrow_mut();
            codec.v2.clear();
            self.write_v2(&mut codec.v2)?;
            let mut out = Vec::with_capacity(codec.v2.len() / 2 + 64);
            out.extend_from_slice(&V2_DEFLATE_COOKIE.to_be_bytes());
            out.extend_from_slice(&0u32.to_be_bytes());
            codec.deflate.reset();
            let mut input = codec.v2.as_slice();
            loop {
                if out.len() == out.capacity() {
                    out.reserve(out.len());
                }
                let before = codec.deflate.total_in();
                let status = codec
                    .deflate
                    .compress_vec(input, &mut out, FlushCompress::Finish)
                    .map_err(|e| format!("DEFLATE failed: {e}"))?;
                let consumed = usize::try_from(codec.deflate.total_in() - before)
                    .map_err(|_| "DEFLATE consumed more than it was given".to_owned())?;
                input = &input[consumed..];
                if status == Status::StreamEnd {
                    break;
                }
            }
            let compressed = u32::try_from(out.len() - 8)
                .map_err(|_| "compressed histogram over 4 GiB".to_owned())?;
            out[4..8].copy_from_slice(&compressed.to_be_bytes());
            Ok(out)
        })
    }

    /// Plain V2 bytes appended to `out`: the header, then the counts from
    /// index 0 to the highest recorded one, zero runs as negative lengths,
    /// each zig-zag LEB128 (9 bytes at most).
    fn write_v2(&self, out: &mut Vec<u8>) -> Result<(), String> {
        let start = out.len();
        out.extend_from_slice(&V2_COOKIE.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes()); // payload length, below
        out.extend_from_slice(&0u32.to_be_bytes()); // normalizing index offset
        out.extend_from_slice(&u32::from(HISTOGRAM_SIGFIG).to_be_bytes());
        out.extend_from_slice(&HISTOGRAM_LOWEST.to_be_bytes());
        out.extend_from_slice(&HISTOGRAM_HIGHEST.to_be_bytes());
        out.extend_from_slice(&1.0f64.to_be_bytes()); // integer to double ratio
        let mut next = 0u32;
        for (index, count) in &self.buckets {
            match index - next {
                0 => {}
                1 => put_varint(out, zig_zag(0)),
                zeros => put_varint(out, zig_zag(-i64::from(zeros))),
            }
            let count = i64::try_from(*count)
                .map_err(|_| format!("count {count} above i64::MAX cannot be V2-encoded"))?;
            put_varint(out, zig_zag(count));
            next = index + 1;
        }
        let payload = out.len() - start - V2_HEADER_LEN;
        // At most 9 bytes for each of 33,792 counts: fits in u32.
        let payload = u32::try_from(payload).map_err(|_| "V2 payload over 4 GiB".to_owned())?;
        out[start + 4..start + 8].copy_from_slice(&payload.to_be_bytes());
        Ok(())
    }

    /// Decodes V2 or V2+DEFLATE bytes, refusing any configuration but
    /// Quarry's.
    pub(super) fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut at = 0;
        match read_u32(bytes, &mut at)? {
            V2_COOKIE => CODEC.with(|codec| decode_v2(bytes, &mut codec.borrow_mut().buckets)),
            V2_DEFLATE_COOKIE => {
                let len = read_u32(bytes, &mut at)? as usize;
                let zlib = bytes.get(at..at.saturating_add(len)).ok_or_else(|| {
                    DecodeError::Invalid(format!(
                        "DEFLATE payload of {len} bytes announced, {} present",
                        bytes.len() - at
                    ))
                })?;
                CODEC.with(|codec| {
                    let Codec {
                        inflate: z,
                        v2,
                        buckets,
                        ..
                    } = &mut *codec.borrow_mut();
                    inflate(z, zlib, v2)?;
                    decode_v2(v2, buckets)
                })
            }
            other => Err(DecodeError::Invalid(format!(
                "cookie {other:#010x} is neither V2 nor V2+DEFLATE"
            ))),
        }
    }
}

/// Why bytes did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DecodeError {
    /// Not a V2 histogram (the detail says where).
    Invalid(String),
    /// A V2 histogram with other bounds than Quarry's.
    Configuration {
        /// Its lowest discernible value.
        lowest: u64,
        /// Its highest trackable value.
        highest: u64,
        /// Its significant digits.
        sigfig: u8,
    },
}

const V2_COOKIE: u32 = 0x1c84_9313;
const V2_DEFLATE_COOKIE: u32 = 0x1c84_9314;
const V2_HEADER_LEN: usize = 40;
/// The longest V2 histogram of Quarry's configuration: 9 bytes per count.
const V2_MAX_LEN: usize = V2_HEADER_LEN + 9 * COUNTS_LEN as usize;

/// Per-thread codec state: DEFLATE's tables and window (tens of KB) and the
/// scratch buffers are allocated once per thread rather than once per
/// histogram.
struct Codec {
    inflate: Decompress,
    deflate: Compress,
    /// Plain V2 bytes being built or just inflated.
    v2: Vec<u8>,
    /// Buckets being decoded.
    buckets: Vec<(u32, u64)>,
}

thread_local! {
    static CODEC: RefCell<Codec> = RefCell::new(Codec {
        inflate: Decompress::new(true),
        // HdrHistogram's serializer uses the default level; the same level
        // gives the same bytes.
        deflate: Compress::new(Compression::default(), true),
        v2: Vec::new(),
        buckets: Vec::new(),
    });
}

/// Inflates a zlib stream into `out` (cleared first), refusing anything
/// longer than the longest V2 histogram.
fn inflate(z: &mut Decompress, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let too_long = || {
        DecodeError::Invalid(format!(
            "DEFLATE payload inflates beyond {V2_MAX_LEN} bytes"
        ))
    };
    z.reset(true);
    out.clear();
    loop {
        if out.len() == out.capacity() {
            if out.len() > V2_MAX_LEN {
                return Err(too_long());
            }
            // Room for one byte past the limit, to tell "exactly the
            // longest" from "longer".
            out.reserve_exact(out.len().clamp(256, V2_MAX_LEN + 1 - out.len()));
        }
        let (in_before, out_before) = (z.total_in(), z.total_out());
        let status = z
            .decompress_vec(input, out, FlushDecompress::None)
            .map_err(|e| DecodeError::Invalid(format!("DEFLATE payload: {e}")))?;
        if out.len() > V2_MAX_LEN {
            return Err(too_long());
        }
        let consumed = (z.total_in() - in_before) as usize;
        input = &input[consumed..];
        match status {
            Status::StreamEnd => return Ok(()),
            _ if consumed == 0 && z.total_out() == out_before && out.len() < out.capacity() => {
                return Err(DecodeError::Invalid(
                    "DEFLATE payload ends before its stream does".to_owned(),
                ));
            }
            _ => {}
        }
    }
}

/// Decodes plain V2 bytes, gathering the buckets in `scratch` first so the
/// result is allocated once at its exact size: decoded intervals may wait in
/// memory, a thousand agents' at a time, until merged.
fn decode_v2(bytes: &[u8], scratch: &mut Vec<(u32, u64)>) -> Result<Sparse, DecodeError> {
    let mut at = 0;
    if read_u32(bytes, &mut at)? != V2_COOKIE {
        return Err(DecodeError::Invalid(
            "the inflated payload is not a V2 histogram".to_owned(),
        ));
    }
    let payload = read_u32(bytes, &mut at)? as usize;
    if read_u32(bytes, &mut at)? != 0 {
        return Err(DecodeError::Invalid(
            "normalizing index offsets are not supported".to_owned(),
        ));
    }
    let sigfig = read_u32(bytes, &mut at)?;
    let lowest = read_u64(bytes, &mut at)?;
    let highest = read_u64(bytes, &mut at)?;
    let ratio = f64::from_bits(read_u64(bytes, &mut at)?);
    if (lowest, highest, sigfig)
        != (
            HISTOGRAM_LOWEST,
            HISTOGRAM_HIGHEST,
            u32::from(HISTOGRAM_SIGFIG),
        )
    {
        return Err(DecodeError::Configuration {
            lowest,
            highest,
            sigfig: u8::try_from(sigfig).unwrap_or(u8::MAX),
        });
    }
    if ratio != 1.0 {
        return Err(DecodeError::Invalid(format!(
            "integer to double ratio {ratio} is not supported"
        )));
    }
    let counts = bytes.get(at..at.saturating_add(payload)).ok_or_else(|| {
        DecodeError::Invalid(format!(
            "payload of {payload} bytes announced, {} present",
            bytes.len() - at
        ))
    })?;
    scratch.clear();
    let mut total = 0u64;
    let mut at = 0;
    let mut index: u64 = 0;
    while at < counts.len() {
        let n = unzig_zag(get_varint(counts, &mut at).ok_or_else(|| {
            DecodeError::Invalid(format!("count at payload byte {at} is truncated"))
        })?);
        if n < 0 {
            index = index.saturating_add(n.unsigned_abs());
            continue;
        }
        if n > 0 {
            let slot = u32::try_from(index)
                .ok()
                .filter(|i| *i < COUNTS_LEN)
                .ok_or_else(|| {
                    DecodeError::Invalid(format!(
                        "count for index {index}, beyond the {COUNTS_LEN} the range has"
                    ))
                })?;
            let count = n.unsigned_abs();
            scratch.push((slot, count));
            total = total.saturating_add(count);
        }
        index += 1;
    }
    Ok(Sparse {
        buckets: scratch.as_slice().to_vec(),
        total,
    })
}

fn read_u32(bytes: &[u8], at: &mut usize) -> Result<u32, DecodeError> {
    let b = bytes
        .get(*at..*at + 4)
        .ok_or_else(|| DecodeError::Invalid(format!("truncated at byte {at}")))?;
    *at += 4;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn read_u64(bytes: &[u8], at: &mut usize) -> Result<u64, DecodeError> {
    let hi = read_u32(bytes, at)?;
    let lo = read_u32(bytes, at)?;
    Ok((u64::from(hi) << 32) | u64::from(lo))
}

fn zig_zag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

#[inline]
fn unzig_zag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

/// LEB128-64b9B: seven bits a byte for eight bytes, then a ninth byte with
/// the top eight bits as they are.
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    for _ in 0..8 {
        if v < 0x80 {
            out.push(v as u8);
            return;
        }
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
fn get_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in 0..8 {
        let b = *bytes.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << (7 * shift);
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    let b = *bytes.get(*at)?;
    *at += 1;
    Some(v | (u64::from(b) << 56))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::ZlibEncoder;
    use hdrhistogram::serialization::{
        Deserializer, Serializer, V2DeflateSerializer, V2Serializer,
    };
    use proptest::prelude::*;

    use super::*;

    fn recorded(values: &[u64]) -> Histogram<u64> {
        let mut h = new_histogram();
        for v in values {
            h.saturating_record(*v);
        }
        h
    }

    fn hdr_v2_deflate(h: &Histogram<u64>) -> Vec<u8> {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new().serialize(h, &mut bytes).unwrap();
        bytes
    }

    /// Values over the whole range: small ones (unit buckets), latencies,
    /// and beyond the highest trackable value (clamped on record).
    fn value() -> impl Strategy<Value = u64> {
        prop_oneof![0u64..5_000, 1u64..2_000_000_000, 1u64..u64::MAX]
    }

    #[test]
    fn index_arithmetic_is_hdrs() {
        let h = new_histogram();
        assert_eq!(COUNTS_LEN as usize, h.distinct_values());
        assert_eq!(COUNTS_LEN, 33_792);
        for index in 0..COUNTS_LEN {
            let v = value_at(index);
            assert_eq!(index_of(v), index, "value {v}");
            assert_eq!(h.lowest_equivalent(v), v, "index {index}");
            assert_eq!(index_of(h.highest_equivalent(v)), index, "index {index}");
        }
        // The last index holds the highest trackable value (and anything
        // clamped to it).
        assert!(index_of(HISTOGRAM_HIGHEST) < COUNTS_LEN);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn codec_agrees_with_hdrhistogram_byte_for_byte(
            values in prop::collection::vec(value(), 1..400),
        ) {
            let h = recorded(&values);
            let sparse = Sparse::of(&h);
            prop_assert_eq!(sparse.len(), h.len());
            prop_assert_eq!(&sparse.to_histogram(), &h);
            // Our bytes are HdrHistogram's bytes...
            let ours = sparse.encode_v2_deflate().unwrap();
            prop_assert_eq!(&ours, &hdr_v2_deflate(&h));
            // ...HdrHistogram reads ours back as the original...
            let back: Histogram<u64> = Deserializer::new().deserialize(&mut ours.as_slice()).unwrap();
            prop_assert_eq!(&back, &h);
            // ...and we read both of its encodings.
            prop_assert_eq!(&Sparse::decode(&ours).unwrap(), &sparse);
            let mut plain = Vec::new();
            V2Serializer::new().serialize(&h, &mut plain).unwrap();
            let ours_plain = sparse.encode_v2().unwrap();
            prop_assert_eq!(&ours_plain, &plain);
            let back: Histogram<u64> = Deserializer::new().deserialize(&mut ours_plain.as_slice()).unwrap();
            prop_assert_eq!(&back, &h);
            prop_assert_eq!(&Sparse::decode(&plain).unwrap(), &sparse);
        }

        #[test]
        fn merging_equals_recording_in_one_place(
            a in prop::collection::vec(value(), 0..300),
            b in prop::collection::vec(value(), 0..300),
        ) {
            let all: Vec<u64> = a.iter().chain(&b).copied().collect();
            let reference = recorded(&all);
            // Sparse + sparse.
            let mut merged = Sparse::of(&recorded(&a));
            merged.merge(&Sparse::of(&recorded(&b)));
            prop_assert_eq!(&merged, &Sparse::of(&reference));
            prop_assert_eq!(&merged.to_histogram(), &reference);
            // Sparse into full, both ways round.
            let mut full = recorded(&a);
            Sparse::of(&recorded(&b)).add_to(&mut full);
            prop_assert_eq!(&full, &reference);
            let mut full = recorded(&b);
            Sparse::of(&recorded(&a)).add_to(&mut full);
            prop_assert_eq!(&full, &reference);
        }
    }

    fn v2_header(lowest: u64, highest: u64, sigfig: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&V2_COOKIE.to_be_bytes());
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&sigfig.to_be_bytes());
        out.extend_from_slice(&lowest.to_be_bytes());
        out.extend_from_slice(&highest.to_be_bytes());
        out.extend_from_slice(&1.0f64.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn deflated(v2: &[u8]) -> Vec<u8> {
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(v2).unwrap();
        let z = z.finish().unwrap();
        let mut out = V2_DEFLATE_COOKIE.to_be_bytes().to_vec();
        out.extend_from_slice(&(z.len() as u32).to_be_bytes());
        out.extend_from_slice(&z);
        out
    }

    fn invalid(bytes: &[u8]) -> String {
        match Sparse::decode(bytes) {
            Err(DecodeError::Invalid(detail)) => detail,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn decode_names_what_is_wrong() {
        assert!(invalid(b"garbage!").contains("cookie 0x67617262"));
        assert!(invalid(&[0x1c, 0x84]).contains("truncated at byte 0"));
        // A count at index 2 (zero run of 2, then 7), then a truncated varint.
        let mut payload = vec![zig_zag(-2) as u8, zig_zag(7) as u8];
        let good = v2_header(1, HISTOGRAM_HIGHEST, 3, &payload);
        let sparse = Sparse::decode(&good).unwrap();
        assert_eq!(sparse.buckets, vec![(2, 7)]);
        assert_eq!(Sparse::decode(&deflated(&good)).unwrap(), sparse);
        payload.push(0x80);
        let err = invalid(&v2_header(1, HISTOGRAM_HIGHEST, 3, &payload));
        assert!(err.contains("truncated"), "{err}");
        // The announced payload is longer than the bytes.
        let mut short = good.clone();
        short.pop();
        assert!(invalid(&short).contains("payload of 2 bytes announced, 1 present"));
        // A count beyond the counts array.
        let mut beyond = Vec::new();
        put_varint(&mut beyond, zig_zag(-i64::from(COUNTS_LEN)));
        put_varint(&mut beyond, zig_zag(1));
        let err = invalid(&v2_header(1, HISTOGRAM_HIGHEST, 3, &beyond));
        assert!(err.contains("index 33792"), "{err}");
        // Another configuration.
        assert_eq!(
            Sparse::decode(&v2_header(1, 1_000_000, 2, &[2])),
            Err(DecodeError::Configuration {
                lowest: 1,
                highest: 1_000_000,
                sigfig: 2
            })
        );
        // A cut DEFLATE stream, and one announcing more than it holds.
        let mut cut = deflated(&good);
        cut.truncate(cut.len() - 3);
        let len = (cut.len() - 8) as u32;
        cut[4..8].copy_from_slice(&len.to_be_bytes());
        let err = invalid(&cut);
        assert!(err.contains("DEFLATE"), "{err}");
        let mut over = deflated(&good);
        over[4..8].copy_from_slice(&1000u32.to_be_bytes());
        assert!(invalid(&over).contains("DEFLATE payload of 1000 bytes announced"));
        // A DEFLATE payload that inflates beyond any V2 histogram of this
        // configuration is refused, not inflated.
        let bomb = deflated(&vec![0u8; V2_MAX_LEN + 10]);
        let err = invalid(&bomb);
        assert!(err.contains("inflates beyond"), "{err}");
    }

    #[test]
    fn huge_counts_are_refused_on_encode() {
        let mut sparse = Sparse::default();
        sparse.push(5, u64::MAX);
        assert!(sparse.encode_v2().unwrap_err().contains("above i64::MAX"));
        assert!(
            sparse
                .encode_v2_deflate()
                .unwrap_err()
                .contains("above i64::MAX")
        );
    }
}
