//! Request bodies: plain or gzip, never more than the limit in memory.

use std::borrow::Cow;
use std::io::Read;

use crate::batch::BatchError;
use crate::limits::Limits;

/// Returns the decompressed body, refusing oversize bodies and compression bombs.
///
/// Decompression stops one byte past the limit, so a bomb costs at most `max_body_bytes`
/// of memory whatever it claims to expand to.
pub fn decode<'a>(raw: &'a [u8], gzip: bool, limits: &Limits) -> Result<Cow<'a, [u8]>, BatchError> {
    if !gzip {
        if raw.len() > limits.max_body_bytes {
            return Err(BatchError::TooLarge(limits.max_body_bytes));
        }
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(limits.max_body_bytes));
    let cap = limits.max_body_bytes as u64 + 1;
    flate2::read::GzDecoder::new(raw)
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| BatchError::BadGzip(e.to_string()))?;
    if out.len() > limits.max_body_bytes {
        return Err(BatchError::TooLarge(limits.max_body_bytes));
    }
    if out.len() > raw.len().saturating_mul(limits.max_compression_ratio) {
        return Err(BatchError::CompressionBomb(limits.max_compression_ratio));
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn plain_bodies_pass_through_up_to_the_limit() {
        let limits = Limits::default();
        let body = vec![b'x'; limits.max_body_bytes];
        assert_eq!(decode(&body, false, &limits).unwrap().len(), body.len());
        let over = vec![b'x'; limits.max_body_bytes + 1];
        assert_eq!(
            decode(&over, false, &limits),
            Err(BatchError::TooLarge(limits.max_body_bytes))
        );
    }

    #[test]
    fn gzip_is_decoded() {
        let json = br#"{"site":"DEMO"}"#;
        let limits = Limits::default();
        assert_eq!(&*decode(&gzip(json), true, &limits).unwrap(), json);
    }

    #[test]
    fn a_gzip_bomb_is_refused_without_expanding_it() {
        // 10 MiB of zeros compresses to ~10 KB; only the first 64 KiB + 1 are ever inflated.
        let bomb = gzip(&vec![0u8; 10 * 1024 * 1024]);
        let limits = Limits::default();
        assert_eq!(
            decode(&bomb, true, &limits),
            Err(BatchError::TooLarge(limits.max_body_bytes))
        );
        // Small but extremely compressible: under the size limit, over the ratio.
        let small = gzip(&vec![b' '; 60 * 1024]);
        assert!(small.len() * limits.max_compression_ratio < 60 * 1024);
        assert_eq!(
            decode(&small, true, &limits),
            Err(BatchError::CompressionBomb(limits.max_compression_ratio))
        );
    }

    #[test]
    fn truncated_or_fake_gzip_is_an_error() {
        let mut g = gzip(b"{\"site\":\"DEMO\",\"events\":[]}");
        g.truncate(g.len() - 6);
        assert!(matches!(
            decode(&g, true, &Limits::default()),
            Err(BatchError::BadGzip(_))
        ));
        assert!(matches!(
            decode(b"not gzip at all", true, &Limits::default()),
            Err(BatchError::BadGzip(_))
        ));
    }
}
