//! The frame: one batch of readings from one gateway, as sent on the wire.
//! See docs/wire-format.md for the byte layout; this file is its reference implementation.
use crate::bytes::{put_varint, Reader};
use crate::column::{
    decode_int_column, decode_quality, decode_value_column, encode_int_column, encode_quality,
    encode_value_column, Values, ValuesRef, MAX_VALUES,
};
use crate::error::{Error, Result};

pub const MAGIC: [u8; 4] = *b"BCGF";
pub const VERSION: u8 = 1;
/// Bytes of the fixed part of the header (before the two names).
const FIXED_HEADER: usize = 36;
/// Longest territory or gateway name, in UTF-8 bytes.
pub const MAX_NAME: usize = 255;
/// Longest sensor or metric name, in UTF-8 bytes.
pub const MAX_SERIES_NAME: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    pub territory: String,
    pub gateway: String,
    pub sequence: u64,
    pub created_ms: i64,
    pub series_count: u32,
    pub reading_count: u32,
    /// Total header bytes (including its checksum).
    pub header_len: usize,
    /// Body bytes (series records and the body checksum).
    pub body_len: usize,
}

impl Header {
    pub fn frame_id(&self) -> String {
        format!("{}:{}:{}", self.territory, self.gateway, self.sequence)
    }
}

/// One series handed to the encoder.
pub struct SeriesIn<'a> {
    pub sensor: &'a str,
    pub metric: &'a str,
    pub timestamps: &'a [i64],
    pub values: ValuesRef<'a>,
    /// `None` means all readings are good (quality 0).
    pub quality: Option<&'a [u8]>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SeriesOut {
    pub sensor: String,
    pub metric: String,
    pub timestamps: Vec<i64>,
    pub values: Values,
    pub quality: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub header: Header,
    pub series: Vec<SeriesOut>,
}

fn check_name(kind: &str, s: &str, max: usize, allow_colon: bool) -> Result<()> {
    if s.is_empty() {
        return Err(Error::invalid(format!("{kind} must not be empty")));
    }
    if s.len() > max {
        return Err(Error::invalid(format!(
            "{kind} is {} bytes long, limit is {max}",
            s.len()
        )));
    }
    if !allow_colon && s.contains(':') {
        return Err(Error::invalid(format!(
            "{kind} {s:?} must not contain ':' (frame id separator)"
        )));
    }
    Ok(())
}

/// Encodes one frame. Fails with `Error::Invalid` on mismatched lengths, empty or oversized
/// names, or more than `MAX_VALUES` readings in total.
pub fn encode_frame(
    territory: &str,
    gateway: &str,
    sequence: u64,
    created_ms: i64,
    series: &[SeriesIn<'_>],
) -> Result<Vec<u8>> {
    check_name("territory", territory, MAX_NAME, false)?;
    check_name("gateway", gateway, MAX_NAME, false)?;
    let mut readings: usize = 0;
    for (i, s) in series.iter().enumerate() {
        check_name("sensor", s.sensor, MAX_SERIES_NAME, true)
            .and_then(|_| check_name("metric", s.metric, MAX_SERIES_NAME, true))
            .map_err(|e| Error::invalid(format!("series {i}: {e}")))?;
        let n = s.timestamps.len();
        if s.values.len() != n {
            return Err(Error::invalid(format!(
                "series {i} ({}/{}): {n} timestamps but {} values",
                s.sensor,
                s.metric,
                s.values.len()
            )));
        }
        if let Some(q) = s.quality {
            if q.len() != n {
                return Err(Error::invalid(format!(
                    "series {i} ({}/{}): {n} timestamps but {} quality flags",
                    s.sensor,
                    s.metric,
                    q.len()
                )));
            }
        }
        readings += n;
    }
    if readings > MAX_VALUES {
        return Err(Error::invalid(format!(
            "frame holds {readings} readings, limit is {MAX_VALUES}"
        )));
    }
    if series.len() > MAX_VALUES {
        return Err(Error::invalid("too many series"));
    }

    let mut body = Vec::with_capacity(64 + readings * 4);
    let mut col = Vec::new();
    for s in series {
        put_varint(&mut body, s.sensor.len() as u64);
        body.extend_from_slice(s.sensor.as_bytes());
        put_varint(&mut body, s.metric.len() as u64);
        body.extend_from_slice(s.metric.as_bytes());
        put_varint(&mut body, s.timestamps.len() as u64);
        col.clear();
        encode_int_column(s.timestamps, &mut col);
        put_varint(&mut body, col.len() as u64);
        body.extend_from_slice(&col);
        col.clear();
        encode_value_column(s.values, &mut col);
        put_varint(&mut body, col.len() as u64);
        body.extend_from_slice(&col);
        col.clear();
        match s.quality {
            Some(q) => encode_quality(q, &mut col),
            None => col.push(crate::column::Q_ZERO),
        }
        put_varint(&mut body, col.len() as u64);
        body.extend_from_slice(&col);
    }
    let body_crc = crc32c::crc32c(&body);
    body.extend_from_slice(&body_crc.to_le_bytes());

    let header_len = FIXED_HEADER + 2 + territory.len() + gateway.len() + 4;
    let mut out = Vec::with_capacity(header_len + body.len());
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(0); // flags, reserved
    out.extend_from_slice(&(header_len as u16).to_le_bytes());
    let body_len =
        u32::try_from(body.len()).map_err(|_| Error::invalid("frame body over 4 GiB"))?;
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend_from_slice(&created_ms.to_le_bytes());
    out.extend_from_slice(&(series.len() as u32).to_le_bytes());
    out.extend_from_slice(&(readings as u32).to_le_bytes());
    out.push(territory.len() as u8);
    out.extend_from_slice(territory.as_bytes());
    out.push(gateway.len() as u8);
    out.extend_from_slice(gateway.as_bytes());
    let hcrc = crc32c::crc32c(&out);
    out.extend_from_slice(&hcrc.to_le_bytes());
    debug_assert_eq!(out.len(), header_len);
    out.extend_from_slice(&body);
    Ok(out)
}

fn utf8(b: &[u8], what: &str) -> Result<String> {
    std::str::from_utf8(b)
        .map(str::to_owned)
        .map_err(|_| Error::corrupt(format!("{what} is not valid UTF-8")))
}

/// Reads and checks the header only: magic, version, flags, lengths (against the bytes
/// present) and the header checksum. Does not read the body.
pub fn peek_header(data: &[u8]) -> Result<Header> {
    let mut r = Reader::new(data);
    let magic = r.take(4, "frame magic")?;
    if magic != MAGIC {
        return Err(Error::corrupt(format!(
            "not a Bocage frame (magic {magic:02x?})"
        )));
    }
    let version = r.u8("frame version")?;
    if version != VERSION {
        return Err(Error::corrupt(format!(
            "unsupported frame version {version} (this decoder reads {VERSION})"
        )));
    }
    let flags = r.u8("frame flags")?;
    if flags != 0 {
        return Err(Error::corrupt(format!("unknown frame flags 0x{flags:02x}")));
    }
    let header_len = r.u16("header length")? as usize;
    let body_len = r.u32("body length")? as usize;
    if header_len < FIXED_HEADER + 2 + 4 {
        return Err(Error::corrupt(format!(
            "header length {header_len} too small"
        )));
    }
    if data.len() < header_len {
        return Err(Error::corrupt(format!(
            "truncated frame header: declares {header_len} bytes, {} present",
            data.len()
        )));
    }
    let sequence = r.u64("sequence")?;
    let created_ms = r.i64("creation time")?;
    let series_count = r.u32("series count")?;
    let reading_count = r.u32("reading count")?;
    let tl = r.u8("territory length")? as usize;
    let territory = utf8(r.take(tl, "territory")?, "territory")?;
    let gl = r.u8("gateway length")? as usize;
    let gateway = utf8(r.take(gl, "gateway")?, "gateway")?;
    if r.pos() + 4 != header_len {
        return Err(Error::corrupt(format!(
            "header length {header_len} disagrees with its contents ({} bytes)",
            r.pos() + 4
        )));
    }
    let stored = r.u32("header checksum")?;
    let computed = crc32c::crc32c(&data[..header_len - 4]);
    if stored != computed {
        return Err(Error::corrupt(format!(
            "header checksum mismatch (stored {stored:08x}, computed {computed:08x})"
        )));
    }
    if data.len() != header_len + body_len {
        return Err(Error::corrupt(format!(
            "frame length {} disagrees with header ({} header + {} body bytes)",
            data.len(),
            header_len,
            body_len
        )));
    }
    if territory.is_empty() || gateway.is_empty() {
        return Err(Error::corrupt("empty territory or gateway name"));
    }
    if territory.contains(':') || gateway.contains(':') {
        return Err(Error::corrupt("territory or gateway name contains ':'"));
    }
    if reading_count as usize > MAX_VALUES {
        return Err(Error::corrupt(format!(
            "frame declares {reading_count} readings, limit is {MAX_VALUES}"
        )));
    }
    if body_len < 4 {
        return Err(Error::corrupt("frame body too short for its checksum"));
    }
    Ok(Header {
        version,
        territory,
        gateway,
        sequence,
        created_ms,
        series_count,
        reading_count,
        header_len,
        body_len,
    })
}

/// Decodes and checks a whole frame.
pub fn decode_frame(data: &[u8]) -> Result<Frame> {
    let header = peek_header(data)?;
    let body = &data[header.header_len..];
    let (records, crc) = body.split_at(body.len() - 4);
    let stored = u32::from_le_bytes(crc.try_into().unwrap());
    let computed = crc32c::crc32c(records);
    if stored != computed {
        return Err(Error::corrupt(format!(
            "body checksum mismatch (stored {stored:08x}, computed {computed:08x})"
        )));
    }
    let mut r = Reader::new(records);
    // Every series record takes at least 7 bytes, which bounds the list before allocating.
    if header.series_count as usize > records.len() / 7 {
        return Err(Error::corrupt(format!(
            "frame declares {} series, its body cannot hold that many",
            header.series_count
        )));
    }
    let mut series = Vec::with_capacity(header.series_count as usize);
    let mut left = header.reading_count as usize;
    for i in 0..header.series_count {
        let ctx = |e: Error| Error::corrupt(format!("series {i}: {e}"));
        let l = r.len_prefix("sensor length").map_err(ctx)?;
        let sensor = utf8(r.take(l, "sensor").map_err(ctx)?, "sensor").map_err(ctx)?;
        let l = r.len_prefix("metric length").map_err(ctx)?;
        let metric = utf8(r.take(l, "metric").map_err(ctx)?, "metric").map_err(ctx)?;
        let n = r.varint("reading count").map_err(ctx)?;
        if n > left as u64 {
            return Err(ctx(Error::corrupt(format!(
                "declares {n} readings, more than the header's total leaves ({left})"
            ))));
        }
        let n = n as usize;
        left -= n;
        let l = r.len_prefix("timestamp column length").map_err(ctx)?;
        let timestamps = decode_int_column(r.take(l, "timestamps").map_err(ctx)?, n)
            .map_err(|e| ctx(Error::corrupt(format!("timestamps: {e}"))))?;
        let l = r.len_prefix("value column length").map_err(ctx)?;
        let values = decode_value_column(r.take(l, "values").map_err(ctx)?, n)
            .map_err(|e| ctx(Error::corrupt(format!("values: {e}"))))?;
        let l = r.len_prefix("quality column length").map_err(ctx)?;
        let quality = decode_quality(r.take(l, "quality").map_err(ctx)?, n)
            .map_err(|e| ctx(Error::corrupt(format!("quality: {e}"))))?;
        series.push(SeriesOut {
            sensor,
            metric,
            timestamps,
            values,
            quality,
        });
    }
    if left != 0 {
        return Err(Error::corrupt(format!(
            "header declares {} readings, series hold {}",
            header.reading_count,
            header.reading_count as usize - left
        )));
    }
    if !r.is_empty() {
        return Err(Error::corrupt(format!(
            "{} trailing bytes after the last series",
            r.remaining()
        )));
    }
    Ok(Frame { header, series })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let ts: Vec<i64> = (0..60).map(|i| 1_700_000_000_000 + i * 1000).collect();
        let v: Vec<f64> = (0..60).map(|i| 20.0 + i as f64 * 0.1).collect();
        let c: Vec<i64> = (0..60).map(|i| 1000 + i * 3).collect();
        let q: Vec<u8> = (0..60).map(|i| (i % 7 == 0) as u8).collect();
        encode_frame(
            "21231",
            "gw-01",
            42,
            1_700_000_060_000,
            &[
                SeriesIn {
                    sensor: "t1",
                    metric: "temperature",
                    timestamps: &ts,
                    values: ValuesRef::F64(&v),
                    quality: None,
                },
                SeriesIn {
                    sensor: "m1",
                    metric: "energy",
                    timestamps: &ts,
                    values: ValuesRef::I64(&c),
                    quality: Some(&q),
                },
            ],
        )
        .unwrap()
    }

    #[test]
    fn roundtrip() {
        let b = sample();
        let f = decode_frame(&b).unwrap();
        assert_eq!(f.header.frame_id(), "21231:gw-01:42");
        assert_eq!(f.header.series_count, 2);
        assert_eq!(f.header.reading_count, 120);
        assert_eq!(f.series[1].quality[7], 1);
        assert!(matches!(f.series[1].values, Values::I64(_)));
        assert_eq!(peek_header(&b).unwrap(), f.header);
    }

    #[test]
    fn every_truncation_and_bitflip_is_an_error() {
        let b = sample();
        for cut in 0..b.len() {
            assert!(decode_frame(&b[..cut]).is_err(), "cut {cut}");
        }
        for i in 0..b.len() {
            for bit in 0..8 {
                let mut m = b.clone();
                m[i] ^= 1 << bit;
                assert!(decode_frame(&m).is_err(), "flip byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn encoder_rejects_bad_arguments() {
        let ts = [1i64, 2];
        let v = [1.0f64];
        let s = [SeriesIn {
            sensor: "a",
            metric: "b",
            timestamps: &ts,
            values: ValuesRef::F64(&v),
            quality: None,
        }];
        assert!(matches!(
            encode_frame("t", "g", 0, 0, &s),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            encode_frame("t:x", "g", 0, 0, &[]),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            encode_frame("", "g", 0, 0, &[]),
            Err(Error::Invalid(_))
        ));
    }
}
