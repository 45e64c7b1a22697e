//! Block codecs. Every block is compressed on its own and its uncompressed size is not stored, so blocks are
//! decompressed into a buffer of nfdump's maximum block size.

use crate::formats::FormatError;

/// nfdump's BUFFSIZE: no uncompressed block is larger (writers flush at about 2 MB).
pub const MAX_BLOCK: usize = 5 * 1024 * 1024;

/// How the data blocks of a file are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    None,
    Lzo,
    Bz2,
    Lz4,
    Zstd,
}

impl Codec {
    /// The layout-2 header's compression byte.
    pub fn from_v2(id: u8) -> Option<Codec> {
        Some(match id {
            0 => Codec::None,
            1 => Codec::Lzo,
            2 => Codec::Bz2,
            3 => Codec::Lz4,
            4 => Codec::Zstd,
            _ => return None,
        })
    }

    pub fn v2_id(self) -> u8 {
        match self {
            Codec::None => 0,
            Codec::Lzo => 1,
            Codec::Bz2 => 2,
            Codec::Lz4 => 3,
            Codec::Zstd => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Lzo => "LZO",
            Codec::Bz2 => "BZ2",
            Codec::Lz4 => "LZ4",
            Codec::Zstd => "ZSTD",
        }
    }

    /// Decompress one block payload into `scratch` and return the uncompressed bytes.
    /// `offset` is the block header's file offset, for the error.
    pub fn decompress<'a>(
        self,
        src: &[u8],
        scratch: &'a mut Vec<u8>,
        offset: u64,
    ) -> Result<&'a [u8], FormatError> {
        self.decompress_at_most(src, scratch, offset, MAX_BLOCK)
    }

    /// As [`Codec::decompress`], into at most `limit` bytes (the appendix is small: no need to clear 5 MiB).
    pub fn decompress_at_most<'a>(
        self,
        src: &[u8],
        scratch: &'a mut Vec<u8>,
        offset: u64,
        limit: usize,
    ) -> Result<&'a [u8], FormatError> {
        if scratch.len() < limit {
            scratch.resize(limit, 0);
        }
        let out = &mut scratch[..limit];
        let fail = |why: String| {
            FormatError::new(
                offset,
                format!(
                    "{} block ({} bytes) does not decompress into at most {limit} bytes: {why}",
                    self.name(),
                    src.len()
                ),
            )
        };
        let n = match self {
            Codec::None => {
                let n = src.len().min(limit);
                out[..n].copy_from_slice(&src[..n]);
                n
            }
            Codec::Lzo => lzo::decompress_into(src, out).map_err(|e| fail(e.to_string()))?,
            Codec::Lz4 => {
                lz4_flex::block::decompress_into(src, out).map_err(|e| fail(e.to_string()))?
            }
            Codec::Zstd => {
                zstd::bulk::decompress_to_buffer(src, out).map_err(|e| fail(e.to_string()))?
            }
            Codec::Bz2 => {
                let mut d = bzip2::Decompress::new(false);
                match d.decompress(src, out) {
                    Ok(bzip2::Status::StreamEnd) => d.total_out() as usize,
                    Ok(_) => {
                        return Err(fail(
                            "the BZ2 stream did not end (cut short, or larger than the buffer)"
                                .into(),
                        ))
                    }
                    Err(e) => return Err(fail(e.to_string())),
                }
            }
        };
        Ok(&scratch[..n])
    }
}
